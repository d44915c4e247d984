"""The closed loop: the agency reads the handover and reports back; the library sees it all."""

import httpx
import pytest

from tests.e2e.conftest import credential
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra

TWO_REFERRALS = {
    "channel": "appointment",
    "questions": [
        {"category": "digital_government", "theme": "verkeer", "subtheme": "verkeersboete"},
        {"category": "digital_government", "theme": "studie", "subtheme": "studiefinanciering"},
    ],
    "referral": {"consent": True, "contact_preference": "email"},
}


@pytest.fixture
async def referred(intake, library_token):
    """A help request with two referrals (CJIB and DUO), once intake shows them."""
    auth = {"Authorization": f"Bearer {library_token}"}
    created = await intake.post("/v1/help-requests", json=TWO_REFERRALS, headers=auth)
    assert created.status_code == 201, created.text
    url = f"/v1/help-requests/{created.json()['id']}"

    async def with_referrals():
        body = (await intake.get(url, headers=auth)).json()
        return body if len(body["referrals"]) == 2 else None

    body = await eventually(with_referrals)
    return url, auth, {r["organisation"]: r["referral_id"] for r in body["referrals"]}


async def test_agency_reports_back_and_the_library_sees_statuses_reads_and_closure(system, intake, referred):
    url, auth, ids = referred
    cjib = {"Authorization": f"Bearer {credential('--agency', 'cjib')}"}
    duo = {"Authorization": f"Bearer {credential('--agency', 'duo')}"}
    async with httpx.AsyncClient(base_url=system["routing"], timeout=10) as routing:
        handover = await routing.get(f"/v1/referrals/{ids['cjib']}", headers=cjib)
        assert handover.status_code == 200 and handover.json()["theme"] == "verkeer"
        assert (await routing.get(f"/v1/referrals/{ids['cjib']}", headers=duo)).status_code == 404

        accepted = await routing.post(f"/v1/referrals/{ids['cjib']}/status", json={"status": "accepted"}, headers=cjib)
        assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
        not_theirs = await routing.post(f"/v1/referrals/{ids['cjib']}/status", json={"status": "got_help"}, headers=duo)
        assert not_theirs.status_code == 404
        done = await routing.post(
            f"/v1/referrals/{ids['cjib']}/status",
            json={"status": "got_help", "reason": "betalingsregeling getroffen"},
            headers=cjib,
        )
        assert done.status_code == 200
        back = await routing.post(f"/v1/referrals/{ids['cjib']}/status", json={"status": "accepted"}, headers=cjib)
        assert back.status_code == 409 and back.headers["content-type"] == "application/problem+json"
        assert "got_help" in back.json()["detail"]
        duo_done = await routing.post(
            f"/v1/referrals/{ids['duo']}/status", json={"status": "no_longer_interested"}, headers=duo
        )
        assert duo_done.status_code == 200

    async def closed():
        body = (await intake.get(url, headers=auth)).json()
        return body if body["status"] == "closed" else None

    body = await eventually(closed)
    by_org = {r["organisation"]: r for r in body["referrals"]}
    assert by_org["cjib"]["status"] == "got_help"
    assert [(h["status"], h["reason"]) for h in by_org["cjib"]["history"]] == [
        ("accepted", None),
        ("got_help", "betalingsregeling getroffen"),
    ]
    assert [r["by"] for r in by_org["cjib"]["handover_reads"]] == ["cjib"]
    assert by_org["duo"]["status"] == "no_longer_interested" and by_org["duo"]["handover_reads"] == []


async def test_a_status_report_is_validated(system, referred):
    _, _, ids = referred
    cjib = {"Authorization": f"Bearer {credential('--agency', 'cjib')}"}
    async with httpx.AsyncClient(base_url=system["routing"], timeout=10) as routing:
        unknown = await routing.post(f"/v1/referrals/{ids['cjib']}/status", json={"status": "lost"}, headers=cjib)
        with_bsn = await routing.post(
            f"/v1/referrals/{ids['cjib']}/status", json={"status": "accepted", "reason": "bsn 111222333"}, headers=cjib
        )
        anonymous = await routing.post(f"/v1/referrals/{ids['cjib']}/status", json={"status": "accepted"})
    assert unknown.status_code == 422 and unknown.json()["invalid-params"][0]["name"] == "status"
    assert with_bsn.status_code == 422 and "111222333" not in with_bsn.text
    assert anonymous.status_code == 401
