"""Graceful shutdown (issue 12.3), on a service process of its own: on SIGTERM readiness fails
first, requests in flight finish, the process exits within 10 s, and every request it accepted
reaches Kafka (the outbox is flushed, or carried by another instance)."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from shared.events import catalog
from shared.settings import REPO_ROOT
from tests.e2e.conftest import credential
from tests.kafkatools import TopicReader

pytestmark = pytest.mark.infra

VISIT = {"channel": "phone", "questions": [{"category": "digital_government", "theme": "digid"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def started_intake(infra, port: int) -> subprocess.Popen:
    env = {**os.environ, "INTAKE_PORT": str(port), "INTAKE_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}"}
    own = infra.kafka_clients_dir / "ido-intake.properties"
    if own.is_file():
        env["KAFKA_CLIENT_CONFIG"] = str(own)
    process = subprocess.Popen(
        [sys.executable, "-m", "services.intake"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return process
            except httpx.HTTPError:
                pass
            assert process.poll() is None, process.stderr.read() if process.stderr else "exited"
            await asyncio.sleep(0.2)
    process.kill()
    raise AssertionError("intake did not become ready")


async def test_sigterm_drains_finishes_in_flight_requests_and_loses_nothing(infra, system):
    port = free_port()
    process = await started_intake(infra, port)
    token = credential("--library", "venlo")
    headers = {"Authorization": f"Bearer {token}"}
    topic = await TopicReader(infra.kafka_bootstrap_servers, catalog.HELP_REQUESTS).start(from_end=True)
    accepted: list[str] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client:

        async def register_until_refused() -> None:
            while True:
                try:
                    answer = await client.post("/v1/help-requests", json=VISIT, headers=headers)
                except httpx.TransportError:
                    return  # the server stopped taking connections
                if answer.status_code != 201:
                    return
                accepted.append(answer.json()["id"])

        senders = [asyncio.create_task(register_until_refused()) for _ in range(4)]
        await asyncio.sleep(1.0)
        stopped_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        readiness = await client.get("/readyz")
        assert readiness.status_code == 503, "readiness fails first, while requests are still served"
        assert readiness.json()["checks"]["accepting"] == "unavailable"
        await asyncio.gather(*senders)
        returncode = await asyncio.to_thread(process.wait, 15)
        took = time.monotonic() - stopped_at
    assert returncode == 0 and took < 10, f"exited with {returncode} after {took:.1f} s"
    assert len(accepted) > 10, "requests were served during the drain"
    published = await topic.until(
        lambda r: json.loads(r.value)["data"].get("help_request_id") in accepted, count=len(accepted), timeout=30
    )
    await topic.stop()
    assert {json.loads(r.value)["data"]["help_request_id"] for r in published} == set(accepted)
