"""The service-level watch on the real database and broker, with a clock the test controls:
an overdue referral is reported once, not while the visitor has to act, and exactly once when
two instances scan at the same time."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.routing import handlers
from services.routing.adapters.repository import RoutingUnitOfWork
from services.routing.domain.referral import Referral
from services.routing.entrypoints.service_levels import scan_overdue
from shared.auth import Principal
from shared.events.catalog import ROUTING, HelpRequestRouted, dlq_topic
from shared.kafka import apply_topics, make_producer
from shared.outbox import EventFactory, OutboxRelay
from tests.kafkatools import TopicReader

pytestmark = pytest.mark.infra

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
CJIB = Principal(role="agency", organisation="cjib", credential_id="c-1")


def referral(referral_id: str) -> Referral:
    return Referral.send(
        sent_at=T0,
        response_time=timedelta(days=2),
        referral_id=referral_id,
        help_request_id=f"hr-{referral_id}",
        question_index=0,
        agency="cjib",
        library="venlo",
        theme="verkeer",
        subtheme="verkeersboete",
        contact_preference="phone",
    )


async def sent(db, *referrals: Referral) -> None:
    """Referrals as routing a help request stores them: each with its case."""
    async with db.unit_of_work() as tx:
        uow = RoutingUnitOfWork(tx)
        for r in referrals:
            case = HelpRequestRouted(help_request_id=r.help_request_id, library=r.library, decisions=[])
            await uow.cases.add(case, sealed=None, at=T0)
        await uow.referrals.add(referrals)


async def report(db, events, referral_id: str, status, at: datetime) -> Referral:
    async with db.unit_of_work() as tx:
        return await handlers.report_status(
            referral_id, status, None, caller=CJIB, uow=RoutingUnitOfWork(tx), events=events, now=at
        )


async def outbox_events(db) -> list[dict]:
    rows = await db.fetch("SELECT value FROM outbox ORDER BY id")
    return [json.loads(r["value"]) for r in rows]


@pytest.fixture
def events(infra) -> EventFactory:
    return EventFactory(service="routing", oin=infra.oin, base_url="http://routing")


async def test_overdue_is_reported_once_and_the_clock_pauses_for_the_visitor(infra, migrated, unique, events):
    db = await migrated("routing")
    late, waiting = f"late-{unique}", f"waiting-{unique}"
    await sent(db, referral(late), referral(waiting))
    await report(db, events, waiting, "needs_client_action", T0 + timedelta(days=1))

    assert await scan_overdue(db, events, T0 + timedelta(days=1, hours=23)) == 0
    assert await scan_overdue(db, events, T0 + timedelta(days=2)) == 1
    assert await scan_overdue(db, events, T0 + timedelta(days=9)) == 0, "once"

    # The relay publishes what the scans committed to the outbox.
    await apply_topics(infra.kafka_bootstrap_servers, [ROUTING, dlq_topic(ROUTING)], partitions=3)
    reader = await TopicReader(infra.kafka_bootstrap_servers, ROUTING).start(from_end=True)
    producer = make_producer(infra.kafka_bootstrap_servers, client_id="ido-tests-routing")
    await producer.start()
    relay = OutboxRelay(db.url, db.passfile, producer, poll_seconds=0.2)
    relay.start()
    try:
        records = await reader.until(lambda r: r.key.decode() in (late, waiting), count=2, timeout=15)
    finally:
        await reader.stop()
        await relay.stop()
        await producer.stop()
    published = [json.loads(r.value) for r in records]
    assert sorted(e["type"] for e in published) == ["nl.ido.ReferralOverdue", "nl.ido.ReferralStatusChanged"]
    overdue = [e for e in published if e["type"] == "nl.ido.ReferralOverdue"]
    assert [e["subject"] for e in overdue] == [late]
    assert overdue[0]["data"]["due_at"].startswith("2026-12-03T09:00")

    # Resumed after five days with the visitor: one day was left, so due one day later.
    resumed = await report(db, events, waiting, "accepted", T0 + timedelta(days=6))
    assert resumed.due_at == T0 + timedelta(days=7)
    assert await scan_overdue(db, events, T0 + timedelta(days=7)) == 1


async def test_a_referral_closed_before_its_deadline_is_never_overdue(migrated, unique, events):
    db = await migrated("routing")
    done = f"done-{unique}"
    await sent(db, referral(done))
    await report(db, events, done, "got_help", T0 + timedelta(hours=1))
    assert await scan_overdue(db, events, T0 + timedelta(days=30)) == 0
    assert await db.fetchval("SELECT due_at FROM referrals WHERE referral_id = $1", done) is None


async def test_two_instances_scanning_at_once_report_each_overdue_referral_exactly_once(migrated, unique, events):
    first, second = await migrated("routing"), await migrated("routing")
    ids = [f"r{i:02d}-{unique}" for i in range(40)]
    await sent(first, *(referral(i) for i in ids))
    now = T0 + timedelta(days=3)

    # Four scanners on two pools, small batches: many transactions competing for the same rows.
    counts = await asyncio.gather(*(scan_overdue(db, events, now, batch=3) for db in (first, second) * 2))

    assert sum(counts) == 40
    published = await outbox_events(second)
    assert [e["type"] for e in published] == ["nl.ido.ReferralOverdue"] * 40
    assert sorted(e["subject"] for e in published) == ids, "each referral once"
    assert await first.fetchval("SELECT count(*) FROM referrals WHERE overdue_notified") == 40
    assert await scan_overdue(second, events, now + timedelta(days=1)) == 0
