"""One help request travels intake -> routing -> the agency's topic, and back to intake."""

import json

import httpx
import pytest

from tests.e2e.conftest import credential
from tests.kafkatools import TopicReader, eventually

pytestmark = pytest.mark.infra

HUURTOESLAG = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag"}],
    "referral": {
        "consent": True,
        "contact_preference": "phone",
        "contact": {"name": "J. de Vries", "phone": "0612345678"},
    },
}


async def test_a_help_request_becomes_a_referral_on_the_agency_topic(infra, system, intake, library_token):
    reader = await TopicReader(infra.kafka_bootstrap_servers, "ido.referrals.belastingdienst.v1").start(from_end=True)
    auth = {"Authorization": f"Bearer {library_token}"}

    created = await intake.post("/v1/help-requests", json=HUURTOESLAG, headers=auth)

    assert created.status_code == 201, created.text
    help_request_id = created.json()["id"]
    assert created.headers["Location"] == f"/v1/help-requests/{help_request_id}"
    assert created.headers["API-Version"]
    assert created.json()["status"] == "received"

    records = await reader.until(lambda r: json.loads(r.value)["data"]["help_request_id"] == help_request_id)
    await reader.stop()
    assert len(records) == 1, "exactly one ReferredToAgency for one referred question"
    record = records[0]
    event = json.loads(record.value)
    assert dict(record.headers)["content-type"] == b"application/cloudevents+json"
    assert event["specversion"] == "1.0" and event["type"] == "nl.ido.ReferredToAgency"
    assert event["source"].startswith("urn:nld:oin:") and event["source"].endswith(":systeem:routing")
    assert record.key.decode() == event["subject"] == event["data"]["referral_id"]
    assert event["data"] == {
        "referral_id": event["subject"],
        "help_request_id": help_request_id,
        "agency": "belastingdienst",
        "library": "rivierenland",
        "theme": "toeslagen",
        "subtheme": "huurtoeslag",
        "contact_preference": "phone",
    }
    assert "0612345678" not in record.value.decode() and "Vries" not in record.value.decode()

    async def referred():
        body = (await intake.get(f"/v1/help-requests/{help_request_id}", headers=auth)).json()
        return body if body["status"] == "referred" else None

    body = await eventually(referred)
    [referral] = body["referrals"]
    assert (referral["referral_id"], referral["organisation"], referral["status"]) == (
        event["subject"],
        "belastingdienst",
        "sent",
    )

    # The dataref is where the receiving agency, and only that agency, reads the handover.
    async with httpx.AsyncClient(timeout=10) as client:
        own = await client.get(
            event["dataref"], headers={"Authorization": f"Bearer {credential('--agency', 'belastingdienst')}"}
        )
        other = await client.get(event["dataref"], headers={"Authorization": f"Bearer {credential('--agency', 'uwv')}"})
    assert own.status_code == 200 and own.json()["help_request_id"] == help_request_id
    assert other.status_code == 404


async def test_without_consent_nothing_is_referred(system, intake, library_token):
    body = {**HUURTOESLAG, "referral": {"consent": False, "contact_preference": "do_not_contact"}}
    auth = {"Authorization": f"Bearer {library_token}"}
    created = await intake.post("/v1/help-requests", json=body, headers=auth)
    assert created.status_code == 201, created.text

    async def routed():
        result = (await intake.get(f"/v1/help-requests/{created.json()['id']}", headers=auth)).json()
        return result if result["status"] != "received" else None

    result = await eventually(routed)
    assert result["status"] == "routed" and result["referrals"] == []
    assert result["decisions"][0]["outcome"] == "informed"
    assert result["decisions"][0]["organisation"] == "belastingdienst"
