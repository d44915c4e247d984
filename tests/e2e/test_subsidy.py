"""The subsidy scheme through its API: KB sets up a scheme, a library applies and sees the
calculation, KB decides with a reason, the overview shows the budget."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import credential, url

pytestmark = pytest.mark.infra
SUBSIDY = url("subsidy", 8004)


async def test_apply_decide_and_follow_the_budget(system):
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    library = {"Authorization": f"Bearer {credential('--library', 'hengelo')}"}
    other = {"Authorization": f"Bearer {credential('--library', 'venlo')}"}
    code, closed = f"ido-{uuid.uuid4().hex[:6]}", f"closed-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    year = now.year
    scheme = {
        "name": "Tijdelijke regeling IDO",
        "opens": (now - timedelta(days=1)).isoformat(),
        "closes": (now + timedelta(days=30)).isoformat(),
        "rates": {str(year): "0.05", str(year + 1): "0.08"},
        "budget_ceiling_cents": 10_000_00,
    }
    async with httpx.AsyncClient(base_url=SUBSIDY, timeout=10) as subsidy:
        assert (await subsidy.put(f"/v1/schemes/{code}", json=scheme, headers=library)).status_code == 403
        assert (await subsidy.put(f"/v1/schemes/{code}", json=scheme, headers=kb)).status_code == 200
        late = {
            **scheme,
            "opens": (now - timedelta(days=60)).isoformat(),
            "closes": (now - timedelta(days=1)).isoformat(),
        }
        assert (await subsidy.put(f"/v1/schemes/{closed}", json=late, headers=kb)).status_code == 200

        body = {
            "scheme": code,
            "inhabitants": 87_654,
            "ido_opening_date": f"{year}-12-01",
            "planned_course_offers": 6,
            "contact_person": {"name": "M. de Boer", "email": "m.deboer@bieb.nl"},
        }
        applied = await subsidy.post("/v1/applications", json=body, headers=library)
        assert applied.status_code == 201, applied.text
        calculation = applied.json()["calculation"]
        # 87,654 x 0.05 = 4382.70 and x 0.08 = 7012.32 euros
        assert [line["amount_cents"] for line in calculation] == [438270, 701232]
        assert applied.json()["requested_cents"] == 1139502
        application_id = applied.json()["id"]

        second = await subsidy.post("/v1/applications", json=body, headers=library)
        assert second.status_code == 422 and second.json()["invalid-params"][0]["name"] == "scheme"
        too_late = await subsidy.post("/v1/applications", json={**body, "scheme": closed}, headers=library)
        assert too_late.status_code == 422 and "deadline" in too_late.json()["detail"]
        bad = await subsidy.post("/v1/applications", json={**body, "inhabitants": 0, "extra": 1}, headers=library)
        assert {p["name"] for p in bad.json()["invalid-params"]} == {"inhabitants", "extra"}

        assert (await subsidy.get(f"/v1/applications/{application_id}", headers=other)).status_code == 404
        decision = {"decision": "grant", "reason": "ruim binnen het budget", "amount_cents": 900_000}
        assert (
            await subsidy.post(f"/v1/applications/{application_id}/decision", json=decision, headers=library)
        ).status_code == 403
        full = {"decision": "grant", "reason": "volledig"}  # 11,395.02 euros: more than the 10,000 budget
        too_much = await subsidy.post(f"/v1/applications/{application_id}/decision", json=full, headers=kb)
        assert too_much.status_code == 409 and too_much.json()["title"] == "Budget exhausted"
        partial = {**decision, "amount_cents": 800_000, "reason": "deels: budget beperkt"}
        granted = await subsidy.post(f"/v1/applications/{application_id}/decision", json=partial, headers=kb)
        assert granted.status_code == 200 and granted.json()["status"] == "granted"
        assert [t["action"] for t in granted.json()["trail"]] == ["applied", "granted"]
        again = await subsidy.post(f"/v1/applications/{application_id}/decision", json=partial, headers=kb)
        assert again.status_code == 409

        overview = (await subsidy.get(f"/v1/schemes/{code}/overview", headers=kb)).json()
        assert overview["reserved_cents"] == 800_000 and overview["remaining_cents"] == 200_000
        assert overview["applications"] == {"granted": 1}


async def test_the_final_tranche_is_paid_when_other_services_show_the_conditions_met(system, intake):
    from tests.e2e.test_courses import COURSES, register_location, sessions
    from tests.kafkatools import eventually

    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    library = {"Authorization": f"Bearer {credential('--library', 'aanzet-dordrecht')}"}
    code, now = f"tranches-{uuid.uuid4().hex[:6]}", datetime.now(UTC)
    scheme = {
        "name": "Regeling met voorschot",
        "opens": (now - timedelta(days=1)).isoformat(),
        "closes": (now + timedelta(days=30)).isoformat(),
        "rates": {str(now.year): "0.10"},
        "budget_ceiling_cents": 10**8,
        "advance_percent": 50,
    }
    body = {
        "scheme": code,
        "inhabitants": 120_000,
        "ido_opening_date": now.date().isoformat(),
        "planned_course_offers": 2,
        "contact_person": {"name": "J. Jansen", "email": "j.jansen@bieb.nl"},
    }
    async with (
        httpx.AsyncClient(base_url=SUBSIDY, timeout=10) as subsidy,
        httpx.AsyncClient(base_url=COURSES, timeout=10) as courses,
    ):
        assert (await subsidy.put(f"/v1/schemes/{code}", json=scheme, headers=kb)).status_code == 200
        application_id = (await subsidy.post("/v1/applications", json=body, headers=library)).json()["id"]
        granted = await subsidy.post(
            f"/v1/applications/{application_id}/decision", json={"decision": "grant", "reason": "voldoet"}, headers=kb
        )
        # The advance on grant (the final tranche too at once, if an earlier run already met the conditions).
        assert granted.json()["payments"][0]["tranche"] == "advance"

        # The library registers a visit at intake and publishes a course run at courses.
        visit = {"channel": "walk_in", "questions": [{"category": "digital_government", "theme": "digid"}]}
        assert (await intake.post("/v1/help-requests", json=visit, headers=library)).status_code == 201
        await register_location(intake, library, "centrum", "3311 AA", courses)
        run = {"course_type": "klik-en-tik", "location": "centrum", "sessions": sessions(6, 8)}
        assert (await courses.post("/v1/course-runs", json=run, headers=library)).status_code == 201

        async def paid_in_full():
            doc = (await subsidy.get(f"/v1/applications/{application_id}", headers=library)).json()
            return doc if len(doc["payments"]) == 2 else None

        payments = (await eventually(paid_in_full))["payments"]
        # 120,000 x 0.10 = 12,000 euros: 6,000 in advance, 6,000 when the conditions are met
        assert [(p["tranche"], p["amount_cents"]) for p in payments] == [("advance", 600000), ("final", 600000)]
        overview = (await subsidy.get(f"/v1/schemes/{code}/overview", headers=kb)).json()
        assert overview["paid_cents"] == 1200000 and overview["reserved_cents"] == 1200000
