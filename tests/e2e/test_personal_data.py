"""Personal data: sealed on the way, shown only to the entitled agency as the visitor wished,
and gone everywhere after erasure, even for whoever re-reads the old events from Kafka."""

import base64
import json
import subprocess

import httpx
import pytest

from shared.sealing import CannotUnseal, unseal
from tests.e2e.conftest import IDO, credential
from tests.kafkatools import TopicReader, eventually

pytestmark = pytest.mark.infra

PHONE, NAME, EMAIL, NOTE = "0687654321", "K. Bakker", "k.bakker@example.nl", "Wil betalingsregeling voor boete"
VISIT = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "verkeer", "subtheme": "verkeersboete", "note": NOTE}],
    "referral": {
        "consent": True,
        "contact_preference": "phone",
        "contact": {"name": NAME, "phone": PHONE, "email": EMAIL},
    },
}


async def test_handover_shows_contact_per_preference_and_erasure_removes_it_everywhere(infra, system, intake):
    library = {"Authorization": f"Bearer {credential('--library', 'gooi-en-meer')}"}
    cjib = {"Authorization": f"Bearer {credential('--agency', 'cjib')}"}
    created = await intake.post("/v1/help-requests", json=VISIT, headers=library)
    assert created.status_code == 201
    request_id = created.json()["id"]

    async def referral_id():
        body = (await intake.get(f"/v1/help-requests/{request_id}", headers=library)).json()
        return body["referrals"][0]["referral_id"] if body["referrals"] else None

    handover_url = f"{system['routing']}/v1/referrals/{await eventually(referral_id)}"
    async with httpx.AsyncClient(timeout=10) as client:
        handover = (await client.get(handover_url, headers=cjib)).json()
        # Preference "phone": name and phone, not the e-mail address.
        assert handover["contact"] == {"name": NAME, "phone": PHONE} and handover["note"] == NOTE

        erased = subprocess.run(
            [str(IDO), "privacy", "erase", "--help-request", request_id], capture_output=True, text=True
        )
        assert erased.returncode == 0, erased.stderr

        after = (await intake.get(f"/v1/help-requests/{request_id}", headers=library)).json()
        assert after["personal_data_erased_at"] and after["request"]["referral"]["contact"] is None
        assert after["request"]["questions"][0]["note"] is None and after["status"] == "referred", "registration stays"

        async def handover_without_personal_data():
            body = (await client.get(handover_url, headers=cjib)).json()
            return body if body["contact"] is None and body["note"] is None else None

        assert (await eventually(handover_without_personal_data))["theme"] == "verkeer"

        # Whoever re-reads the old event from the start of the topic finds only sealed data,
        # and the key to open it no longer exists anywhere.
        reader = await TopicReader(infra.kafka_bootstrap_servers, "ido.help-requests.v1").start(from_end=False)
        records = await reader.until(lambda r: r.key == request_id.encode(), count=2, timeout=30)
        await reader.stop()
        assert [json.loads(r.value)["type"] for r in records] == ["nl.ido.HelpRequested", "nl.ido.PersonalDataErased"]
        record = records[0]
        assert PHONE not in record.value.decode() and NOTE not in record.value.decode()
        sealed = json.loads(record.value)["data"]["sealed"]
        service = {"Authorization": f"Bearer {credential('--service', 'routing')}"}
        key = await client.get(f"{system['intake']}/v1/help-requests/{request_id}/data-key", headers=service)
        assert key.status_code == 404
        with pytest.raises(CannotUnseal):  # nor does any other request's key open it
            other = await intake.post("/v1/help-requests", json=VISIT, headers=library)
            other_key = (
                await client.get(f"{system['intake']}/v1/help-requests/{other.json()['id']}/data-key", headers=service)
            ).json()["key"]
            unseal(base64.urlsafe_b64decode(other_key), sealed, bound_to=request_id)


async def test_only_routing_may_fetch_data_keys_and_only_owners_or_the_kb_may_erase(system, intake):
    library = {"Authorization": f"Bearer {credential('--library', 'gooi-en-meer')}"}
    created = (await intake.post("/v1/help-requests", json=VISIT, headers=library)).json()
    key_url = f"/v1/help-requests/{created['id']}/data-key"
    erase_url = f"/v1/help-requests/{created['id']}/personal-data"
    assert (await intake.get(key_url, headers=library)).status_code == 403
    assert (
        await intake.get(key_url, headers={"Authorization": f"Bearer {credential('--agency', 'cjib')}"})
    ).status_code == 403
    other_library = {"Authorization": f"Bearer {credential('--library', 'venlo')}"}
    assert (await intake.delete(erase_url, headers=other_library)).status_code == 404
    assert (await intake.delete(erase_url, headers=library)).status_code == 200
