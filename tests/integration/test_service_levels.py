"""The service-level watch on the real database and broker, with a clock the test controls:
an overdue referral is reported once, and not while the visitor has to act."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.routing import handlers
from services.routing.adapters.repository import REFERRALS, MongoRoutingRepository
from services.routing.domain.referral import Referral
from shared.auth import Principal
from shared.events.catalog import ROUTING
from shared.kafka import publish_event
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


async def test_overdue_is_reported_once_and_the_clock_pauses_for_the_visitor(infra, db, unique, publisher):
    relay = OutboxRelay([db[REFERRALS]], publish=lambda e, t: publish_event(publisher, e, t))
    repo = MongoRoutingRepository(db, timedelta(days=5), relay)
    events = EventFactory(service="routing", oin=infra.oin, base_url="http://routing")
    late, waiting = f"late-{unique}", f"waiting-{unique}"
    await repo.add_referrals([referral(late), referral(waiting)])
    await handlers.report_status(
        waiting, "needs_client_action", None, caller=CJIB, repo=repo, events=events, now=T0 + timedelta(days=1)
    )
    reader = await TopicReader(infra.kafka_bootstrap_servers, ROUTING).start(from_end=True)

    assert await handlers.notify_overdue(repo=repo, events=events, now=T0 + timedelta(days=1, hours=23)) == 0
    assert await handlers.notify_overdue(repo=repo, events=events, now=T0 + timedelta(days=2)) == 1
    assert await handlers.notify_overdue(repo=repo, events=events, now=T0 + timedelta(days=9)) == 0, "once"
    await relay.publish_written()

    records = await reader.until(lambda r: r.key.decode() in (late, waiting), count=2, timeout=10)
    await reader.stop()
    overdue = [json.loads(r.value) for r in records if json.loads(r.value)["type"] == "nl.ido.ReferralOverdue"]
    assert [e["subject"] for e in overdue] == [late]
    assert overdue[0]["data"]["due_at"].startswith("2026-12-03T09:00")

    # Resumed after five days with the visitor: one day was left, so due one day later.
    resumed = await handlers.report_status(
        waiting, "accepted", None, caller=CJIB, repo=repo, events=events, now=T0 + timedelta(days=6)
    )
    assert resumed.due_at == T0 + timedelta(days=7)
    assert await handlers.notify_overdue(repo=repo, events=events, now=T0 + timedelta(days=7)) == 1
