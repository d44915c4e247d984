"""Local partners and named targets are data: the KB adds a partner and a municipal rule, and the
next visit at an IDO in that municipality is referred to the partner, on the partner's own topic."""

import json
import uuid

import httpx
import pytest

from tests.e2e.conftest import credential
from tests.kafkatools import TopicReader, eventually

pytestmark = pytest.mark.infra


async def test_a_municipal_partner_added_as_data_receives_the_referral(infra, system, intake):
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

    reader = await TopicReader(infra.kafka_bootstrap_servers, f"ido.referrals.{partner}.v1").start(from_end=False)
    [record] = await reader.until(lambda r: True)
    await reader.stop()
    assert json.loads(record.value)["data"]["referral_id"] == decisions[0]["referral_id"]
