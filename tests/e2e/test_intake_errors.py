"""Bad input at intake gets a clear problem+json answer, nothing is stored, the service stays up."""

import pytest

from tests.e2e.conftest import credential

pytestmark = pytest.mark.infra

PROBLEM = "application/problem+json"
VALID = {"channel": "walk_in", "questions": [{"category": "digital_government", "theme": "digid"}]}


async def test_missing_or_invalid_credential_is_401(intake):
    missing = await intake.post("/v1/help-requests", json=VALID)
    forged = await intake.post("/v1/help-requests", json=VALID, headers={"Authorization": "Bearer not.a.token"})
    for response in (missing, forged):
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["status"] == 401 and response.json()["title"]


async def test_an_agency_may_not_register_help_requests(intake):
    response = await intake.post(
        "/v1/help-requests", json=VALID, headers={"Authorization": f"Bearer {credential('--agency', 'cjib')}"}
    )
    assert response.status_code == 403 and response.headers["content-type"] == PROBLEM


async def test_every_invalid_field_is_listed_at_once(intake, library_token):
    auth = {"Authorization": f"Bearer {library_token}"}
    before = (await intake.get("/v1/help-requests?limit=100", headers=auth)).json()["items"]
    body = {
        "channel": "pigeon",
        "questions": [{"category": "digital_government", "theme": "no-such-theme", "note": "x" * 1001}],
        "duration_minutes": "long",
        "unexpected": True,
    }
    response = await intake.post("/v1/help-requests", json=body, headers=auth)
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    names = {p["name"] for p in response.json()["invalid-params"]}
    assert {"channel", "questions.0.note", "duration_minutes", "unexpected"} <= names
    after = (await intake.get("/v1/help-requests?limit=100", headers=auth)).json()["items"]
    assert [r["id"] for r in after] == [r["id"] for r in before], "nothing stored"
    assert (await intake.get("/healthz")).status_code == 200


async def test_malformed_json_is_400_and_a_bsn_is_refused_without_echo(intake, library_token):
    auth = {"Authorization": f"Bearer {library_token}"}
    broken = await intake.post(
        "/v1/help-requests", content=b'{"channel": ', headers={**auth, "Content-Type": "application/json"}
    )
    assert broken.status_code == 400 and broken.headers["content-type"] == PROBLEM

    with_bsn = {
        "channel": "walk_in",
        "questions": [{"category": "digital_government", "theme": "digid", "note": "BSN is 111222333"}],
    }
    refused = await intake.post("/v1/help-requests", json=with_bsn, headers=auth)
    assert refused.status_code == 422
    assert "BSN" in refused.text and "111222333" not in refused.text


async def test_wrong_content_type_is_415_and_an_oversized_body_is_413(intake, library_token):
    auth = {"Authorization": f"Bearer {library_token}"}
    as_form = await intake.post(
        "/v1/help-requests", content=b"channel=walk_in", headers={**auth, "Content-Type": "text/plain"}
    )
    assert as_form.status_code == 415 and as_form.headers["content-type"] == PROBLEM

    huge = b'{"channel": "walk_in", "padding": "' + b"x" * (128 * 1024) + b'"}'
    too_large = await intake.post(
        "/v1/help-requests", content=huge, headers={**auth, "Content-Type": "application/json"}
    )
    assert too_large.status_code == 413 and too_large.headers["content-type"] == PROBLEM


async def test_contact_details_without_consent_are_refused(intake, library_token):
    body = {**VALID, "referral": {"consent": False, "contact": {"phone": "0612345678"}}}
    response = await intake.post("/v1/help-requests", json=body, headers={"Authorization": f"Bearer {library_token}"})
    assert response.status_code == 422
    assert "consent" in response.text and "0612345678" not in response.text


async def test_a_credential_over_its_rate_gets_429_with_retry_after(intake):
    import asyncio

    auth = {"Authorization": f"Bearer {credential('--library', 'hengelo')}"}
    answers = await asyncio.gather(*(intake.get("/v1/locations", headers=auth) for _ in range(160)))
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "a burst above the limit (100) is refused in part"
    assert int(limited[0].headers["Retry-After"]) >= 1 and limited[0].headers["content-type"] == PROBLEM
    assert {a.status_code for a in answers} <= {200, 429}


async def test_a_theme_outside_the_taxonomy_is_refused_naming_the_field(intake, library_token):
    auth = {"Authorization": f"Bearer {library_token}"}
    body = {
        "channel": "walk_in",
        "questions": [
            {"category": "library_services", "theme": "e-books", "subtheme": "app"},
            {"category": "library_services", "theme": "3ac1aix4qhw0ts4d"},
            {"category": "other", "theme": "overig", "subtheme": "t"},
        ],
    }
    response = await intake.post("/v1/help-requests", json=body, headers=auth)
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM
    names = [p["name"] for p in response.json()["invalid-params"]]
    assert names == ["questions.1.theme", "questions.2.subtheme"]
    assert "3ac1aix4qhw0ts4d" not in response.text, "the reason does not echo the input"


async def test_only_the_kb_changes_the_taxonomy_and_bad_input_is_a_problem(intake, library_token):
    theme = {"category": "library_services", "label": "Spelletjes"}
    for token in (library_token, credential("--agency", "cjib")):
        refused = await intake.put("/v1/themes/spelletjes", json=theme, headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403 and refused.headers["content-type"] == PROBLEM
    assert (await intake.put("/v1/themes/spelletjes", json=theme)).status_code == 401

    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    bad = await intake.put(
        "/v1/themes/spelletjes", json={"category": "sport", "label": "", "subthemes": {"Geen Slug": None}}, headers=kb
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
    assert {"category", "label"} <= {p["name"] for p in bad.json()["invalid-params"]}
    assert (await intake.put("/v1/themes/Geen%20Slug", json=theme, headers=kb)).status_code == 422
