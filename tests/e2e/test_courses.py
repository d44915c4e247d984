"""Courses through their API: scheduling with its checks, the public search by postcode, and
enrolment into a full run that puts people on the waitlist and offers them a freed seat."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.e2e.conftest import credential, url
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra
COURSES = url("courses", 8003)
PROBLEM = "application/problem+json"


def sessions(days: int, count: int, hour: int = 10) -> list[dict]:
    start = (datetime.now(UTC) + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)
    return [
        {
            "starts_at": (start + timedelta(days=7 * i)).isoformat(),
            "ends_at": (start + timedelta(days=7 * i, hours=2)).isoformat(),
        }
        for i in range(count)
    ]


async def register_location(intake, headers: dict, code: str, postcode: str, courses) -> None:
    """Register the IDO location at intake, then wait until courses has heard of it."""
    body = {"name": f"IDO {code}", "postcode": postcode, "city": "Ergens"}
    assert (await intake.put(f"/v1/locations/{code}", json=body, headers=headers)).status_code == 200
    probe = {"course_type": "no-such-type", "location": code, "sessions": sessions(3, 1)}

    async def known():
        answer = await courses.post("/v1/course-runs", json=probe, headers=headers)
        return answer.json()["invalid-params"][0]["name"] != "location"

    await eventually(known)


@pytest.fixture
async def courses(system):
    async with httpx.AsyncClient(base_url=COURSES, timeout=10) as client:
        yield client


async def test_scheduling_is_checked_and_runs_are_found_by_postcode(intake, courses):
    library = {"Authorization": f"Bearer {credential('--library', 'zaanstreek')}"}
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    await register_location(intake, library, "zaandam", "1506 AA", courses)
    base = {"course_type": "klik-en-tik", "location": "zaandam", "sessions": sessions(10, 8)}

    refused = {
        "capacity": {**base, "capacity": 9},
        "sessions": {**base, "sessions": sessions(-3, 1)},
        "course_type": {**base, "course_type": "cooking"},
    }
    for field, body in refused.items():
        answer = await courses.post("/v1/course-runs", json=body, headers=library)
        assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, field
        assert answer.json()["invalid-params"][0]["name"] == field

    teacher = f"docent-{uuid.uuid4().hex[:6]}"
    digisterker = {**base, "course_type": "digisterker", "teacher": teacher, "sessions": sessions(20, 4)}
    assert (await courses.post("/v1/course-runs", json=digisterker, headers=library)).status_code == 422
    certified = await courses.put(
        f"/v1/teachers/{teacher}", json={"name": "A. Docent", "certified_for": ["digisterker"]}, headers=kb
    )
    assert certified.status_code == 200
    scheduled = await courses.post("/v1/course-runs", json=digisterker, headers=library)
    assert scheduled.status_code == 201 and scheduled.json()["capacity"] == 8
    await register_location(intake, library, "wormer", "1531 AA", courses)
    clash = await courses.post("/v1/course-runs", json={**digisterker, "location": "wormer"}, headers=library)
    assert clash.status_code == 422 and clash.json()["invalid-params"][0]["name"] == "teacher"

    domain = {
        "name": "IDO-training domein Toeslagen",
        "kind": "staff_training",
        "sessions": 1,
        "session_minutes": 120,
        "max_participants": 16,
        "sessions_to_complete": 1,
    }
    assert (await courses.put("/v1/course-types/domein-toeslagen", json=domain, headers=kb)).status_code == 200
    assert (await courses.put("/v1/course-types/domein-toeslagen", json=domain, headers=library)).status_code == 403
    assert "domein-toeslagen" in [t["code"] for t in (await courses.get("/v1/course-types")).json()]

    found = await courses.get("/v1/course-runs", params={"postcode": "1507 XY", "course_type": "digisterker"})
    assert found.status_code == 200, "public: no credential needed"
    assert scheduled.json()["id"] in [r["id"] for r in found.json()]
    assert "teacher" not in found.json()[0]


async def test_a_full_run_waitlists_and_a_cancellation_offers_the_seat(intake, courses):
    library = {"Authorization": f"Bearer {credential('--library', 'katwijk')}"}
    await register_location(intake, library, "centrum", "2221 KG", courses)
    body = {
        "course_type": "klik-en-tik-veilig-online",
        "location": "centrum",
        "sessions": sessions(5, 1, hour=14),
        "capacity": 2,
    }
    run_id = (await courses.post("/v1/course-runs", json=body, headers=library)).json()["id"]

    def person(i: int) -> dict:
        return {"name": f"Deelnemer {i}", "contact": {"email": f"d{i}@example.nl"}, "consent": True}

    answers = [
        await courses.post(f"/v1/course-runs/{run_id}/enrolments", json=person(i), headers=library) for i in range(3)
    ]
    assert [a.json()["status"] for a in answers] == ["enrolled", "enrolled", "waitlisted"]
    again = await courses.post(f"/v1/course-runs/{run_id}/enrolments", json=person(0), headers=library)
    assert again.status_code == 409
    no_consent = await courses.post(
        f"/v1/course-runs/{run_id}/enrolments", json={**person(5), "consent": False}, headers=library
    )
    assert no_consent.status_code == 422

    cancelled = await courses.delete(f"/v1/enrolments/{answers[0].json()['id']}", headers=library)
    assert cancelled.status_code == 200
    listed = {e["id"]: e for e in (await courses.get(f"/v1/course-runs/{run_id}/enrolments", headers=library)).json()}
    waiting = listed[answers[2].json()["id"]]
    assert waiting["status"] == "offered" and waiting["offered_until"]
    accepted = await courses.post(f"/v1/enrolments/{waiting['id']}/accept", headers=library)
    assert accepted.status_code == 200 and accepted.json()["status"] == "enrolled"
    other = {"Authorization": f"Bearer {credential('--library', 'venlo')}"}
    assert (await courses.get(f"/v1/course-runs/{run_id}", headers=other)).status_code == 404


async def test_course_advised_at_the_desk_becomes_a_seat_in_one_call(system, intake, courses):
    library = {"Authorization": f"Bearer {credential('--library', 'dbieb-leeuwarden')}"}
    await register_location(intake, library, "centrum", "8911 AA", courses)
    run = {"course_type": "klik-en-tik", "location": "centrum", "sessions": sessions(4, 8)}
    run_id = (await courses.post("/v1/course-runs", json=run, headers=library)).json()["id"]
    visit = {
        "channel": "walk_in",
        "questions": [{"category": "digital_government", "theme": "digid", "subtheme": "app"}],
        "help_given": ["course_advised"],
    }
    request_id = (await intake.post("/v1/help-requests", json=visit, headers=library)).json()["id"]

    async def advice():
        answer = await courses.get(f"/v1/course-advice/{request_id}", headers=library)
        return answer.json() if answer.status_code == 200 else None

    found = await eventually(advice)
    assert found["course_types"] == ["digisterker", "klik-en-tik"]
    assert run_id in [r["id"] for r in found["runs"]]

    body = {"run_id": run_id, "name": "Bezoeker", "contact": {"phone": "0611122233"}, "consent": True}
    enrolled = await courses.post(f"/v1/course-advice/{request_id}/enrolments", json=body, headers=library)
    assert enrolled.status_code == 201 and enrolled.json()["status"] == "enrolled"
    elsewhere = await courses.post(
        f"/v1/course-advice/{request_id}/enrolments", json={**body, "run_id": "not-a-run"}, headers=library
    )
    assert elsewhere.status_code == 422
    other = {"Authorization": f"Bearer {credential('--library', 'venlo')}"}
    assert (await courses.get(f"/v1/course-advice/{request_id}", headers=other)).status_code == 404
