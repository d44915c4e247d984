"""Attendance, completion, certificates, staff readiness, capacity and cancellation of a run, and
the erasure of participants' personal data, on the real database with a clock the test controls."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from services.courses import handlers
from services.courses.adapters.repository import reading
from services.courses.domain.model import DEFAULT_COURSE_TYPES, Enrol, ScheduleRun
from shared.outbox import EventFactory
from tests.integration.courses_support import courses_database, within

pytestmark = pytest.mark.infra

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
LIB = "biblionet-groningen"
EVENTS = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")


@pytest.fixture
async def db(migrated):
    return await courses_database(migrated, LIB, "9711 AA", "Groningen")


async def schedule(db, course_type: str, sessions: int, capacity: int | None = None) -> str:
    start = NOW + timedelta(days=2)
    minutes = next(t.session_minutes for t in DEFAULT_COURSE_TYPES if t.code == course_type)
    cmd = ScheduleRun(
        course_type=course_type,
        location="centrum",
        capacity=capacity,
        sessions=[
            {"starts_at": start + timedelta(days=i), "ends_at": start + timedelta(days=i, minutes=minutes)}
            for i in range(sessions)
        ],
    )
    return (await within(db, handlers.schedule_run, cmd, library=LIB, events=EVENTS, now=NOW)).id


def person(i: int, staff: bool = False) -> Enrol:
    return Enrol(
        name=f"P{i}", contact={"email": f"p{i}@example.nl"}, consent=True, staff_member=f"mw-{i}" if staff else None
    )


async def enrol(db, run_id: str, who: Enrol):
    return await within(db, handlers.enrol, run_id, who, library=LIB, events=EVENTS, now=NOW)


async def attend(db, run_id: str, session: int, present: list[str], now: datetime) -> list[str]:
    return await within(
        db, handlers.record_attendance, run_id, session, present, library=LIB, events=EVENTS, now=now, window=WINDOW
    )


async def enrolment(db, key: str):
    return await reading(db).runs.enrolment(key)


async def outbox(db, event_type: str) -> list[dict]:
    """The data of the events of one type waiting in the outbox, in outbox (commit) order."""
    rows = await db.fetch("SELECT value FROM outbox ORDER BY id")
    events = [json.loads(r["value"]) for r in rows]
    return [e["data"] for e in events if e["type"].endswith(f".{event_type}")]


async def test_attendance_completes_a_course_and_a_certificate_can_be_downloaded(db):
    run_id = await schedule(db, "klik-en-tik", sessions=8)
    a = await enrol(db, run_id, person(1))
    b = await enrol(db, run_id, person(2))
    with pytest.raises(handlers.Invalid):  # not started yet
        await attend(db, run_id, 1, [a.id], NOW)

    later = NOW + timedelta(days=30)
    completed = []
    for session in range(1, 7):  # Klik & Tik: 6 of 8 sessions complete it
        present = [a.id] + ([b.id] if session <= 3 else [])
        completed += await attend(db, run_id, session, present, later)
    assert completed == [a.id]
    record = await handlers.certificate(a.id, library=LIB, repos=reading(db))
    assert record["participant"] == "P1" and record["sessions_attended"] == 6 and record["course"] == "Klik & Tik"
    with pytest.raises(handlers.Refused):
        await handlers.certificate(b.id, library=LIB, repos=reading(db))
    with pytest.raises(handlers.Invalid):
        await attend(db, run_id, 9, [a.id], later)
    assert [c["enrolment_id"] for c in await outbox(db, "CourseCompleted")] == [a.id]
    assert (await enrolment(db, a.id)).attended == {1, 2, 3, 4, 5, 6}


async def test_staff_training_completions_make_up_the_librarys_readiness(db):
    run_id = await schedule(db, "doorvragen", sessions=1)
    with pytest.raises(handlers.Invalid):
        await enrol(db, run_id, person(1))
    staff = [await enrol(db, run_id, person(i, staff=True)) for i in range(3)]
    await attend(db, run_id, 1, [s.id for s in staff[:2]], NOW + timedelta(days=3))

    assert await reading(db).readiness.trained(LIB) == {"doorvragen": ["mw-0", "mw-1"]}
    readiness = await outbox(db, "LibraryReadinessChanged")
    assert [r["trained_staff"] for r in readiness] == [{"doorvragen": 1}, {"doorvragen": 2}]
    assert {s["staff_member"] for s in await outbox(db, "StaffTrainingCompleted")} == {"mw-0", "mw-1"}


async def test_raising_capacity_offers_seats_and_cancelling_a_run_cancels_everyone(db):
    run_id = await schedule(db, "klik-en-tik-veilig-online", sessions=1, capacity=1)
    first = await enrol(db, run_id, person(1))
    second = await enrol(db, run_id, person(2))
    assert (first.status, second.status) == ("enrolled", "waitlisted")
    with pytest.raises(handlers.Invalid):
        await within(db, handlers.change_capacity, run_id, 9, library=LIB, events=EVENTS, now=NOW, window=WINDOW)

    await within(db, handlers.change_capacity, run_id, 2, library=LIB, events=EVENTS, now=NOW, window=WINDOW)
    assert (await enrolment(db, second.id)).status == "offered"

    await within(db, handlers.cancel_run, run_id, library=LIB, events=EVENTS, now=NOW)
    assert {e.status for e in await reading(db).runs.enrolments_of(run_id)} == {"cancelled"}
    assert (await reading(db).runs.get(run_id)).seats_taken == 0
    with pytest.raises(handlers.Refused):
        await enrol(db, run_id, person(3))
    reasons = [(c["enrolment_id"], c["reason"]) for c in await outbox(db, "EnrolmentCancelled")]
    assert reasons == [(first.id, "run_cancelled"), (second.id, "run_cancelled")]


async def test_a_no_show_at_the_first_session_frees_the_seat_for_the_waitlist(db):
    run_id = await schedule(db, "klik-en-tik", sessions=8, capacity=2)
    came, stayed_away, waiting = [await enrol(db, run_id, person(i)) for i in range(3)]
    assert waiting.status == "waitlisted"
    first_session = NOW + timedelta(days=2, hours=1)
    await attend(db, run_id, 1, [came.id], first_session)
    assert (await enrolment(db, stayed_away.id)).status == "no_show"
    offer = await enrolment(db, waiting.id)
    assert offer.status == "offered" and offer.offered_until == first_session + WINDOW
    # Session 2 changes nothing for those already counted.
    await attend(db, run_id, 2, [came.id], first_session + timedelta(days=1))
    assert (await enrolment(db, came.id)).status == "enrolled"
    assert [(c["enrolment_id"], c["reason"]) for c in await outbox(db, "EnrolmentCancelled")] == [
        (stayed_away.id, "no_show")
    ]


async def personal_data(db, run_id: str) -> list[tuple]:
    rows = await db.fetch("SELECT name, phone, email FROM enrolments WHERE run_id = $1 ORDER BY position", run_id)
    return [tuple(r) for r in rows]


async def test_participants_data_is_erased_after_the_retention_period(db):
    run_id = await schedule(db, "klik-en-tik-veilig-online", sessions=1)
    kept_run = await schedule(db, "klik-en-tik", sessions=8)  # ends a week later: not yet
    enrolled = await enrol(db, run_id, person(7))
    await enrol(db, kept_run, person(8))
    last_session_end = NOW + timedelta(days=2, hours=2)
    await attend(db, run_id, 1, [enrolled.id], last_session_end)
    retention = timedelta(days=90)

    async def purge(now: datetime) -> int:
        return await within(db, handlers.purge_participants, retention=retention, now=now)

    assert await purge(last_session_end + retention - timedelta(hours=1)) == 0
    assert (await enrolment(db, enrolled.id)).participant.name == "P7"
    assert await purge(last_session_end + retention + timedelta(hours=1)) == 1

    assert await personal_data(db, run_id) == [(None, None, None)]
    assert await personal_data(db, kept_run) == [("P8", None, "p8@example.nl")]
    assert not await db.fetchval(
        "SELECT count(*) FROM enrolments e WHERE e::text LIKE '%P7%' OR e::text ILIKE '%p7@example.nl%'"
    ), "gone from every column of the table"
    kept = await enrolment(db, enrolled.id)
    assert kept.personal_data_erased_at == last_session_end + retention + timedelta(hours=1)
    assert (kept.status, kept.attended, kept.completed_at) == ("enrolled", {1}, last_session_end), "facts stay"
    with pytest.raises(handlers.Refused, match="erased"):  # nor can a certificate name them any more
        await handlers.certificate(enrolled.id, library=LIB, repos=reading(db))
    assert await purge(last_session_end + 2 * retention) == 1, "the later run, in its turn"
    assert await purge(last_session_end + 3 * retention) == 0
