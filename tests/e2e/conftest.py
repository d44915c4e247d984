"""The running system, as users reach it: the five services (deploy/local/services.sh, the same
runner `make up` uses) on the real broker and database, each in TWO instances (instance 1 on
the port + 100), as operators may run them: consumers split the partitions between them, and
tests reach either instance's API (`instance(url, 1)`)."""

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from shared.settings import REPO_ROOT
from tests.conftest import unavailable

pytestmark = pytest.mark.infra

SERVICES = REPO_ROOT / "deploy" / "local" / "services.sh"
IDO = Path(sys.executable).parent / "ido"


INSTANCES = int(os.environ.get("IDO_E2E_INSTANCES", "2"))


def url(service: str, default_port: int) -> str:
    return f"http://127.0.0.1:{os.environ.get(f'{service.upper()}_PORT', default_port)}"


def instance(base: str, k: int) -> str:
    """The address of instance k of the service at `base` (its port + 100*k)."""
    head, port = base.rsplit(":", 1)
    return f"{head}:{int(port) + 100 * k}"


INTAKE = url("intake", 8001)
ROUTING = url("routing", 8002)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="session")
def system(infra) -> Iterator[dict[str, str]]:
    started = False
    if not all(_healthy(instance(base, k)) for base in (INTAKE, ROUTING) for k in range(INSTANCES)):
        env = {**os.environ, "INSTANCES": str(INSTANCES)}
        result = subprocess.run([str(SERVICES), "start"], capture_output=True, text=True, timeout=300, env=env)
        if result.returncode != 0:
            unavailable(f"services did not start: {result.stderr[-3000:]}")
        started = True
    yield {"intake": INTAKE, "routing": ROUTING}
    if started:
        subprocess.run([str(SERVICES), "stop"], capture_output=True, timeout=120)


def credential(*args: str) -> str:
    """A credential made the way an operator makes one: `ido keys create ...`."""
    result = subprocess.run([str(IDO), "keys", "create", *args], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, "the credential must be the only line on stdout"
    return lines[0]


@pytest.fixture(scope="session")
def library_token() -> str:
    return credential("--library", "rivierenland")


@pytest.fixture
async def intake(system) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=system["intake"], timeout=10) as client:
        yield client
