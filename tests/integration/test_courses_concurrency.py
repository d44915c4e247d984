"""Two instances of courses on one database: two connection pools driving the real handlers and
repositories at the same time. The run's row lock (SELECT ... FOR UPDATE) serializes everything
on one run, so seats go strictly in arrival order, no run is ever overbooked, an offer lapses
once however many expiry watches run, and every change is one event in commit order."""

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from services.courses import handlers
from services.courses.adapters.repository import CoursesUnitOfWork, reading, units_of_work
from services.courses.domain.model import DEFAULT_COURSE_TYPES, AlreadyEnrolled, Enrol, ScheduleRefused, ScheduleRun
from shared.events.catalog import IdoLocationRegistered
from shared.outbox import EventFactory

pytestmark = pytest.mark.infra

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
LIB = "zaanstreek"
EVENTS = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")
HOLDS_SEAT = {"enrolled", "offered"}


class Instance:
    """One instance of the service: its own pool, the real handlers and repositories."""

    def __init__(self, db) -> None:
        self.db = db

    async def within(self, handler, *args, **kwargs):
        async with self.db.unit_of_work() as tx:
            return await handler(*args, uow=CoursesUnitOfWork(tx), **kwargs)

    async def schedule(self, capacity: int = 8, *, teacher: str | None = None, day: int = 7, sessions: int = 8):
        """Klik & Tik (eight sessions) or, with one session, Klik & Tik: Veilig online."""
        start = NOW + timedelta(days=day)
        cmd = ScheduleRun(
            course_type="klik-en-tik" if sessions == 8 else "klik-en-tik-veilig-online",
            location="centrum",
            capacity=capacity,
            teacher=teacher,
            sessions=[
                {"starts_at": start + timedelta(days=7 * i), "ends_at": start + timedelta(days=7 * i, hours=2)}
                for i in range(sessions)
            ],
        )
        return await self.within(handlers.schedule_run, cmd, library=LIB, events=EVENTS, now=NOW)

    async def enrol(self, run_id: str, i: int, now: datetime = NOW):
        return await self.within(handlers.enrol, run_id, person(i), library=LIB, events=EVENTS, now=now)

    async def cancel(self, key: str, now: datetime = NOW):
        return await self.within(handlers.cancel, key, library=LIB, events=EVENTS, now=now, window=WINDOW)

    async def accept(self, key: str, now: datetime):
        return await self.within(handlers.accept_offer, key, library=LIB, events=EVENTS, now=now)

    async def expire(self, now: datetime) -> int:
        return await handlers.expire_offers(units=units_of_work(self.db), events=EVENTS, now=now, window=WINDOW)


def person(i: int) -> Enrol:
    return Enrol(name=f"Deelnemer {i}", contact={"phone": f"06 5555 {i:04d}"}, consent=True)


@pytest.fixture
async def instances(migrated) -> tuple[Instance, Instance]:
    first, second = Instance(await migrated("courses")), Instance(await migrated("courses"))
    location = IdoLocationRegistered(
        location_id=f"{LIB}:centrum",
        library=LIB,
        code="centrum",
        name="IDO Zaandam",
        postcode="1506 AA",
        city="Zaandam",
        opening_hours_per_week=30,
        staff=3,
        volunteers=4,
        registered_at=NOW,
    )
    await first.within(handlers.on_location_registered, None, location)
    await first.within(handlers.seed_course_types, DEFAULT_COURSE_TYPES)
    return first, second


async def run_events(db, run_id: str) -> list[tuple[str, dict]]:
    """The run's events in outbox order (the order the relay publishes them in)."""
    rows = await db.fetch("SELECT value FROM outbox ORDER BY id")
    events = [json.loads(r["value"]) for r in rows]
    return [(e["type"].rsplit(".", 1)[-1], e["data"]) for e in events if e["subject"] == run_id]


async def statuses(db, run_id: str) -> dict[int, str]:
    return {e.position: e.status for e in await reading(db).runs.enrolments_of(run_id)}


async def assert_consistent(db, run_id: str) -> None:
    """Never more seats taken than capacity; the run's count, the seats held and the waitlist agree."""
    run = await reading(db).runs.get(run_id)
    assert run is not None
    enrolments = await reading(db).runs.enrolments_of(run_id)
    holders = [e for e in enrolments if e.status in HOLDS_SEAT]
    assert len(holders) == run.seats_taken <= run.capacity
    assert all(e.seat is not None for e in holders) and len({e.seat for e in holders}) == len(holders)
    if any(e.status == "waitlisted" for e in enrolments):
        assert run.seats_taken == run.capacity, "a free seat while someone waits"
    assert sorted(e.position for e in enrolments) == list(range(1, run.next_position + 1))


async def test_fifty_enrolments_over_two_instances_take_eight_seats_in_arrival_order(instances):
    first, second = instances
    for _ in range(10):
        run_id = (await first.schedule(capacity=8)).id
        results = await asyncio.gather(*((first, second)[i % 2].enrol(run_id, i) for i in range(50)))

        seated = sorted(r.position for r in results if r.status == "enrolled")
        waiting = sorted(r.position for r in results if r.status == "waitlisted")
        assert seated == list(range(1, 9)) and waiting == list(range(9, 51))
        assert len({r.id for r in results}) == 50
        # Arrival = the order in which the enrolments got the run's lock, which is also the order
        # of their events in the outbox: positions 1..50 in outbox order, the first 8 seated.
        (scheduled, *enrolments) = await run_events(first.db, run_id)
        assert scheduled[0] == "CourseRunScheduled"
        assert [(kind, data["position"]) for kind, data in enrolments] == [
            ("ParticipantEnrolled", p) for p in range(1, 9)
        ] + [("ParticipantWaitlisted", p) for p in range(9, 51)]
        by_id = {data["enrolment_id"]: data["position"] for _, data in enrolments}
        assert all(by_id[r.id] == r.position for r in results), "each answer carries the position of its event"
        await assert_consistent(second.db, run_id)


async def test_cancellations_offers_acceptance_and_expiry_from_two_instances(instances):
    first, second = instances
    run_id = (await first.schedule(capacity=8)).id
    people = [await first.enrol(run_id, i) for i in range(20)]  # positions 1..8 seated, 9..20 waiting
    key = {e.position: e.id for e in people}

    # Five seats freed at once from both instances: each goes to the next in line, in order.
    await asyncio.gather(*((first, second)[p % 2].cancel(key[p]) for p in range(1, 6)))
    assert [p for p, s in (await statuses(first.db, run_id)).items() if s == "offered"] == [9, 10, 11, 12, 13]
    offers = [data["position"] for kind, data in await run_events(first.db, run_id) if kind == "SeatOffered"]
    assert offers == [9, 10, 11, 12, 13], "offered first in, first out"
    await assert_consistent(first.db, run_id)

    # Acceptances, a cancelled offer and a cancelled waitlist place, all at once.
    an_hour_later = NOW + timedelta(hours=1)
    await asyncio.gather(
        first.accept(key[9], an_hour_later),
        second.accept(key[10], an_hour_later),
        first.cancel(key[13], an_hour_later),
        second.cancel(key[20], an_hour_later),
    )
    await assert_consistent(second.db, run_id)

    # Both instances' expiry watches, several scans each, at the end of the first offers' window.
    expired = await asyncio.gather(*((first, second)[i % 2].expire(NOW + WINDOW) for i in range(6)))
    assert sum(expired) == 2, "the offers to 11 and 12 lapse, each once"
    events = await run_events(first.db, run_id)
    assert [data["position"] for kind, data in events if kind == "SeatOfferExpired"] == [11, 12]
    assert [data["position"] for kind, data in events if kind == "SeatOffered"] == [9, 10, 11, 12, 13, 14, 15, 16]

    final = await statuses(first.db, run_id)
    assert final == {
        **{p: "cancelled" for p in (1, 2, 3, 4, 5, 13, 20)},
        **{p: "enrolled" for p in (6, 7, 8, 9, 10)},
        **{p: "offer_expired" for p in (11, 12)},
        **{p: "offered" for p in (14, 15, 16)},
        **{p: "waitlisted" for p in (17, 18, 19)},
    }
    await assert_consistent(first.db, run_id)
    assert await first.expire(NOW + WINDOW) == 0


async def test_a_mix_of_everything_from_two_instances_never_overbooks(instances):
    """Random enrolments, cancellations, acceptances and expiry scans at once, round after round;
    the run stays consistent and its event stream never shows more seats taken than capacity."""
    first, second = instances
    rng = random.Random(20261201)
    capacity = 5
    run_id = (await first.schedule(capacity=capacity)).id
    known: list[str] = []
    newcomer = 0
    for round_ in range(8):
        now = NOW + timedelta(hours=10 * round_)
        operations = []
        for _ in range(12):
            instance = rng.choice((first, second))
            choice = rng.random()
            if choice < 0.45 or not known:
                newcomer += 1
                operations.append(instance.enrol(run_id, newcomer, now))
            elif choice < 0.7:
                operations.append(instance.cancel(rng.choice(known), now))
            elif choice < 0.9:
                operations.append(instance.accept(rng.choice(known), now))
            else:
                operations.append(instance.expire(now))
        results = await asyncio.gather(*operations, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                assert isinstance(result, handlers.Refused), repr(result)  # e.g. no open offer any more
            elif hasattr(result, "id") and result.id not in known:
                known.append(result.id)
        await assert_consistent(rng.choice((first, second)).db, run_id)

    # Replay the run's events in outbox order: seats never exceed capacity at any point, and
    # an enrolment's last event agrees with its state (an accepted offer: ParticipantEnrolled).
    held: set[str] = set()
    last: dict[str, str] = {}
    for kind, data in (await run_events(first.db, run_id))[1:]:
        key = data["enrolment_id"]
        if kind == "ParticipantEnrolled" and last.get(key) == "SeatOffered":
            assert key in held, "an accepted offer keeps the seat it held"
        elif kind in ("ParticipantEnrolled", "SeatOffered"):
            assert key not in held
            held.add(key)
        elif kind in ("SeatOfferExpired", "EnrolmentCancelled"):
            held.discard(key)
        assert len(held) <= capacity
        last[key] = kind
    expected = {
        "ParticipantEnrolled": {"enrolled"},
        "ParticipantWaitlisted": {"waitlisted"},
        "SeatOffered": {"offered"},
        "SeatOfferExpired": {"offer_expired"},
        "EnrolmentCancelled": {"cancelled"},
    }
    enrolments = await reading(first.db).runs.enrolments_of(run_id)
    assert len(enrolments) == len(last) == len(known)
    for e in enrolments:
        assert e.status in expected[last[e.id]], (e.position, e.status, last[e.id])
    assert {e.id for e in enrolments if e.status in HOLDS_SEAT} == held
    expired = [data["enrolment_id"] for kind, data in await run_events(first.db, run_id) if kind == "SeatOfferExpired"]
    assert len(expired) == len(set(expired)), "an offer lapses once"


async def test_the_same_person_enrolling_twice_at_once_from_two_instances_is_enrolled_once(instances):
    first, second = instances
    run_id = (await first.schedule()).id
    for i in range(5):
        results = await asyncio.gather(first.enrol(run_id, i), second.enrol(run_id, i), return_exceptions=True)
        assert sorted(type(r).__name__ for r in results) == ["AlreadyEnrolled", "Enrolment"]
        assert any(isinstance(r, AlreadyEnrolled) for r in results)
    assert list((await statuses(first.db, run_id)).keys()) == [1, 2, 3, 4, 5], "no arrival number lost"


async def test_a_teacher_scheduled_twice_at_once_from_two_instances_teaches_one_run(instances):
    first, second = instances
    for day in range(10, 15):
        results = await asyncio.gather(
            first.schedule(teacher="docent-a", day=day, sessions=1),
            second.schedule(teacher="docent-a", day=day, sessions=1),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, ScheduleRefused)]
        assert len(refused) == 1 and refused[0].field == "teacher", results
    assert await first.db.fetchval("SELECT count(*) FROM course_runs WHERE teacher = 'docent-a'") == 5
    # Once a run is cancelled, its teacher is free again at that time.
    run_id = await first.db.fetchval("SELECT id FROM course_runs WHERE teacher = 'docent-a' ORDER BY first_session_at")
    await first.within(handlers.cancel_run, run_id, library=LIB, events=EVENTS, now=NOW)
    assert (await second.schedule(teacher="docent-a", day=10, sessions=1)).teacher == "docent-a"


async def test_staff_completions_from_two_instances_count_in_commit_order(instances):
    first, second = instances
    start = NOW + timedelta(days=3)
    runs, staff = [], {}
    for r in range(4):
        cmd = ScheduleRun(
            course_type="doorvragen",
            location="centrum",
            sessions=[{"starts_at": start + timedelta(hours=4 * r), "ends_at": start + timedelta(hours=4 * r + 3)}],
        )
        run_id = (await first.within(handlers.schedule_run, cmd, library=LIB, events=EVENTS, now=NOW)).id
        runs.append(run_id)
        for s in range(3):
            who = Enrol(
                name=f"M{r}{s}", contact={"email": f"m{r}{s}@example.nl"}, consent=True, staff_member=f"mw-{r}{s}"
            )
            staff.setdefault(run_id, []).append(
                (await first.within(handlers.enrol, run_id, who, library=LIB, events=EVENTS, now=NOW)).id
            )
    later = start + timedelta(days=1)
    await asyncio.gather(
        *(
            (first, second)[i % 2].within(
                handlers.record_attendance, run_id, 1, staff[run_id], library=LIB, events=EVENTS, now=later
            )
            for i, run_id in enumerate(runs)
        )
    )
    assert await reading(first.db).readiness.trained(LIB) == {
        "doorvragen": sorted(f"mw-{r}{s}" for r in range(4) for s in range(3))
    }
    rows = await first.db.fetch("SELECT value FROM outbox ORDER BY id")
    counts = [
        json.loads(r["value"])["data"]["trained_staff"]["doorvragen"]
        for r in rows
        if json.loads(r["value"])["type"].endswith(".LibraryReadinessChanged")
    ]
    assert counts == list(range(1, 13)), "the library's readiness events count up in commit order"


async def test_both_instances_erase_participants_once(instances):
    first, second = instances
    run_ids = [(await first.schedule(day=day, sessions=1)).id for day in (2, 3, 4)]
    for i, run_id in enumerate(run_ids):
        await first.enrol(run_id, i)
    retention = timedelta(days=90)
    after = NOW + timedelta(days=5) + retention

    async def purge(instance: Instance) -> int:
        return await instance.within(handlers.purge_participants, retention=retention, now=after)

    assert sum(await asyncio.gather(purge(first), purge(second), purge(first), purge(second))) == 3
    assert not await first.db.fetchval(
        "SELECT count(*) FROM enrolments WHERE name IS NOT NULL OR phone IS NOT NULL OR email IS NOT NULL"
    )
