"""Reporting's projections through the real consumer: a re-delivered event counts once, and the
projection's writes commit with the processed-event record or not at all."""

from datetime import UTC, datetime

import pytest

from services.reporting import handlers
from services.reporting.adapters.repository import ReportingQueries, ReportingUnitOfWork
from shared.consuming import EventConsumer
from shared.events.catalog import HelpRequested, QuestionFacts
from shared.kafka import make_broker, publish_event
from shared.outbox import EventFactory
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra

INTAKE = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")


def visit(theme: str, category: str = "digital_government"):
    data = HelpRequested(
        help_request_id="hr-r1",
        library="venlo",
        channel="walk_in",
        questions=[QuestionFacts(index=0, category=category, theme=theme)],
        registered_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    return INTAKE.create(data, correlation_id=None).event


async def project(event, data, tx) -> None:
    await handlers.on_event(event, data, uow=ReportingUnitOfWork(tx))


async def processed(db, consumer: EventConsumer, event) -> bool:
    return await db.fetchval(
        "SELECT count(*) = 1 FROM processed_events WHERE consumer = $1 AND event_id = $2", consumer.group_id, event.id
    )


async def test_a_redelivered_visit_is_counted_once(infra, migrated, topic, unique, publisher):
    db = await migrated("reporting")
    broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-reporting")
    consumer = EventConsumer(broker, db, group_id=f"test-{unique}", backoff_seconds=0.01)
    consumer.subscribe(topic, {"HelpRequested": project})
    first = visit("digid")
    sentinel = visit("overig", "other")  # same key: same partition, so processed after the duplicates
    await broker.start()
    try:
        for event in (first, first, first, sentinel):
            await publish_event(publisher, event, topic)
        await eventually(lambda: processed(db, consumer, sentinel))
    finally:
        await broker.stop()
    async with ReportingQueries(db).active() as read:
        assert sorted(await read.question_totals("theme")) == [("digid", 1), ("overig", 1)]
        assert await read.visits() == 2, "three deliveries, one visit; plus the sentinel"
        rows = await read.question_rows(None, None, "venlo")
    assert [(r["help_request_id"], r["question"], r["theme"]) for r in rows] == [("hr-r1", 1, "overig")]


async def test_a_failing_projection_leaves_neither_its_writes_nor_the_processed_record(migrated):
    db = await migrated("reporting")
    consumer = EventConsumer(None, db, group_id="test-failing")  # type: ignore[arg-type]
    event = visit("digid")
    data = HelpRequested.model_validate(event.data)

    async def project_then_fail(event, data, tx) -> None:
        await project(event, data, tx)
        raise ConnectionError("lost the database half-way")

    with pytest.raises(ConnectionError):
        await consumer._handle_once(project_then_fail, event, data)
    assert not await processed(db, consumer, event)
    async with ReportingQueries(db).active() as read:
        assert await read.visits() == 0 and await read.question_rows(None, None, None) == []
    assert await consumer._handle_once(project, event, data) is True
    async with ReportingQueries(db).active() as read:
        assert await read.visits() == 1
