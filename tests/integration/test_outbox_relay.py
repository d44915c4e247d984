"""The outbox on the real broker and database: a unit of work commits state and events
together; the relay publishes committed events in order, once the broker acknowledged deletes
them, loses nothing when it dies, and with several instances exactly one leads at a time."""

import asyncio
import json

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber

from shared.events.catalog import HelpRequested, QuestionFacts
from shared.kafka import make_producer
from shared.outbox import EventFactory, OutboxRelay, PendingEvent
from tests.kafkatools import TopicReader, eventually

pytestmark = pytest.mark.infra

FACTORY = EventFactory(service="intake", oin="00000001003214345000", base_url="http://127.0.0.1:8001")


def pending_on(topic: str, help_request_id: str) -> PendingEvent:
    data = HelpRequested(
        help_request_id=help_request_id,
        library="rivierenland",
        channel="walk_in",
        questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
        registered_at="2026-11-29T10:00:00Z",
    )
    return PendingEvent(FACTORY.create(data, correlation_id="c-1").event, topic)


@pytest.fixture
async def producer(infra):
    producer = make_producer(infra.kafka_bootstrap_servers, client_id="ido-tests-relay")
    await producer.start()
    yield producer
    await producer.stop()


def relay_for(db, producer, **options) -> OutboxRelay:
    return OutboxRelay(db.url, db.passfile, producer, poll_seconds=0.2, **options)


async def outbox_rows(db) -> int:
    return await db.fetchval("SELECT count(*) FROM outbox")


async def test_committed_events_are_published_in_order_and_removed(infra, db, topic, producer):
    events = [pending_on(topic, "hr-1") for _ in range(5)]
    async with db.unit_of_work() as uow:
        uow.emit(*events)
    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=True)
    relay = relay_for(db, producer)
    relay.start()
    records = await reader.until(lambda r: r.key == b"hr-1", count=5)
    await reader.stop()
    assert [json.loads(r.value)["id"] for r in records] == [str(e.event.id) for e in events]
    assert dict(records[0].headers)["content-type"] == b"application/cloudevents+json"
    await eventually(lambda: _empty(db))
    await relay.stop()


async def _empty(db) -> bool:
    return await outbox_rows(db) == 0


async def test_a_rolled_back_unit_of_work_publishes_nothing(db, topic):
    with pytest.raises(RuntimeError):
        async with db.unit_of_work() as uow:
            uow.emit(pending_on(topic, "hr-phantom"))
            raise RuntimeError("the state change failed")
    assert await outbox_rows(db) == 0, "no phantom event"


async def test_a_commit_wakes_the_relay_at_once(infra, db, topic, producer):
    relay = relay_for(db, producer)
    relay.poll_seconds = 30.0  # only the NOTIFY can wake it in time
    relay.start()
    await eventually(lambda: _leading(relay))
    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=True)
    async with db.unit_of_work() as uow:
        uow.emit(pending_on(topic, "hr-woken"))
    (record,) = await reader.until(lambda r: r.key == b"hr-woken", timeout=5)
    await reader.stop()
    await relay.stop()
    assert json.loads(record.value)["subject"] == "hr-woken"


async def _leading(relay) -> bool:
    return relay.leading


async def test_relay_killed_between_store_and_publish_loses_no_event(infra, db, topic, producer):
    stored = pending_on(topic, "hr-2")
    async with db.unit_of_work() as uow:
        uow.emit(stored)

    class Hanging:  # the process dies while about to publish
        reached = asyncio.Event()

        async def send(self, *args, **kwargs):
            self.reached.set()
            await asyncio.Event().wait()

    dying = relay_for(db, Hanging())
    dying.start()
    await asyncio.wait_for(Hanging.reached.wait(), 10)
    await dying.stop()
    assert await outbox_rows(db) == 1, "killed before the broker had it: the row stays"

    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=False)
    restarted = relay_for(db, producer)
    restarted.start()
    records = await reader.until(lambda r: r.key == b"hr-2")
    await reader.stop()
    await restarted.stop()
    assert [json.loads(r.value)["id"] for r in records] == [str(stored.event.id)]


async def test_two_instances_one_leader_and_a_standby_takes_over(infra, db, topic, producer):
    first, second = relay_for(db, producer), relay_for(db, producer)
    first.start()
    await eventually(lambda: _leading(first))
    second.start()

    async def tried_twice() -> bool:
        return second.standby_rounds >= 2

    await eventually(tried_twice)
    assert not second.leading, "one leader per service database"

    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=True)
    await first.stop()  # the leader's process dies: its session ends, its lock is released
    await eventually(lambda: _leading(second), timeout=5)
    events = [pending_on(topic, "hr-3") for _ in range(20)]
    for event in events:
        async with db.unit_of_work() as uow:
            uow.emit(event)
    records = await reader.until(lambda r: r.key == b"hr-3", count=20)
    await reader.stop()
    await second.stop()
    assert [json.loads(r.value)["id"] for r in records] == [str(e.event.id) for e in events]


class RefusedProducer:
    """An idempotent producer the broker no longer takes (as after a leader moved mid-batch)."""

    def __init__(self) -> None:
        self.stopped = False

    async def send(self, *args, **kwargs):
        raise OutOfOrderSequenceNumber()

    async def stop(self) -> None:
        self.stopped = True


async def test_a_producer_the_broker_refused_is_replaced_and_nothing_is_lost(infra, db, topic):
    """Found by the fault suite (F5): a relay that kept its refused producer retried for ever,
    publishing part of each batch again and the rest never."""
    events = [pending_on(topic, "hr-renewed") for _ in range(3)]
    async with db.unit_of_work() as uow:
        uow.emit(*events)
    made: list = []

    async def new_producer():
        producer = make_producer(infra.kafka_bootstrap_servers, client_id="ido-tests-relay-renewed")
        await producer.start()
        made.append(producer)
        return producer

    refused = RefusedProducer()
    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=True)
    relay = relay_for(db, refused, new_producer=new_producer)
    relay.start()
    records = await reader.until(lambda r: r.key == b"hr-renewed", count=3)
    await reader.stop()
    await eventually(lambda: _empty(db))
    await relay.stop()
    for producer in made:
        await producer.stop()
    assert refused.stopped and len(made) == 1, "the refused producer was dropped for one fresh one"
    assert [json.loads(r.value)["id"] for r in records] == [str(e.event.id) for e in events]
