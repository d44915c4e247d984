"""Seats on the real database: concurrent enrolments never overbook, the waitlist is first in,
first out, and a freed seat is offered with an acceptance window on a clock the test controls."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.courses import handlers
from services.courses.adapters.repository import MongoCoursesRepository
from services.courses.domain.model import Enrol, ScheduleRun
from shared.outbox import EventFactory, OutboxRelay

pytestmark = pytest.mark.infra

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)


@pytest.fixture
async def courses(db):
    repo = MongoCoursesRepository(db, OutboxRelay([], publish=None))  # its per-document locks, no publishing
    await repo.put_location(
        {"_id": "rivierenland:centrum", "library": "rivierenland", "code": "centrum", "postcode": "4001 AA"}
    )
    await repo.prepare()
    return repo, EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")


async def klik_en_tik_run(repo, events) -> str:
    start = NOW + timedelta(days=7)
    cmd = ScheduleRun(
        course_type="klik-en-tik",
        location="centrum",
        sessions=[
            {"starts_at": start + timedelta(days=7 * i), "ends_at": start + timedelta(days=7 * i, hours=2)}
            for i in range(8)
        ],
    )
    return (await handlers.schedule_run(cmd, library="rivierenland", repo=repo, events=events, now=NOW))["_id"]


def person(i: int) -> Enrol:
    return Enrol(name=f"Deelnemer {i}", contact={"phone": f"06 1234 {i:04d}"}, consent=True)


async def test_fifty_concurrent_enrolments_for_eight_seats(courses):
    repo, events = courses
    run_id = await klik_en_tik_run(repo, events)

    results = await asyncio.gather(
        *(
            handlers.enrol(run_id, person(i), library="rivierenland", repo=repo, events=events, now=NOW)
            for i in range(50)
        )
    )

    enrolled = [r for r in results if r["status"] == "enrolled"]
    waitlisted = sorted((r for r in results if r["status"] == "waitlisted"), key=lambda r: r["position"])
    assert len(enrolled) == 8 and len(waitlisted) == 42
    assert sorted(r["position"] for r in enrolled) == list(range(1, 9))
    assert [r["position"] for r in waitlisted] == list(range(9, 51)), "the waitlist in arrival order"
    assert await repo.seats_taken(run_id) == 8


async def test_a_freed_seat_is_offered_first_in_first_out_and_lapses_after_its_window(courses):
    repo, events = courses
    run_id = await klik_en_tik_run(repo, events)
    people = [
        await handlers.enrol(run_id, person(i), library="rivierenland", repo=repo, events=events, now=NOW)
        for i in range(10)
    ]
    first_waiting, second_waiting = people[8]["_id"], people[9]["_id"]

    await handlers.cancel(people[0]["_id"], library="rivierenland", repo=repo, events=events, now=NOW, window=WINDOW)
    offered = await repo.enrolment(first_waiting)
    assert offered["status"] == "offered" and offered["offered_until"] == NOW + WINDOW
    assert (await repo.enrolment(second_waiting))["status"] == "waitlisted"

    later = NOW + WINDOW - timedelta(minutes=1)
    assert await handlers.expire_offers(repo=repo, events=events, now=later, window=WINDOW) == 0
    assert await handlers.expire_offers(repo=repo, events=events, now=NOW + WINDOW, window=WINDOW) == 1
    assert (await repo.enrolment(first_waiting))["status"] == "offer_expired"
    assert (await repo.enrolment(second_waiting))["status"] == "offered", "the next in line gets the seat"

    with pytest.raises(handlers.Refused):  # too late for the first
        await handlers.accept_offer(first_waiting, library="rivierenland", repo=repo, now=NOW + WINDOW)
    accepted = await handlers.accept_offer(second_waiting, library="rivierenland", repo=repo, now=NOW + WINDOW)
    assert accepted["status"] == "enrolled"
    statuses = [e["status"] for e in await repo.enrolments_of(run_id)]
    assert statuses.count("enrolled") == 8 and await repo.seats_taken(run_id) == 8


async def test_the_same_participant_cannot_enrol_twice(courses):
    repo, events = courses
    run_id = await klik_en_tik_run(repo, events)
    await handlers.enrol(run_id, person(1), library="rivierenland", repo=repo, events=events, now=NOW)
    from services.courses.adapters.repository import AlreadyEnrolled

    with pytest.raises(AlreadyEnrolled):
        await handlers.enrol(run_id, person(1), library="rivierenland", repo=repo, events=events, now=NOW)
    assert await repo.seats_taken(run_id) == 1
