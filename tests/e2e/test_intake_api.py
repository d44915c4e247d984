"""Intake as a library uses it: idempotent retries, its own requests only, reference data."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.conftest import credential

pytestmark = pytest.mark.infra

VISIT = {
    "channel": "phone",
    "questions": [{"category": "digital_government", "theme": "digid", "subtheme": "inloggen"}],
}


async def test_a_retried_post_with_the_same_idempotency_key_returns_the_first_request(intake, library_token):
    headers = {"Authorization": f"Bearer {library_token}", "Idempotency-Key": str(uuid.uuid4())}
    first = await intake.post("/v1/help-requests", json=VISIT, headers=headers)
    retry = await intake.post("/v1/help-requests", json=VISIT, headers=headers)
    other = await intake.post("/v1/help-requests", json={**VISIT, "channel": "email"}, headers=headers)

    assert first.status_code == 201 and retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]
    assert other.status_code == 409 and other.headers["content-type"] == "application/problem+json"


async def test_a_library_sees_only_its_own_help_requests(intake, library_token):
    mine = await intake.post("/v1/help-requests", json=VISIT, headers={"Authorization": f"Bearer {library_token}"})
    other_library = {"Authorization": f"Bearer {credential('--library', 'venlo')}"}

    assert (await intake.get(f"/v1/help-requests/{mine.json()['id']}", headers=other_library)).status_code == 404
    listed = (await intake.get("/v1/help-requests?limit=100", headers=other_library)).json()["items"]
    assert mine.json()["id"] not in {item["id"] for item in listed}
    assert all(item["library"] == "venlo" for item in listed)


async def test_reference_data_exists_after_first_start(system, intake, library_token):
    import httpx

    auth = {"Authorization": f"Bearer {library_token}"}
    libraries = (await intake.get("/v1/libraries", headers=auth)).json()
    async with httpx.AsyncClient(base_url=system["routing"]) as routing:
        organisations = (await routing.get("/v1/organisations", headers=auth)).json()
    themes = (await intake.get("/v1/themes")).json()

    assert len(libraries) == 15 and {"code": "rivierenland", "name": "Bibliotheek Rivierenland"} in libraries
    assert {o["code"] for o in organisations if o["kind"] == "agency"} >= {"belastingdienst", "cjib", "rvr"}
    assert len([o for o in organisations if o["kind"] == "agency"]) == 12
    toeslagen = next(t for t in themes if t["code"] == "toeslagen")
    assert toeslagen["subthemes"]["huurtoeslag"] == "belastingdienst"
    assert (toeslagen["category"], toeslagen["retired"]) == ("digital_government", False)
    assert {("library_services", "e-books"), ("other", "overig")} <= {(t["category"], t["code"]) for t in themes}


async def test_the_kb_adds_and_retires_a_theme_and_registration_follows(intake, library_token):
    auth, kb = {"Authorization": f"Bearer {library_token}"}, {"Authorization": f"Bearer {credential('--kb')}"}
    code = f"proef-{uuid.uuid4().hex[:8]}"
    visit = {"channel": "walk_in", "questions": [{"category": "library_services", "theme": code, "subtheme": "a"}]}
    assert (await intake.post("/v1/help-requests", json=visit, headers=auth)).status_code == 422

    theme = {"category": "library_services", "label": "Proef", "subthemes": {"a": None}}
    put = await intake.put(f"/v1/themes/{code}", json=theme, headers=kb)
    assert put.status_code == 200 and put.json()["code"] == code and put.json()["retired"] is False
    assert any(t["code"] == code for t in (await intake.get("/v1/themes")).json())
    registered = await intake.post("/v1/help-requests", json=visit, headers=auth)
    assert registered.status_code == 201

    assert (await intake.put(f"/v1/themes/{code}", json={**theme, "retired": True}, headers=kb)).status_code == 200
    refused = await intake.post("/v1/help-requests", json=visit, headers=auth)
    assert refused.status_code == 422
    assert [p["name"] for p in refused.json()["invalid-params"]] == ["questions.0.theme"]
    again = await intake.get(f"/v1/help-requests/{registered.json()['id']}", headers=auth)
    assert again.status_code == 200 and again.json()["request"]["questions"][0]["theme"] == code


async def test_openapi_is_served_without_credential(intake):
    response = await intake.get("/v1/openapi.json")
    assert response.status_code == 200 and "/v1/help-requests" in response.json()["paths"]
    assert response.headers["API-Version"]


async def test_listing_filters_and_pages_without_gaps_or_repeats(intake):
    auth = {"Authorization": f"Bearer {credential('--library', 'dalfsen-nieuwleusen')}"}
    studie = {"channel": "email", "questions": [{"category": "digital_government", "theme": "studie"}]}
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()  # earlier runs registered some too
    ids = [(await intake.post("/v1/help-requests", json=studie, headers=auth)).json()["id"] for _ in range(5)]
    await intake.post("/v1/help-requests", json=VISIT, headers=auth)

    seen, after = [], None
    while True:
        params = {"limit": 2, "theme": "studie", "from": since, **({"after": after} if after else {})}
        page = (await intake.get("/v1/help-requests", params=params, headers=auth)).json()
        seen += [item["id"] for item in page["items"]]
        if not (after := page["next"]):
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    bad = await intake.get("/v1/help-requests", params={"after": "not-a-cursor", "status": "lost"}, headers=auth)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
