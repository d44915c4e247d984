"""Subsidy's HTTP answers on the real database, in process (the e2e suite runs the service):
problem+json for refusals, 409 for a second decision and an exhausted budget, the overview."""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.integration.subsidy_support import KB, subsidy_api

pytestmark = pytest.mark.infra

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
HENGELO = {"x-role": "library", "x-organisation": "hengelo"}
VENLO = {"x-role": "library", "x-organisation": "venlo"}


def client(db) -> httpx.AsyncClient:
    return subsidy_api(db, NOW)


async def test_apply_decide_and_follow_the_budget(migrated):
    db = await migrated("subsidy")
    year = NOW.year
    scheme = {
        "name": "Tijdelijke regeling IDO",
        "opens": (NOW - timedelta(days=1)).isoformat(),
        "closes": (NOW + timedelta(days=30)).isoformat(),
        "rates": {str(year): "0.05", str(year + 1): "0.08"},
        "budget_ceiling_cents": 10_000_00,
    }
    async with client(db) as subsidy:
        assert (await subsidy.put("/v1/schemes/ido", json=scheme, headers=HENGELO)).status_code == 403
        put = await subsidy.put("/v1/schemes/ido", json=scheme, headers=KB)
        assert put.status_code == 200 and put.json()["budget_ceiling_cents"] == 10_000_00
        late = {
            **scheme,
            "opens": (NOW - timedelta(days=60)).isoformat(),
            "closes": (NOW - timedelta(days=1)).isoformat(),
        }
        assert (await subsidy.put("/v1/schemes/closed", json=late, headers=KB)).status_code == 200
        listed = (await subsidy.get("/v1/schemes", headers=HENGELO)).json()
        assert [s["code"] for s in listed] == ["closed", "ido"]
        assert listed[1]["rates"] == scheme["rates"] and listed[1]["advance_percent"] == 50
        assert listed[1]["conditions"] == ["visitor_registration", "course_offers"] and listed[1]["extension"] is None

        body = {
            "scheme": "ido",
            "inhabitants": 87_654,
            "ido_opening_date": f"{year}-12-01",
            "planned_course_offers": 6,
            "contact_person": {"name": "M. de Boer", "email": "m.deboer@bieb.nl"},
        }
        applied = await subsidy.post("/v1/applications", json=body, headers=HENGELO)
        assert applied.status_code == 201, applied.text
        # 87,654 x 0.05 = 4382.70 and x 0.08 = 7012.32 euros
        assert [line["amount_cents"] for line in applied.json()["calculation"]] == [438270, 701232]
        assert applied.json()["calculation"][0] == {
            "year": year,
            "inhabitants": 87_654,
            "rate_eur": "0.05",
            "amount_cents": 438270,
        }
        assert applied.json()["requested_cents"] == 1139502 and applied.json()["ido_opening_date"] == f"{year}-12-01"
        application_id = applied.json()["id"]
        assert application_id == "ido:hengelo"

        second = await subsidy.post("/v1/applications", json=body, headers=HENGELO)
        assert second.status_code == 422 and second.json()["invalid-params"][0]["name"] == "scheme"
        assert second.headers["content-type"] == "application/problem+json"
        too_late = await subsidy.post("/v1/applications", json={**body, "scheme": "closed"}, headers=HENGELO)
        assert too_late.status_code == 422 and "deadline" in too_late.json()["detail"]
        unknown = await subsidy.post("/v1/applications", json={**body, "scheme": "nope"}, headers=HENGELO)
        assert unknown.status_code == 422 and "unknown scheme" in unknown.json()["detail"]
        bad = await subsidy.post("/v1/applications", json={**body, "inhabitants": 0, "extra": 1}, headers=HENGELO)
        assert {p["name"] for p in bad.json()["invalid-params"]} == {"inhabitants", "extra"}

        assert (await subsidy.get(f"/v1/applications/{application_id}", headers=VENLO)).status_code == 404
        assert (await subsidy.get("/v1/applications", headers=VENLO)).json() == []
        assert [a["id"] for a in (await subsidy.get("/v1/applications", headers=HENGELO)).json()] == [application_id]
        decision = {"decision": "grant", "reason": "ruim binnen het budget", "amount_cents": 900_000}
        url = f"/v1/applications/{application_id}/decision"
        assert (await subsidy.post(url, json=decision, headers=HENGELO)).status_code == 403
        assert (
            await subsidy.post("/v1/applications/ido:nobody/decision", json=decision, headers=KB)
        ).status_code == 404
        above = await subsidy.post(url, json={**decision, "amount_cents": 1139503}, headers=KB)
        assert above.status_code == 422 and above.json()["invalid-params"][0]["name"] == "amount_cents"
        full = {"decision": "grant", "reason": "volledig"}  # 11,395.02 euros: more than the 10,000 budget
        too_much = await subsidy.post(url, json=full, headers=KB)
        assert too_much.status_code == 409 and too_much.json()["title"] == "Budget exhausted"
        partial = {**decision, "amount_cents": 800_000, "reason": "deels: budget beperkt"}
        granted = await subsidy.post(url, json=partial, headers=KB)
        assert granted.status_code == 200 and granted.json()["status"] == "granted"
        assert granted.json()["granted_cents"] == 800_000 and granted.json()["decision_reason"] == partial["reason"]
        assert [t["action"] for t in granted.json()["trail"]] == ["applied", "granted"]
        assert granted.json()["trail"][1]["by"] == "kb:kb-1"
        assert [(p["tranche"], p["amount_cents"]) for p in granted.json()["payments"]] == [("advance", 400_000)]
        again = await subsidy.post(url, json=partial, headers=KB)
        assert again.status_code == 409 and again.json()["title"] == "Already decided"

        lower = await subsidy.put("/v1/schemes/ido", json={**scheme, "budget_ceiling_cents": 799_999}, headers=KB)
        assert lower.status_code == 422 and lower.json()["invalid-params"][0]["name"] == "budget_ceiling_cents"
        overview = (await subsidy.get("/v1/schemes/ido/overview", headers=KB)).json()
        assert overview == {
            "scheme": "ido",
            "budget_ceiling_cents": 10_000_00,
            "reserved_cents": 800_000,
            "paid_cents": 400_000,
            "remaining_cents": 200_000,
            "applications": {"granted": 1},
        }
        assert (await subsidy.get("/v1/schemes/nope/overview", headers=KB)).status_code == 404
        assert (await subsidy.get("/v1/schemes/ido/overview", headers=HENGELO)).status_code == 403

        renewal = {"signed_by": "Directeur", "signed_on": f"{year}-03-02"}
        refused = await subsidy.post(f"/v1/applications/{application_id}/renewal", json=renewal, headers=HENGELO)
        assert refused.status_code == 422 and refused.json()["invalid-params"][0]["name"] == "application"
        other = await subsidy.post(f"/v1/applications/{application_id}/renewal", json=renewal, headers=VENLO)
        assert other.status_code == 404
