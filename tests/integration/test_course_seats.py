"""Seats on the real database: concurrent enrolments never overbook, the waitlist is first in,
first out, and a freed seat is offered with an acceptance window on a clock the test controls."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.courses import handlers
from services.courses.adapters.repository import reading, units_of_work
from services.courses.domain.model import AlreadyEnrolled, Enrol, ScheduleRun
from shared.outbox import EventFactory
from tests.integration.courses_support import courses_database, within

pytestmark = pytest.mark.infra

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
LIB = "rivierenland"
EVENTS = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")


@pytest.fixture
async def db(migrated):
    return await courses_database(migrated, LIB, "4001 AA", "Tiel")


async def klik_en_tik_run(db) -> str:
    start = NOW + timedelta(days=7)
    cmd = ScheduleRun(
        course_type="klik-en-tik",
        location="centrum",
        sessions=[
            {"starts_at": start + timedelta(days=7 * i), "ends_at": start + timedelta(days=7 * i, hours=2)}
            for i in range(8)
        ],
    )
    return (await within(db, handlers.schedule_run, cmd, library=LIB, events=EVENTS, now=NOW)).id


def person(i: int) -> Enrol:
    return Enrol(name=f"Deelnemer {i}", contact={"phone": f"06 1234 {i:04d}"}, consent=True)


async def enrol(db, run_id: str, i: int):
    return await within(db, handlers.enrol, run_id, person(i), library=LIB, events=EVENTS, now=NOW)


async def status(db, enrolment_key: str):
    return await reading(db).runs.enrolment(enrolment_key)


async def test_fifty_concurrent_enrolments_for_eight_seats(db):
    run_id = await klik_en_tik_run(db)

    results = await asyncio.gather(*(enrol(db, run_id, i) for i in range(50)))

    enrolled = [r for r in results if r.status == "enrolled"]
    waitlisted = sorted((r for r in results if r.status == "waitlisted"), key=lambda r: r.position)
    assert len(enrolled) == 8 and len(waitlisted) == 42
    assert sorted(r.position for r in enrolled) == list(range(1, 9))
    assert [r.position for r in waitlisted] == list(range(9, 51)), "the waitlist in arrival order"
    assert (await reading(db).runs.get(run_id)).seats_taken == 8
    assert await db.fetchval("SELECT count(*) FROM enrolments WHERE run_id = $1 AND seat IS NOT NULL", run_id) == 8


async def test_a_freed_seat_is_offered_first_in_first_out_and_lapses_after_its_window(db):
    run_id = await klik_en_tik_run(db)
    people = [await enrol(db, run_id, i) for i in range(10)]
    first_waiting, second_waiting = people[8].id, people[9].id

    await within(db, handlers.cancel, people[0].id, library=LIB, events=EVENTS, now=NOW, window=WINDOW)
    offered = await status(db, first_waiting)
    assert offered.status == "offered" and offered.offered_until == NOW + WINDOW
    assert (await status(db, second_waiting)).status == "waitlisted"

    units = units_of_work(db)
    later = NOW + WINDOW - timedelta(minutes=1)
    assert await handlers.expire_offers(units=units, events=EVENTS, now=later, window=WINDOW) == 0
    assert await handlers.expire_offers(units=units, events=EVENTS, now=NOW + WINDOW, window=WINDOW) == 1
    assert (await status(db, first_waiting)).status == "offer_expired"
    assert (await status(db, second_waiting)).status == "offered", "the next in line gets the seat"

    with pytest.raises(handlers.Refused):  # too late for the first
        await within(db, handlers.accept_offer, first_waiting, library=LIB, events=EVENTS, now=NOW + WINDOW)
    accepted = await within(db, handlers.accept_offer, second_waiting, library=LIB, events=EVENTS, now=NOW + WINDOW)
    assert accepted.status == "enrolled"
    statuses = [e.status for e in await reading(db).runs.enrolments_of(run_id)]
    assert statuses.count("enrolled") == 8 and (await reading(db).runs.get(run_id)).seats_taken == 8


async def test_the_same_participant_cannot_enrol_twice(db):
    run_id = await klik_en_tik_run(db)
    await enrol(db, run_id, 1)

    with pytest.raises(AlreadyEnrolled):
        await enrol(db, run_id, 1)
    assert (await reading(db).runs.get(run_id)).seats_taken == 1
    assert await db.fetchval("SELECT next_position FROM course_runs WHERE id = $1", run_id) == 1, "no number used"
