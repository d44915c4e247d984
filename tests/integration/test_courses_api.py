"""Courses' HTTP API on the real database (in process, no broker): the paths, bodies, status
codes and problem+json answers the end-to-end tests rely on, with a clock the test controls."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, cast

import httpx
import pytest
from fastapi import FastAPI, Header

from services.courses import handlers
from services.courses.domain.model import DEFAULT_COURSE_TYPES
from services.courses.entrypoints import http
from shared.auth import Principal, Role
from shared.events.catalog import HelpRequestRouted, QuestionDecision
from shared.http import PROBLEM, Problem, install_conventions
from shared.outbox import EventFactory
from tests.integration.courses_support import register_location, within

pytestmark = pytest.mark.infra

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EVENTS = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")
KB = {"Authorization": "Bearer kb:kb"}


def library(code: str) -> dict[str, str]:
    return {"Authorization": f"Bearer library:{code}"}


def authenticated(authorization: Annotated[str | None, Header()] = None) -> Principal:
    """Stands in for the credential check: 'Bearer <role>:<organisation>'."""
    if not authorization:
        raise Problem(401, "Credential required")
    role, organisation = authorization.removeprefix("Bearer ").split(":")
    return Principal(role=cast(Role, role), organisation=organisation, credential_id=f"test-{organisation}")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def api(migrated):
    db = await migrated("courses")
    await within(db, handlers.seed_course_types, DEFAULT_COURSE_TYPES)
    clock = Clock()
    app = FastAPI()
    install_conventions(app, "1.0.0", 64 * 1024)
    http.install_error_answers(app)
    app.include_router(
        http.build_router(authenticated=authenticated, db=db, events=EVENTS, clock=clock, window=timedelta(hours=24))
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://courses") as client:
        client.db, client.clock = db, clock
        yield client


def sessions(days: int, count: int, hour: int = 10) -> list[dict]:
    start = (NOW + timedelta(days=days)).replace(hour=hour)
    return [
        {
            "starts_at": (start + timedelta(days=7 * i)).isoformat(),
            "ends_at": (start + timedelta(days=7 * i, hours=2)).isoformat(),
        }
        for i in range(count)
    ]


def invalid_field(answer: httpx.Response) -> str:
    assert answer.status_code == 422 and answer.headers["content-type"] == PROBLEM, answer.text
    return answer.json()["invalid-params"][0]["name"]


async def test_scheduling_is_checked_and_runs_are_found_by_postcode(api):
    lib = library("zaanstreek")
    await register_location(api.db, "zaanstreek", "zaandam", "1506 AA")
    await register_location(api.db, "zaanstreek", "wormer", "1531 AA")
    await register_location(api.db, "katwijk", "centrum", "2221 KG")
    base = {"course_type": "klik-en-tik", "location": "zaandam", "sessions": sessions(10, 8)}

    refused = {
        "capacity": {**base, "capacity": 9},
        "sessions": {**base, "sessions": sessions(-3, 1)},
        "course_type": {**base, "course_type": "cooking"},
        "location": {**base, "location": "nergens"},
    }
    for field, body in refused.items():
        assert invalid_field(await api.post("/v1/course-runs", json=body, headers=lib)) == field

    digisterker = {**base, "course_type": "digisterker", "teacher": "docent-a", "sessions": sessions(20, 4)}
    assert invalid_field(await api.post("/v1/course-runs", json=digisterker, headers=lib)) == "teacher"
    teacher = {"name": "A. Docent", "certified_for": ["digisterker"]}
    assert (await api.put("/v1/teachers/docent-a", json=teacher, headers=lib)).status_code == 403
    assert (await api.put("/v1/teachers/docent-a", json=teacher, headers=KB)).status_code == 200
    scheduled = await api.post("/v1/course-runs", json=digisterker, headers=lib)
    assert scheduled.status_code == 201
    body = scheduled.json()
    assert (body["capacity"], body["seats_free"], body["status"], body["postcode"]) == (8, 8, "scheduled", "1506 AA")
    clash = await api.post("/v1/course-runs", json={**digisterker, "location": "wormer"}, headers=lib)
    assert invalid_field(clash) == "teacher"

    domain = {
        "name": "IDO-training domein Toeslagen",
        "kind": "staff_training",
        "sessions": 1,
        "session_minutes": 120,
        "max_participants": 16,
        "sessions_to_complete": 1,
    }
    assert (await api.put("/v1/course-types/domein-toeslagen", json=domain, headers=KB)).status_code == 200
    assert (await api.put("/v1/course-types/domein-toeslagen", json=domain, headers=lib)).status_code == 403
    assert "domein-toeslagen" in [t["code"] for t in (await api.get("/v1/course-types")).json()]

    far = await api.post(
        "/v1/course-runs",
        json={"course_type": "klik-en-tik", "location": "centrum", "sessions": sessions(3, 8)},
        headers=library("katwijk"),
    )
    near = await api.post("/v1/course-runs", json={**base, "location": "wormer"}, headers=lib)
    found = await api.get("/v1/course-runs", params={"postcode": "1507 XY"})
    assert found.status_code == 200, "public: no credential needed"
    assert [r["id"] for r in found.json()] == [body["id"], near.json()["id"], far.json()["id"]], "nearest first"
    assert "teacher" not in found.json()[0] and found.json()[0]["sessions"] == 4
    only = await api.get("/v1/course-runs", params={"postcode": "1507 XY", "course_type": "digisterker"})
    assert [r["id"] for r in only.json()] == [body["id"]]
    by_kind = await api.get("/v1/course-runs", params={"postcode": "2221 AA", "kind": "klik_en_tik", "limit": 1})
    assert [r["id"] for r in by_kind.json()] == [far.json()["id"]]
    api.clock.now = NOW + timedelta(days=15)  # the Klik & Tik runs have started
    later = await api.get("/v1/course-runs", params={"postcode": "1507 XY"})
    assert [r["id"] for r in later.json()] == [body["id"]]
    assert invalid_field(await api.get("/v1/course-runs", params={"postcode": "0123"})) == "postcode"


async def test_a_run_that_contradicts_its_course_type_is_refused_naming_sessions(api):
    lib = library("rivierenland")
    await register_location(api.db, "rivierenland", "tiel", "4001 AA")
    klik_en_tik = {"course_type": "klik-en-tik", "location": "tiel"}  # eight sessions of two hours
    one_session = await api.post("/v1/course-runs", json={**klik_en_tik, "sessions": sessions(5, 1)}, headers=lib)
    assert invalid_field(one_session) == "sessions"
    short = [{**s, "ends_at": s["starts_at"].replace("T10:00", "T11:00")} for s in sessions(5, 8)]
    assert invalid_field(await api.post("/v1/course-runs", json={**klik_en_tik, "sessions": short}, headers=lib)) == (
        "sessions"
    )
    assert (
        await api.post("/v1/course-runs", json={**klik_en_tik, "sessions": sessions(5, 8)}, headers=lib)
    ).status_code == 201

    flexible = {
        "name": "Klik & Tik op maat",
        "kind": "klik_en_tik",
        "sessions": 8,
        "session_minutes": 120,
        "max_participants": 8,
        "sessions_to_complete": 1,
        "flexible_sessions": True,
    }
    assert (await api.put("/v1/course-types/klik-en-tik-op-maat", json=flexible, headers=KB)).status_code == 200
    assert next(t for t in (await api.get("/v1/course-types")).json() if t["code"] == "klik-en-tik-op-maat")[
        "flexible_sessions"
    ]
    on_demand = {"course_type": "klik-en-tik-op-maat", "location": "tiel", "sessions": sessions(6, 2)}
    assert (await api.post("/v1/course-runs", json=on_demand, headers=lib)).status_code == 201, "the type allows it"


async def test_a_full_run_waitlists_and_a_cancellation_offers_the_seat(api):
    lib = library("katwijk")
    await register_location(api.db, "katwijk", "centrum", "2221 KG")
    body = {
        "course_type": "klik-en-tik-veilig-online",
        "location": "centrum",
        "sessions": sessions(5, 1),
        "capacity": 2,
    }
    run_id = (await api.post("/v1/course-runs", json=body, headers=lib)).json()["id"]

    def person(i: int) -> dict:
        return {"name": f"Deelnemer {i}", "contact": {"email": f"d{i}@example.nl"}, "consent": True}

    answers = [await api.post(f"/v1/course-runs/{run_id}/enrolments", json=person(i), headers=lib) for i in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert [(a.json()["status"], a.json()["position"]) for a in answers] == [
        ("enrolled", 1),
        ("enrolled", 2),
        ("waitlisted", 3),
    ]
    again = await api.post(f"/v1/course-runs/{run_id}/enrolments", json=person(0), headers=lib)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM
    assert again.json()["detail"] == "this participant is already enrolled or waitlisted"
    no_consent = await api.post(
        f"/v1/course-runs/{run_id}/enrolments", json={**person(5), "consent": False}, headers=lib
    )
    assert no_consent.status_code == 422

    cancelled = await api.delete(f"/v1/enrolments/{answers[0].json()['id']}", headers=lib)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert (await api.delete(f"/v1/enrolments/{answers[0].json()['id']}", headers=lib)).status_code == 409
    listed = {e["id"]: e for e in (await api.get(f"/v1/course-runs/{run_id}/enrolments", headers=lib)).json()}
    waiting = listed[answers[2].json()["id"]]
    assert waiting["status"] == "offered" and waiting["offered_until"]
    accepted = await api.post(f"/v1/enrolments/{waiting['id']}/accept", headers=lib)
    assert accepted.status_code == 200 and accepted.json()["status"] == "enrolled"
    assert (await api.post(f"/v1/enrolments/{waiting['id']}/accept", headers=lib)).status_code == 409
    run = (await api.get(f"/v1/course-runs/{run_id}", headers=lib)).json()
    assert (run["seats_free"], run["capacity"]) == (0, 2)
    other = library("venlo")
    assert (await api.get(f"/v1/course-runs/{run_id}", headers=other)).status_code == 404
    assert (await api.delete(f"/v1/enrolments/{waiting['id']}", headers=other)).status_code == 404
    assert (await api.get("/v1/course-runs/no-such-run", headers=lib)).status_code == 404

    raised = await api.patch(f"/v1/course-runs/{run_id}", json={"capacity": 3}, headers=lib)
    assert raised.status_code == 200 and raised.json()["seats_free"] == 1
    assert invalid_field(await api.patch(f"/v1/course-runs/{run_id}", json={"capacity": 1}, headers=lib)) == "capacity"
    gone = await api.post(f"/v1/course-runs/{run_id}/cancel", headers=lib)
    assert gone.status_code == 200 and (gone.json()["status"], gone.json()["seats_free"]) == ("cancelled", 3)
    assert (await api.post(f"/v1/course-runs/{run_id}/cancel", headers=lib)).status_code == 409


async def test_attendance_completion_and_the_certificate(api):
    lib = library("hengelo")
    await register_location(api.db, "hengelo", "centrum", "7551 AA")
    body = {"course_type": "klik-en-tik-veilig-online", "location": "centrum", "sessions": sessions(2, 1)}
    run_id = (await api.post("/v1/course-runs", json=body, headers=lib)).json()["id"]
    person = {"name": "Mevr. J.", "contact": {"phone": "0612345678"}, "consent": True}
    enrolment = (await api.post(f"/v1/course-runs/{run_id}/enrolments", json=person, headers=lib)).json()["id"]
    attendance = f"/v1/course-runs/{run_id}/sessions/1/attendance"
    assert invalid_field(await api.put(attendance, json={"present": [enrolment]}, headers=lib)) == "session"
    assert (await api.get(f"/v1/enrolments/{enrolment}/certificate", headers=lib)).status_code == 409

    api.clock.now = NOW + timedelta(days=2, hours=3)
    done = await api.put(attendance, json={"present": [enrolment]}, headers=lib)
    assert done.status_code == 200 and done.json() == {"completed": [enrolment]}
    certificate = await api.get(f"/v1/enrolments/{enrolment}/certificate", headers=lib)
    assert certificate.status_code == 200
    assert certificate.headers["content-disposition"].startswith('attachment; filename="certificate-')
    assert certificate.json()["participant"] == "Mevr. J." and certificate.json()["sessions_attended"] == 1


async def test_course_advised_at_the_desk_becomes_a_seat_in_one_call(api):
    lib = library("dbieb-leeuwarden")
    await register_location(api.db, "dbieb-leeuwarden", "centrum", "8911 AA")
    run = {"course_type": "klik-en-tik", "location": "centrum", "sessions": sessions(4, 8)}
    run_id = (await api.post("/v1/course-runs", json=run, headers=lib)).json()["id"]
    other = {"course_type": "klik-en-tik-veilig-online", "location": "centrum", "sessions": sessions(4, 1, hour=15)}
    other_id = (await api.post("/v1/course-runs", json=other, headers=lib)).json()["id"]
    decision = QuestionDecision(
        question_index=0, outcome="course_advised", category="digital_government", theme="digid"
    )
    routed = HelpRequestRouted(help_request_id="hr-42", library="dbieb-leeuwarden", decisions=[decision])
    await within(api.db, handlers.on_help_request_routed, None, routed, now=NOW)

    found = await api.get("/v1/course-advice/hr-42", headers=lib)
    assert found.status_code == 200
    assert found.json()["course_types"] == ["digisterker", "klik-en-tik"]
    assert [r["id"] for r in found.json()["runs"]] == [run_id]
    assert (await api.get("/v1/course-advice/hr-42", headers=library("venlo"))).status_code == 404

    visitor = {"name": "Bezoeker", "contact": {"phone": "0612345678"}, "consent": True}
    wrong = await api.post("/v1/course-advice/hr-42/enrolments", json={**visitor, "run_id": other_id}, headers=lib)
    assert invalid_field(wrong) == "run_id"
    seat = await api.post("/v1/course-advice/hr-42/enrolments", json={**visitor, "run_id": run_id}, headers=lib)
    assert seat.status_code == 201 and (seat.json()["status"], seat.json()["run_id"]) == ("enrolled", run_id)
    assert (await api.get(f"/v1/course-runs/{run_id}", headers=lib)).json()["seats_free"] == 7
