"""Two instances of reporting on one database (two pools), driving the real consumer unit of
work, handler and repositories at the same time: counters stay exact under disjoint and
duplicate deliveries, and only one rebuild runs at a time."""

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from services.reporting import handlers
from services.reporting.adapters.repository import ReportingQueries, ReportingUnitOfWork
from services.reporting.entrypoints.rebuild import Rebuild
from shared.consuming import EventConsumer
from shared.events import catalog
from shared.outbox import EventFactory

pytestmark = pytest.mark.infra

GROUP = "ido-reporting"
FACTORY = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
THEMES = ("digid", "toeslagen", "zorg")


async def project(event, data, tx) -> None:
    await handlers.on_event(event, data, uow=ReportingUnitOfWork(tx))


def visit(i: int):
    data = catalog.HelpRequested(
        help_request_id=f"hr-{i}",
        library="venlo",
        channel="walk_in",
        questions=[catalog.QuestionFacts(index=0, category="digital_government", theme=THEMES[i % 3])],
        help_given=["informed"],
        registered_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    return FACTORY.create(data, correlation_id=None).event, data


def status(sequence: int):
    data = catalog.ReferralStatusChanged(
        referral_id="ref-1",
        help_request_id="hr-1",
        question_index=0,
        agency="uwv",
        library="venlo",
        status="got_help" if sequence == 20 else "needs_client_action",
        changed_at=datetime(2026, 11, 2, tzinfo=UTC),
        sequence=sequence,
    )
    return FACTORY.create(data, correlation_id=None).event, data


async def test_two_instances_applying_disjoint_and_duplicate_events_count_each_once(migrated):
    first, second = await migrated("reporting"), await migrated("reporting")
    events = [visit(i) for i in range(240)]
    statuses = [status(s) for s in range(1, 21)]
    # Instance one gets events 0-179, instance two 60-239: 120 disjoint, 120 delivered to both.
    work = [(first, e) for e in events[:180]] + [(second, e) for e in events[60:]]
    work += [(random.choice((first, second)), s) for s in statuses]
    work += [(second, s) for s in statuses[5:15]]
    random.Random(7).shuffle(work)
    consumers = {db: EventConsumer(None, db, group_id=GROUP) for db in (first, second)}  # type: ignore[arg-type]

    async def handle(db, created_and_data) -> bool:
        created, data = created_and_data
        return await consumers[db]._handle_once(project, created, data)

    results = await asyncio.gather(*(handle(db, e) for db, e in work))

    assert sum(results) == 260, "each event handled once; the other deliveries skipped"
    async with ReportingQueries(first).active() as read:
        assert await read.visits() == 240
        assert sorted(await read.question_totals("theme")) == [(t, 80) for t in sorted(THEMES)]
        assert await read.help_given_totals() == [("informed", 240)]
        assert len(await read.question_rows(None, None, "venlo")) == 240
    statuses = await first.fetch("SELECT status FROM referrals WHERE agency = 'uwv'")
    assert [r["status"] for r in statuses] == ["got_help"], "the highest sequence, whatever the order"
    assert await first.fetchval("SELECT count(*) FROM processed_events WHERE consumer = $1", GROUP) == 260


async def test_one_event_raced_by_both_instances_has_one_effect(migrated):
    first, second = await migrated("reporting"), await migrated("reporting")
    created, data = visit(1)
    consumers = [EventConsumer(None, db, group_id=GROUP) for db in (first, second) for _ in range(4)]  # type: ignore[arg-type]
    results = await asyncio.gather(*(c._handle_once(project, created, data) for c in consumers))
    assert sorted(results) == [False] * 7 + [True]
    async with ReportingQueries(second).active() as read:
        assert await read.visits() == 1


async def test_only_one_rebuild_runs_across_instances(infra, migrated):
    first, second = await migrated("reporting"), await migrated("reporting")
    rebuilds = [
        Rebuild(db, {}, infra.kafka_bootstrap_servers, consumer_group=GROUP, retention=timedelta(days=7))
        for db in (first, second)
    ]
    runs = await asyncio.gather(*(r.begin() for r in rebuilds * 3))
    started = [run for run in runs if run is not None]
    assert len(started) == 1
    assert (await rebuilds[1].status())["state"] == "running"
    await started[0].abandon()
    await started[0].close()
    assert (await rebuilds[0].status())["state"] == "failed"
    again = await rebuilds[1].begin()
    assert again is not None, "a new rebuild may start once the last one ended"
    await again.close()  # as if its instance died: no abandon
    third = await rebuilds[0].begin()
    assert third is not None and third.version > again.version, "what a dead instance left is abandoned"
    states = await first.fetch("SELECT version, state FROM read_model_versions ORDER BY version")
    assert [r["state"] for r in states] == ["active", "failed", "failed", "building"]
    await third.abandon()
    await third.close()


async def test_a_referral_written_by_two_instances_at_once_keeps_every_fact(migrated):
    """Patches of one row from two transactions: the upsert merges under the row lock."""
    first, second = await migrated("reporting"), await migrated("reporting")
    sent = catalog.ReferredToAgency(
        referral_id="ref-1", help_request_id="hr-1", agency="uwv", library="venlo", theme="ww"
    )
    overdue = catalog.ReferralOverdue(
        referral_id="ref-1",
        help_request_id="hr-1",
        question_index=0,
        agency="uwv",
        library="venlo",
        status="sent",
        due_at=datetime(2026, 11, 2, tzinfo=UTC),
        detected_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    deliveries = [(first, FACTORY.create(sent, correlation_id=None).event, sent)]
    deliveries += [(second, FACTORY.create(overdue, correlation_id=None).event, overdue)]
    deliveries += [(random.choice((first, second)), *status(s)) for s in (3, 1, 2)]

    async def handle(db, created, data):
        async with db.unit_of_work() as tx:
            await project(created, data, tx)

    await asyncio.gather(*(handle(*d) for d in deliveries))
    row = await first.fetchrow("SELECT * FROM referrals WHERE referral_id = 'ref-1'")
    assert (row["theme"], row["overdue"], row["sequence"], row["status"]) == ("ww", True, 3, "needs_client_action")
    assert row["sent_at"] == deliveries[0][1].time


async def test_two_instances_folding_overlapping_batches_count_each_event_once(migrated):
    """The live path: batches folded in one unit of work each (subscribe_folded), on two
    instances, with batches overlapping and an event twice within one batch."""
    first, second = await migrated("reporting"), await migrated("reporting")
    events = [visit(i) for i in range(300)]
    batches = [(first, events[i : i + 50]) for i in range(0, 200, 50)]
    batches += [(second, events[i : i + 50]) for i in range(100, 300, 50)]
    batches += [(second, events[10:20] + events[10:20])]

    async def fold(db, batch) -> int:
        async with db.unit_of_work() as tx:
            new = await tx.first_deliveries(GROUP, [e.id for e, _ in batch])
            fresh = list({e.id: (e, d) for e, d in batch if e.id in new}.values())
            if fresh:
                await handlers.on_events(fresh, uow=ReportingUnitOfWork(tx))
            return len(fresh)

    folded = await asyncio.gather(*(fold(db, batch) for db, batch in batches))
    assert sum(folded) == 300
    async with ReportingQueries(second).active() as read:
        assert await read.visits() == 300
        assert sorted(await read.question_totals("theme")) == [(t, 100) for t in sorted(THEMES)]
        assert len(await read.question_rows(None, None, "venlo")) == 300
