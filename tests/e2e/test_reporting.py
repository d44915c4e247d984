"""Reporting through its API: a library's own figures, the KB's suppressed aggregates, an
agency's domain, the registration-form export and the rollout."""

import asyncio
import csv
import io
import uuid

import httpx
import pytest

from tests.e2e.conftest import credential, url
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra
REPORTING = url("reporting", 8005)
FORM = (
    "help_request_id,question,date,library,location,channel,category,theme,subtheme,help_given,outcome,"
    "referred_to,duration_minutes"
)


async def test_figures_for_the_library_the_kb_and_an_agency(system, intake):
    library = {"Authorization": f"Bearer {credential('--library', 'nieuwe-veste-breda')}"}
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    belastingdienst = {"Authorization": f"Bearer {credential('--agency', 'belastingdienst')}"}
    subtheme = "kindgebonden-budget"
    visit = {
        "channel": "email",
        "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": subtheme}],
        "duration_minutes": 15,
    }
    request_id = (await intake.post("/v1/help-requests", json=visit, headers=library)).json()["id"]
    async with httpx.AsyncClient(base_url=REPORTING, timeout=10) as reporting:

        async def exported():
            answer = await reporting.get("/v1/exports/questions.csv", headers=library)
            rows = list(csv.DictReader(io.StringIO(answer.text)))
            mine = [r for r in rows if r["help_request_id"] == request_id]
            return (answer, mine) if mine and mine[0]["outcome"] else None

        answer, [row] = await eventually(exported)
        assert answer.text.splitlines()[0] == FORM, "columns as on the registration form"
        assert (row["theme"], row["subtheme"], row["channel"], row["outcome"]) == (
            "toeslagen",
            subtheme,
            "email",
            "informed",
        )

        own = (await reporting.get("/v1/monitor/questions", params={"by": "subtheme"}, headers=library)).json()
        assert isinstance(own["counts"][subtheme], int) and own["threshold"] is None
        # The KB, for this one library: few questions of this subtheme, so suppressed.
        seen_by_kb = await reporting.get(
            "/v1/monitor/questions", params={"by": "subtheme", "library": "nieuwe-veste-breda"}, headers=kb
        )
        answer = seen_by_kb.json()
        counts = answer["counts"]
        assert answer["withheld"] or counts[subtheme] in ("<5", "x") or counts[subtheme] >= 5
        assert all(v in ("<5", "x") or v == 0 or v >= 5 for v in counts.values()), "no cell below 5 is shown"
        domain = (await reporting.get("/v1/monitor/questions", params={"by": "theme"}, headers=belastingdienst)).json()
        assert set(domain["counts"]) <= {"toeslagen", "belastingen"}

        other = await reporting.get("/v1/exports/questions.json", headers=belastingdienst)
        assert other.status_code == 403

        code = f"loc-{uuid.uuid4().hex[:6]}"
        place = {"name": "IDO Breda Noord", "postcode": "4811 AA", "city": "Breda"}
        assert (await intake.put(f"/v1/locations/{code}", json=place, headers=library)).status_code == 200

        async def rollout():
            body = (await reporting.get("/v1/monitor/rollout", headers=kb)).json()
            return body if body["pilot_locations"] >= 1 else None

        body = await eventually(rollout)
        goals = {y["year"]: y["goal"] for y in body["years"]}
        assert {2019: 29, 2020: 73, 2021: 439, 2022: 664}.items() <= goals.items()
        assert body["years"][-1]["open"] >= body["pilot_locations"] >= 1


async def test_course_fill_and_subsidy_money_reach_the_monitor(system, intake):
    from datetime import UTC, datetime, timedelta

    from tests.e2e.test_courses import COURSES, register_location, sessions
    from tests.e2e.test_subsidy import SUBSIDY

    library = {"Authorization": f"Bearer {credential('--library', 'kennemerwaard')}"}
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    async with (
        httpx.AsyncClient(base_url=COURSES, timeout=10) as courses,
        httpx.AsyncClient(base_url=SUBSIDY, timeout=10) as subsidy,
        httpx.AsyncClient(base_url=REPORTING, timeout=10) as reporting,
    ):
        await register_location(intake, library, "alkmaar", "1811 AA", courses)
        run = {
            "course_type": "klik-en-tik-veilig-online",
            "location": "alkmaar",
            "sessions": sessions(9, 1),
            "capacity": 1,
        }
        run_id = (await courses.post("/v1/course-runs", json=run, headers=library)).json()["id"]
        for i in range(2):
            person = {"name": f"K{i}", "contact": {"phone": f"06111111{i:02d}"}, "consent": True}
            await courses.post(f"/v1/course-runs/{run_id}/enrolments", json=person, headers=library)

        code, now = f"monitor-{uuid.uuid4().hex[:6]}", datetime.now(UTC)
        scheme = {
            "name": "Monitor",
            "opens": (now - timedelta(days=1)).isoformat(),
            "closes": (now + timedelta(days=9)).isoformat(),
            "rates": {str(now.year): "0.10"},
            "budget_ceiling_cents": 10**8,
        }
        await subsidy.put(f"/v1/schemes/{code}", json=scheme, headers=kb)
        body = {
            "scheme": code,
            "inhabitants": 50_000,
            "ido_opening_date": now.date().isoformat(),
            "planned_course_offers": 1,
            "contact_person": {"name": "K", "email": "k@bieb.nl"},
        }
        application_id = (await subsidy.post("/v1/applications", json=body, headers=library)).json()["id"]
        await subsidy.post(
            f"/v1/applications/{application_id}/decision", json={"decision": "grant", "reason": "voldoet"}, headers=kb
        )

        async def course_figures():
            mine = (await reporting.get("/v1/monitor/courses", headers=library)).json()
            figures = mine.get("klik-en-tik-veilig-online", {})
            return figures if figures.get("waitlisted") else None

        figures = await eventually(course_figures)
        assert figures["enrolled"] >= 1 and figures["fill_rate"] is not None

        async def money():
            return (await reporting.get("/v1/monitor/subsidy", headers=kb)).json().get(code)

        async def money_with_ceiling():
            figures = await money()
            return figures if figures and "remaining_cents" in figures and figures.get("granted_cents") else None

        scheme_figures = await eventually(money_with_ceiling)
        assert scheme_figures["granted_cents"] == 500000 and scheme_figures["requested_cents"] == 500000
        assert scheme_figures["remaining_cents"] == 10**8 - 500000
        assert (await reporting.get("/v1/monitor/subsidy", headers=library)).status_code == 403


async def test_a_rebuild_from_the_start_of_every_topic_equals_the_incremental_read_models(system):
    import subprocess

    from tests.e2e.conftest import IDO

    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    views = [("/v1/monitor/questions", {"by": by}) for by in ("theme", "channel", "library", "month")]
    views += [("/v1/monitor/rollout", {}), ("/v1/monitor/subsidy", {})]
    async with httpx.AsyncClient(base_url=REPORTING, timeout=30) as reporting:

        async def read_all() -> list:
            return [(await reporting.get(path, params=params, headers=kb)).json() for path, params in views]

        async def settled() -> list | None:
            """The figures once the live consumers have caught up with earlier tests' events."""
            first = await read_all()
            await asyncio.sleep(1.0)
            return first if first == await read_all() else None

        before = await eventually(settled, timeout=60)
        active_before = (await reporting.get("/v1/admin/rebuild", headers=kb)).json()["active"]

        result = subprocess.run([str(IDO), "reporting", "rebuild"], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "rebuilding [" in result.stderr, "progress is shown"

        status = (await reporting.get("/v1/admin/rebuild", headers=kb)).json()
        assert status["state"] == "done" and status["active"] != active_before and status["processed"] > 0
        after = [(await reporting.get(path, params=params, headers=kb)).json() for path, params in views]
    assert after == before


def _numbers(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, int | str) and not isinstance(value, bool):
        yield value


async def test_no_aggregate_outside_the_library_shows_a_count_below_five(system):
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    views = [
        ("/v1/monitor/questions", {"by": "library"}),
        ("/v1/monitor/questions", {"by": "location"}),
        ("/v1/monitor/outcomes", {"by": "organisation"}),
        ("/v1/monitor/outcomes", {"by": "outcome"}),
        ("/v1/monitor/help-given", {}),
        ("/v1/monitor/courses", {}),
        ("/v1/monitor/referrals", {}),
    ]
    async with httpx.AsyncClient(base_url=REPORTING, timeout=10) as reporting:
        for path, params in views:
            answer = await reporting.get(path, params=params, headers=kb)
            assert answer.status_code == 200, path
            body = answer.json()
            counted = (
                body["counts"]
                if "counts" in body
                else {
                    k: {
                        n: c
                        for n, c in v.items()
                        if n not in ("fill_rate", "runs", "seats", "overdue_share", "median_hours_to_accept")
                    }
                    for k, v in body.items()
                }
            )
            for n in _numbers(counted):
                assert n in ("<5", "x") or (isinstance(n, int) and (n == 0 or n >= 5)), (path, n)
