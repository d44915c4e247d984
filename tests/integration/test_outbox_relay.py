"""The outbox relay on the real broker and database: what is stored gets published, even when
the relay dies between the store and the publish."""

import asyncio
import json

import pytest

from shared.events.catalog import HelpRequested, QuestionFacts
from shared.kafka import publish_event
from shared.outbox import EventFactory, OutboxRelay, PendingEvent, outbox_update, with_outbox
from tests.kafkatools import TopicReader

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


async def test_relay_publishes_stored_events_in_order_and_clears_the_outbox(infra, db, topic, publisher):
    events = [pending_on(topic, "hr-1"), pending_on(topic, "hr-1")]
    await db.cases.insert_one(with_outbox({"_id": "hr-1"}, events))
    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=True)
    relay = OutboxRelay([db.cases], publish=lambda e, t: publish_event(publisher, e, t))

    assert await relay.drain() == 2

    records = await reader.until(lambda r: r.key == b"hr-1", count=2)
    await reader.stop()
    assert [json.loads(r.value)["id"] for r in records] == [str(e.event.id) for e in events]
    assert dict(records[0].headers)["content-type"] == b"application/cloudevents+json"
    doc = await db.cases.find_one({"_id": "hr-1"})
    assert doc["outbox"] == [] and doc["outbox_pending"] == 0
    assert await relay.drain() == 0  # nothing is published twice by a healthy relay


async def test_relay_killed_between_store_and_publish_loses_no_event(infra, db, topic, publisher):
    stored = pending_on(topic, "hr-2")
    await db.cases.insert_one(with_outbox({"_id": "hr-2"}, [stored]))
    reached_publish = asyncio.Event()

    async def hang(event, topic_name):  # the process dies while about to publish
        reached_publish.set()
        await asyncio.Event().wait()

    dying = OutboxRelay([db.cases], publish=hang)
    dying.start()
    await asyncio.wait_for(reached_publish.wait(), 10)
    await dying.stop()  # killed: nothing was published, nothing marked
    assert (await db.cases.find_one({"_id": "hr-2"}))["outbox_pending"] == 1

    reader = await TopicReader(infra.kafka_bootstrap_servers, topic).start(from_end=False)
    restarted = OutboxRelay([db.cases], publish=lambda e, t: publish_event(publisher, e, t))
    assert await restarted.drain() == 1
    records = await reader.until(lambda r: r.key == b"hr-2")
    await reader.stop()
    assert [json.loads(r.value)["id"] for r in records] == [str(stored.event.id)]


async def test_events_added_while_relaying_are_not_lost(infra, db, topic, publisher):
    """A write that appends to the outbox while the relay publishes keeps the document pending."""
    first, second = pending_on(topic, "hr-3"), pending_on(topic, "hr-3")
    await db.cases.insert_one(with_outbox({"_id": "hr-3"}, [first]))

    async def publish_then_write(event, topic_name):
        await publish_event(publisher, event, topic_name)
        await db.cases.update_one({"_id": "hr-3"}, outbox_update([second]))

    assert await OutboxRelay([db.cases], publish=publish_then_write).drain() == 1
    doc = await db.cases.find_one({"_id": "hr-3"})
    assert doc["outbox_pending"] == 1 and [e["id"] for e in doc["outbox"]] == [str(second.event.id)]
