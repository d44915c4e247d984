"""`ido dlq list` and `ido dlq redrive` on the real broker (issue 12.2): what a consumer parked
is listed with its reason and never its data; a redrive puts a record back on its topic once,
records that it did, and the consumer then applies it once."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared import dlq
from shared.consuming import EventConsumer
from shared.kafka import make_broker, publish_event
from tests.integration.test_consumer import count, help_requested, running_effects
from tests.kafkatools import TopicReader, eventually

pytestmark = pytest.mark.infra

IDO = Path(sys.executable).parent / "ido"


async def test_parked_records_are_listed_redriven_once_and_then_applied(infra, db, topic, unique, publisher):
    await db.pool.execute("CREATE TABLE IF NOT EXISTS effects (key text PRIMARY KEY, n int NOT NULL)")
    broken = {"hr-d1", "hr-d2"}

    async def handler(event, data, uow):
        if data.help_request_id in broken:
            raise LookupError(f"help request {data.help_request_id} not found")
        await count(event, data, uow)

    broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-dlq")
    consumer = EventConsumer(broker, db, group_id=f"test-{unique}", backoff_seconds=0.01, max_attempts=2)
    consumer.subscribe(topic, {"HelpRequested": handler})
    events = {hr: help_requested(hr) for hr in ("hr-d1", "hr-d2", "hr-ok")}
    await broker.start()
    try:
        for event in events.values():
            await publish_event(publisher, event, topic)
        found = await eventually(lambda: _parked(infra, topic, 2), timeout=20)
        assert {p.event_id for p in found} == {str(events["hr-d1"].id), str(events["hr-d2"].id)}
        assert all(p.reason.startswith("failed after 2 attempts: LookupError") for p in found)
        assert all(p.consumer == f"test-{unique}" and p.redriven_at is None for p in found)

        listed = subprocess.run([str(IDO), "dlq", "list", "--topic", topic], capture_output=True, text=True)
        assert listed.returncode == 0 and all(p.id in listed.stdout for p in found), listed.stderr
        assert "venlo" not in listed.stdout and "eigen-bijdrage" not in listed.stdout, "never the event's data"

        broken.clear()  # the cause is fixed: what was parked can go back
        first = next(p for p in found if p.event_id == str(events["hr-d1"].id))
        again = subprocess.run(
            [str(IDO), "dlq", "redrive", "--topic", topic, "--id", first.id], capture_output=True, text=True
        )
        assert again.returncode == 0 and "1 redriven" in again.stderr, again.stderr
        await eventually(lambda: running_effects(db, "hr-d1"), timeout=20)

        everything = await dlq.redrive(infra.kafka_bootstrap_servers, topic, None)
        assert (everything.redriven, everything.already) == ([p.id for p in found if p.id != first.id], [first.id])
        assert (await dlq.redrive(infra.kafka_bootstrap_servers, topic, None)).redriven == [], "each once"
        await eventually(lambda: running_effects(db, "hr-d2"), timeout=20)
    finally:
        await broker.stop()
    assert [await running_effects(db, hr) for hr in ("hr-d1", "hr-d2", "hr-ok")] == [1, 1, 1]
    assert all(p.redriven_at for p in await dlq.parked(infra.kafka_bootstrap_servers, topic))

    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=False)
    back = await reader.until(lambda r: dict(r.headers).get(dlq.REDRIVEN_FROM) is not None, count=2, timeout=10)
    await reader.stop()
    assert len(back) == 2
    assert all(not k.startswith("ido-dlq-") for r in back for k, _ in r.headers), "as it first came"
    assert {json.loads(r.value)["id"] for r in back} == {str(events["hr-d1"].id), str(events["hr-d2"].id)}


async def test_redriving_an_unknown_record_says_so(infra, topic):
    result = subprocess.run(
        [str(IDO), "dlq", "redrive", "--topic", topic, "--id", "0-999"], capture_output=True, text=True
    )
    assert result.returncode == 1 and "no record 0-999" in result.stderr


async def _parked(infra, topic: str, n: int):
    found = await dlq.parked(infra.kafka_bootstrap_servers, topic)
    return found if len(found) == n else None
