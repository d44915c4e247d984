"""Attendance, completion, certificates, staff readiness, capacity and cancellation of a run, on
the real database with a clock the test controls."""

from datetime import UTC, datetime, timedelta

import pytest

from services.courses import handlers
from services.courses.adapters.repository import READINESS, MongoCoursesRepository
from services.courses.domain.model import Enrol, ScheduleRun
from shared.outbox import EventFactory, OutboxRelay

pytestmark = pytest.mark.infra

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
LIB = "biblionet-groningen"


@pytest.fixture
async def courses(db):
    relay = OutboxRelay([db[READINESS]], publish=None)  # only its per-document locks are used here
    repo = MongoCoursesRepository(db, relay)
    await repo.put_location({"_id": f"{LIB}:centrum", "library": LIB, "code": "centrum", "postcode": "9711 AA"})
    await repo.prepare()
    return repo, EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")


async def schedule(repo, events, course_type: str, sessions: int, capacity: int | None = None) -> str:
    start = NOW + timedelta(days=2)
    cmd = ScheduleRun(
        course_type=course_type,
        location="centrum",
        capacity=capacity,
        sessions=[
            {"starts_at": start + timedelta(days=i), "ends_at": start + timedelta(days=i, hours=2)}
            for i in range(sessions)
        ],
    )
    return (await handlers.schedule_run(cmd, library=LIB, repo=repo, events=events, now=NOW))["_id"]


def person(i: int, staff: bool = False) -> Enrol:
    return Enrol(
        name=f"P{i}", contact={"email": f"p{i}@example.nl"}, consent=True, staff_member=f"mw-{i}" if staff else None
    )


async def test_attendance_completes_a_course_and_a_certificate_can_be_downloaded(courses):
    repo, events = courses
    run_id = await schedule(repo, events, "klik-en-tik", sessions=8)
    a = await handlers.enrol(run_id, person(1), library=LIB, repo=repo, events=events, now=NOW)
    b = await handlers.enrol(run_id, person(2), library=LIB, repo=repo, events=events, now=NOW)
    with pytest.raises(handlers.Invalid):  # not started yet
        await handlers.record_attendance(run_id, 1, [a["_id"]], library=LIB, repo=repo, events=events, now=NOW)

    later = NOW + timedelta(days=30)
    completed = []
    for session in range(1, 7):  # Klik & Tik: 6 of 8 sessions complete it
        present = [a["_id"]] + ([b["_id"]] if session <= 3 else [])
        completed += await handlers.record_attendance(
            run_id, session, present, library=LIB, repo=repo, events=events, now=later
        )
    assert completed == [a["_id"]]
    record = await handlers.certificate(a["_id"], library=LIB, repo=repo)
    assert record["participant"] == "P1" and record["sessions_attended"] == 6 and record["course"] == "Klik & Tik"
    with pytest.raises(handlers.Refused):
        await handlers.certificate(b["_id"], library=LIB, repo=repo)
    with pytest.raises(handlers.Invalid):
        await handlers.record_attendance(run_id, 9, [a["_id"]], library=LIB, repo=repo, events=events, now=later)


async def test_staff_training_completions_make_up_the_librarys_readiness(courses, db):
    repo, events = courses
    run_id = await schedule(repo, events, "doorvragen", sessions=1)
    with pytest.raises(handlers.Invalid):
        await handlers.enrol(run_id, person(1), library=LIB, repo=repo, events=events, now=NOW)
    staff = [
        await handlers.enrol(run_id, person(i, staff=True), library=LIB, repo=repo, events=events, now=NOW)
        for i in range(3)
    ]
    await handlers.record_attendance(
        run_id, 1, [s["_id"] for s in staff[:2]], library=LIB, repo=repo, events=events, now=NOW + timedelta(days=3)
    )
    readiness = await db[READINESS].find_one({"_id": LIB})
    assert readiness["trained"] == {"doorvragen": ["mw-0", "mw-1"]}
    types = [e["value"] for e in readiness["outbox"]]
    assert all('"LibraryReadinessChanged"' in t or "nl.ido.LibraryReadinessChanged" in t for t in types)
    assert '"doorvragen":2' in types[-1].replace(" ", "")


async def test_raising_capacity_offers_seats_and_cancelling_a_run_cancels_everyone(courses):
    repo, events = courses
    run_id = await schedule(repo, events, "klik-en-tik-veilig-online", sessions=1, capacity=1)
    first = await handlers.enrol(run_id, person(1), library=LIB, repo=repo, events=events, now=NOW)
    second = await handlers.enrol(run_id, person(2), library=LIB, repo=repo, events=events, now=NOW)
    assert (first["status"], second["status"]) == ("enrolled", "waitlisted")
    with pytest.raises(handlers.Invalid):
        await handlers.change_capacity(run_id, 9, library=LIB, repo=repo, events=events, now=NOW, window=WINDOW)

    await handlers.change_capacity(run_id, 2, library=LIB, repo=repo, events=events, now=NOW, window=WINDOW)
    assert (await repo.enrolment(second["_id"]))["status"] == "offered"

    await handlers.cancel_run(run_id, library=LIB, repo=repo, events=events, now=NOW)
    assert {e["status"] for e in await repo.enrolments_of(run_id)} == {"cancelled"}
    assert await repo.seats_taken(run_id) == 0
    with pytest.raises(handlers.Refused):
        await handlers.enrol(run_id, person(3), library=LIB, repo=repo, events=events, now=NOW)


async def test_a_no_show_at_the_first_session_frees_the_seat_for_the_waitlist(courses):
    repo, events = courses
    run_id = await schedule(repo, events, "klik-en-tik", sessions=8, capacity=2)
    came, stayed_away, waiting = [
        await handlers.enrol(run_id, person(i), library=LIB, repo=repo, events=events, now=NOW) for i in range(3)
    ]
    assert waiting["status"] == "waitlisted"
    first_session = NOW + timedelta(days=2, hours=1)
    await handlers.record_attendance(
        run_id, 1, [came["_id"]], library=LIB, repo=repo, events=events, now=first_session, window=WINDOW
    )
    assert (await repo.enrolment(stayed_away["_id"]))["status"] == "no_show"
    offer = await repo.enrolment(waiting["_id"])
    assert offer["status"] == "offered" and offer["offered_until"] == first_session + WINDOW
    # Session 2 changes nothing for those already counted.
    await handlers.record_attendance(
        run_id, 2, [came["_id"]], library=LIB, repo=repo, events=events, now=first_session + timedelta(days=1)
    )
    assert (await repo.enrolment(came["_id"]))["status"] == "enrolled"


async def test_participants_data_is_erased_after_the_retention_period(courses):
    repo, events = courses
    run_id = await schedule(repo, events, "klik-en-tik-veilig-online", sessions=1)
    enrolment = await handlers.enrol(run_id, person(7), library=LIB, repo=repo, events=events, now=NOW)
    last_session_end = NOW + timedelta(days=2, hours=2)
    retention = timedelta(days=90)

    assert (
        await handlers.purge_participants(
            retention=retention, repo=repo, now=last_session_end + retention - timedelta(hours=1)
        )
        == 0
    )
    assert (await repo.enrolment(enrolment["_id"]))["participant"]["name"] == "P7"
    assert (
        await handlers.purge_participants(
            retention=retention, repo=repo, now=last_session_end + retention + timedelta(hours=1)
        )
        == 1
    )
    kept = await repo.enrolment(enrolment["_id"])
    assert (
        kept["participant"]["name"] is None and kept["participant"]["contact"] is None and kept["status"] == "enrolled"
    )
    assert await handlers.purge_participants(retention=retention, repo=repo, now=last_session_end + 2 * retention) == 0
