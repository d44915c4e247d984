"""Credentials as operators and callers meet them: revocation reaches every service, and each
role may do exactly what it should (cross-tenant access answers 404, never leaks existence)."""

import subprocess

import httpx
import jwt
import pytest

from tests.e2e.conftest import IDO, credential
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra

VISIT = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "zorgtoeslag"}],
    "referral": {"consent": True},
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_revoked_credential_is_refused_by_every_service(system):
    token = credential("--library", "zeeland")
    credential_id = jwt.decode(token, options={"verify_signature": False})["jti"]
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(f"{system['intake']}/v1/help-requests", headers=bearer(token))).status_code == 200

        result = subprocess.run([str(IDO), "keys", "revoke", credential_id], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        listed = subprocess.run([str(IDO), "keys", "list"], capture_output=True, text=True, check=True).stdout
        assert credential_id in listed and token not in listed, "listed without the secret"

        async def refused_everywhere():
            answers = [
                await client.get(f"{system['intake']}/v1/help-requests", headers=bearer(token)),
                await client.get(f"{system['routing']}/v1/organisations", headers=bearer(token)),
            ]
            return answers if all(a.status_code == 401 for a in answers) else None

        answers = await eventually(refused_everywhere, timeout=15)
    assert all(a.json()["title"] == "Credential revoked" for a in answers)


async def test_revoking_an_unknown_credential_says_so():
    result = subprocess.run([str(IDO), "keys", "revoke", "no-such-credential"], capture_output=True, text=True)
    assert result.returncode == 1 and "was ever issued" in result.stderr


async def test_who_may_call_what(system):
    library, other_library = credential("--library", "katwijk"), credential("--library", "hengelo")
    uwv, svb, kb = credential("--agency", "uwv"), credential("--agency", "svb"), credential("--kb")
    visit = {**VISIT, "questions": [{"category": "digital_government", "theme": "werk-en-uitkering", "subtheme": "ww"}]}
    async with httpx.AsyncClient(timeout=10) as client:
        intake, routing = system["intake"], system["routing"]
        created = await client.post(f"{intake}/v1/help-requests", json=visit, headers=bearer(library))
        assert created.status_code == 201
        request_url = f"{intake}/v1/help-requests/{created.json()['id']}"

        async def referral_id():
            body = (await client.get(request_url, headers=bearer(library))).json()
            return body["referrals"][0]["referral_id"] if body["referrals"] else None

        referral_url = f"{routing}/v1/referrals/{await eventually(referral_id)}"
        matrix = [
            # (who, method, url, expected)
            (library, "GET", request_url, 200),
            (other_library, "GET", request_url, 404),
            (uwv, "GET", request_url, 403),
            (kb, "GET", request_url, 403),
            (uwv, "POST", f"{intake}/v1/help-requests", 403),
            (kb, "POST", f"{intake}/v1/help-requests", 403),
            (uwv, "GET", referral_url, 200),
            (svb, "GET", referral_url, 404),
            (library, "GET", referral_url, 404),
            (kb, "GET", referral_url, 404),
            (svb, "POST", f"{referral_url}/status", 404),
            (library, "POST", f"{referral_url}/status", 404),
            (uwv, "POST", f"{referral_url}/status", 200),
        ]
        outcomes = []
        for token, method, url, expected in matrix:
            body = {"status": "accepted"} if url.endswith("/status") else visit if method == "POST" else None
            response = await client.request(method, url, json=body, headers=bearer(token))
            outcomes.append((method, url.rsplit("/", 2)[-2:], expected, response.status_code))
    assert [o for o in outcomes if o[2] != o[3]] == []
