"""Intake follows referral statuses whatever order Kafka delivers them in, and only once:
status events published here straight onto ido.routing.v1, as routing would, but re-ordered
and duplicated."""

from datetime import UTC, datetime, timedelta

import pytest

from shared.events.catalog import ReferralStatusChanged
from shared.kafka import make_broker, publish_event
from shared.outbox import EventFactory
from tests.e2e.conftest import credential
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra

VISIT = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "werk-en-uitkering", "subtheme": "aow"}],
    "referral": {"consent": True, "contact_preference": "do_not_contact"},
}


async def test_re_ordered_and_duplicated_status_events_leave_the_newest_status(infra, system, intake):
    library = {"Authorization": f"Bearer {credential('--library', 'midden-brabant')}"}
    request_id = (await intake.post("/v1/help-requests", json=VISIT, headers=library)).json()["id"]

    async def referral():
        body = (await intake.get(f"/v1/help-requests/{request_id}", headers=library)).json()
        return body["referrals"][0] if body["referrals"] else None

    referral_id = (await eventually(referral))["referral_id"]
    routing = EventFactory(service="routing", oin=infra.oin, base_url=system["routing"])
    t0 = datetime.now(UTC)

    def change(status: str, sequence: int):
        data = ReferralStatusChanged(
            referral_id=referral_id,
            help_request_id=request_id,
            question_index=0,
            agency="svb",
            library="midden-brabant",
            status=status,
            changed_at=t0 + timedelta(minutes=sequence),
            sequence=sequence,
        )
        return routing.create(data, correlation_id=request_id)

    accepted, got_help = change("accepted", 2), change("got_help", 3)
    broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests")
    await broker.start()
    try:
        for pending in (got_help, accepted, got_help):  # newest first, then older, then the same again
            await publish_event(broker, pending.event, pending.topic)
    finally:
        await broker.stop()

    async def settled():
        body = (await intake.get(f"/v1/help-requests/{request_id}", headers=library)).json()
        return body if body["referrals"][0]["status"] == "got_help" else None

    body = await eventually(settled)
    [shown] = body["referrals"]
    assert shown["sequence"] == 3 and [h["status"] for h in shown["history"]] == ["got_help"]
    assert body["status"] == "closed"
