"""Reporting's projections through the real consumer: a re-delivered event counts once."""

from datetime import UTC, datetime
from functools import partial

import pytest

from services.reporting import handlers
from services.reporting.adapters.repository import MongoReportingRepository
from shared.consuming import EventConsumer
from shared.events.catalog import HelpRequested, QuestionFacts
from shared.kafka import make_broker, publish_event
from shared.outbox import EventFactory
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra


async def test_a_redelivered_visit_is_counted_once(infra, db, topic, unique, publisher):
    repo = MongoReportingRepository(db)
    broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-reporting")
    consumer = EventConsumer(broker, db, group_id=f"test-{unique}", backoff_seconds=0.01)
    consumer.subscribe(topic, {"HelpRequested": partial(handlers.on_help_requested, repo=repo)})
    intake = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
    visit = intake.create(
        HelpRequested(
            help_request_id="hr-r1",
            library="venlo",
            channel="walk_in",
            questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
            registered_at=datetime(2026, 11, 2, tzinfo=UTC),
        ),
        correlation_id=None,
    ).event
    # A later event with the same key (same partition, so processed after the duplicates).
    sentinel = intake.create(
        HelpRequested(
            help_request_id="hr-r1",
            library="venlo",
            channel="walk_in",
            questions=[QuestionFacts(index=0, category="other", theme="overig")],
            registered_at=datetime(2026, 11, 2, tzinfo=UTC),
        ),
        correlation_id=None,
    ).event
    await broker.start()
    try:
        for event in (visit, visit, visit, sentinel):
            await publish_event(publisher, event, topic)
        await eventually(lambda: db.processed_events.find_one({"_id": consumer.processed_key(sentinel)}))
    finally:
        await broker.stop()
    digid = await repo.counts("questions", theme="digid")
    [visits] = await repo.counts("visits")
    assert [c["count"] for c in digid] == [1] and visits["count"] == 2, "three deliveries, one visit; plus the sentinel"
    assert [r["_id"] for r in await repo.rows_between(None, None, "venlo")] == ["hr-r1:0"]
