"""Local partners and named targets are data: the KB adds a partner and a municipal rule, and the
next visit at an IDO in that municipality is referred to the partner, on the partner's own topic.
The partner is a receiving organisation like an agency: the operator issues it an API and a
Kafka credential, it reads its referral with its own principal, opens the handover, reports back,
and finds its referral in reporting."""

import asyncio
import json
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.events.catalog import referral_topic
from shared.kafka import client_security
from tests.e2e.conftest import credential, url
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra


async def test_a_municipal_partner_added_as_data_receives_the_referral_and_reports_back(
    infra, system, intake, tmp_path
):
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    library = {"Authorization": f"Bearer {credential('--library', 'rivierenland')}"}
    municipality, partner = f"tiel-{uuid.uuid4().hex[:6]}", f"welzijn-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=system["routing"], timeout=10) as routing:
        added = await routing.put(
            f"/v1/organisations/{partner}",
            json={"name": "Welzijn Tiel", "kind": "partner", "municipality": municipality},
            headers=kb,
        )
        assert added.status_code == 200
        rule = {"theme": "gemeente", "municipality": municipality, "organisation": partner}
        assert (await routing.put("/v1/routing-rules", json=rule, headers=kb)).status_code == 200
        assert (await routing.put("/v1/routing-rules", json=rule, headers=library)).status_code == 403
        unknown = await routing.put("/v1/routing-rules", json={**rule, "organisation": "nobody"}, headers=kb)
        assert unknown.status_code == 422

    location = {"name": "IDO Tiel", "postcode": "4001 AA", "city": "Tiel", "municipality": municipality}
    assert (await intake.put("/v1/locations/tiel-centrum", json=location, headers=library)).status_code == 200
    visit = {
        "channel": "walk_in",
        "location": "tiel-centrum",
        "questions": [
            {"category": "digital_government", "theme": "gemeente", "subtheme": "paspoort"},
            {"category": "digital_government", "theme": "digid", "target": "uwv"},
            {"category": "digital_government", "theme": "digid", "target": "no-such-organisation"},
        ],
        "referral": {"consent": True, "contact_preference": "email"},
    }
    created = await intake.post("/v1/help-requests", json=visit, headers=library)
    assert created.status_code == 201, created.text

    async def routed():
        body = (await intake.get(f"/v1/help-requests/{created.json()['id']}", headers=library)).json()
        return body if body["decisions"] else None

    decisions = {d["question_index"]: d for d in (await eventually(routed))["decisions"]}
    assert (decisions[0]["outcome"], decisions[0]["organisation"]) == ("referred", partner)
    assert (decisions[1]["outcome"], decisions[1]["organisation"]) == ("referred", "uwv")
    assert decisions[2]["outcome"] == "helped_at_desk" and decisions[2]["rejected_target"] == "no-such-organisation"

    referral_id = decisions[0]["referral_id"]
    kafka = tmp_path / f"{partner}.properties"
    token = credential("--agency", partner, "--kafka", str(kafka), "--routing-url", system["routing"])
    assert json.loads(await read_own_topic(infra, kafka, partner))["data"]["referral_id"] == referral_id

    own = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=system["routing"], timeout=10) as routing:
        handover = await routing.get(f"/v1/referrals/{referral_id}", headers=own)
        assert handover.status_code == 200 and handover.json()["agency"] == partner
        uwv_referral = f"/v1/referrals/{decisions[1]['referral_id']}"
        assert (await routing.get(uwv_referral, headers=own)).status_code == 404, "not the partner's"
        for status in ("accepted", "got_help"):
            reported = await routing.post(f"/v1/referrals/{referral_id}/status", json={"status": status}, headers=own)
            assert reported.status_code == 200, reported.text

    async with httpx.AsyncClient(base_url=url("reporting", 8005), timeout=10) as reporting:

        async def reported_back():
            figures = (await reporting.get("/v1/monitor/referrals", headers=own)).json()
            return figures if figures.get(partner, {}).get("statuses") == {"got_help": 1} else None

        figures = await eventually(reported_back, timeout=30)
    assert set(figures) == {partner}, "a partner sees its own referrals only"


async def read_own_topic(infra, client_config, partner: str) -> bytes:
    """As the partner's own software does: its principal, a group of its own, its topic."""
    consumer = AIOKafkaConsumer(
        referral_topic(partner),
        bootstrap_servers=infra.kafka_bootstrap_servers,
        group_id=f"{partner}.inbox",
        auto_offset_reset="earliest",
        **client_security(client_config),
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    return record.value
