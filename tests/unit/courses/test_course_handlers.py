"""Courses' handlers with a fake unit of work: fake repositories in memory and the list of
events emitted. No database: what a handler loads, saves and emits, one use case at a time."""

import copy
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from services.courses import handlers
from services.courses.domain.model import (
    DEFAULT_COURSE_TYPES,
    CourseAdvice,
    CourseRun,
    CourseType,
    Enrol,
    EnrolFromAdvice,
    LibraryReadiness,
    Location,
    ScheduleRefused,
    ScheduleRun,
    Session,
)
from shared.events.catalog import HelpRequestRouted, IdoLocationRegistered, QuestionDecision
from shared.outbox import EventFactory

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
START = NOW + timedelta(days=7)
LIB = "venlo"
EVENTS = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")


class FakeCourseTypes:
    def __init__(self) -> None:
        self.types: dict[str, CourseType] = {}

    async def get(self, code):
        return self.types.get(code)

    async def all(self):
        return sorted(self.types.values(), key=lambda t: t.code)

    async def put(self, course):
        self.types[course.code] = course

    async def add_missing(self, courses):
        for course in courses:
            self.types.setdefault(course.code, course)


class FakeTeachers:
    def __init__(self) -> None:
        self.register: dict[str, tuple[str, list[str]]] = {}
        self.sessions: dict[str, list[Session]] = {}

    async def certified(self, teacher, course_type):
        return course_type in self.register.get(teacher, ("", []))[1]

    async def put(self, teacher, name, certified_for):
        self.register[teacher] = (name, certified_for)

    async def busy(self, teacher):
        return self.sessions.get(teacher, [])


class FakeLocations:
    def __init__(self) -> None:
        self.locations: dict[str, Location] = {}

    async def put(self, location_id, location):
        self.locations[location_id] = location

    async def get(self, library, code):
        return self.locations.get(f"{library}:{code}")


class FakeRuns:
    """Stores copies, as a database would: a change counts only once saved."""

    def __init__(self) -> None:
        self.runs: dict[str, CourseRun] = {}
        self.locked: list[str] = []
        self.erased: list[tuple[datetime, datetime]] = []

    @staticmethod
    def _stored(run: CourseRun) -> CourseRun:
        return copy.deepcopy(CourseRun(**{**run.__dict__, "events": []}))

    async def add(self, run):
        self.runs[run.id] = self._stored(run)

    async def lock(self, run_id):
        self.locked.append(run_id)
        return copy.deepcopy(self.runs.get(run_id))

    async def save(self, run):
        self.runs[run.id] = self._stored(run)

    async def get(self, run_id):
        return copy.deepcopy(self.runs.get(run_id))

    async def run_of_enrolment(self, key):
        return next((r.id for r in self.runs.values() if key in r.enrolments), None)

    async def enrolment(self, key):
        return next((copy.deepcopy(r.enrolments[key]) for r in self.runs.values() if key in r.enrolments), None)

    async def with_expired_offers(self, now):
        return [
            r.id
            for r in self.runs.values()
            if any(e.status == "offered" and e.offered_until <= now for e in r.enrolments.values())
        ]

    async def upcoming_of(self, library, course_types, now):
        found = [
            r
            for r in self.runs.values()
            if r.library == library and r.status == "scheduled" and r.course_type in course_types
        ]
        return sorted((r for r in found if r.first_session_at > now), key=lambda r: r.first_session_at)

    async def erase_participants_of_runs_ended_before(self, moment, now):
        self.erased.append((moment, now))
        return ["run-a", "run-b"]


class FakeReadiness:
    def __init__(self) -> None:
        self.saved: dict[str, dict[str, set[str]]] = {}
        self.locked: list[str] = []

    async def lock(self, library):
        self.locked.append(library)
        return LibraryReadiness(library, copy.deepcopy(self.saved.get(library, {})))

    async def save(self, readiness, at):
        self.saved[readiness.library] = copy.deepcopy(readiness.trained)


class FakeAdvice:
    def __init__(self) -> None:
        self.advice: dict[tuple[str, int], CourseAdvice] = {}

    async def add(self, advice):
        self.advice.setdefault((advice.help_request_id, advice.question_index), advice)

    async def for_request(self, help_request_id):
        return [a for (h, _), a in sorted(self.advice.items()) if h == help_request_id]


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.course_types = FakeCourseTypes()
        self.teachers = FakeTeachers()
        self.locations = FakeLocations()
        self.runs = FakeRuns()
        self.readiness = FakeReadiness()
        self.advice = FakeAdvice()
        self.emitted: list = []
        self.units_opened = 0

    def emit(self, *events):
        self.emitted.extend(events)

    def units(self):
        """A factory of units of work: all the same fake here."""

        @asynccontextmanager
        async def start():
            self.units_opened += 1
            yield self

        return start

    def published(self) -> list[tuple[str, str, int | None]]:
        """(type, correlation id, position) of each event emitted, then forgotten."""
        found = [
            (p.event.type.rsplit(".", 1)[-1], p.event.correlationid, p.event.data.get("position")) for p in self.emitted
        ]
        self.emitted.clear()
        return found


@pytest.fixture
async def uow() -> FakeUnitOfWork:
    uow = FakeUnitOfWork()
    await handlers.seed_course_types(DEFAULT_COURSE_TYPES, uow=uow)
    await uow.locations.put(f"{LIB}:centrum", Location(library=LIB, code="centrum", postcode="5911 AA"))
    return uow


TYPES = {t.code: t for t in DEFAULT_COURSE_TYPES}


def schedule_cmd(course_type="klik-en-tik", *, capacity=None, teacher=None, sessions=None) -> ScheduleRun:
    """A run as its type prescribes (its number and length of sessions, weekly), unless told."""
    course = TYPES[course_type]
    length = timedelta(minutes=course.session_minutes)
    return ScheduleRun(
        course_type=course_type,
        location="centrum",
        teacher=teacher,
        capacity=capacity,
        sessions=[
            {"starts_at": START + timedelta(days=7 * i), "ends_at": START + timedelta(days=7 * i) + length}
            for i in range(course.sessions if sessions is None else sessions)
        ],
    )


async def scheduled(uow, course_type="klik-en-tik", *, capacity=None, sessions=None) -> str:
    run = await handlers.schedule_run(
        schedule_cmd(course_type, capacity=capacity, sessions=sessions), library=LIB, uow=uow, events=EVENTS, now=NOW
    )
    uow.emitted.clear()
    return run.id


def person(i: int, staff: str | None = None) -> Enrol:
    return Enrol(name=f"P{i}", contact={"phone": f"06 1111 {i:04d}"}, consent=True, staff_member=staff)


async def enrol(uow, run_id, i, staff=None):
    return await handlers.enrol(run_id, person(i, staff), library=LIB, uow=uow, events=EVENTS, now=NOW)


async def test_scheduling_saves_the_run_and_emits_course_run_scheduled(uow):
    run = await handlers.schedule_run(schedule_cmd(capacity=6), library=LIB, uow=uow, events=EVENTS, now=NOW)
    assert uow.runs.runs[run.id].capacity == 6 and uow.runs.runs[run.id].postcode == "5911 AA"
    (pending,) = uow.emitted
    assert pending.topic == "ido.courses.v1" and pending.event.subject == run.id
    assert pending.event.correlationid == run.id and pending.event.data["postcode"] == "5911 AA"


async def test_scheduling_is_refused_at_an_unknown_location_or_when_the_teacher_is_busy(uow):
    with pytest.raises(ScheduleRefused) as nowhere:
        await handlers.schedule_run(
            schedule_cmd().model_copy(update={"location": "elders"}), library=LIB, uow=uow, events=EVENTS, now=NOW
        )
    assert nowhere.value.field == "location"
    uow.teachers.sessions["jan"] = [Session(starts_at=START, ends_at=START + timedelta(hours=1))]
    with pytest.raises(ScheduleRefused) as busy:
        await handlers.schedule_run(schedule_cmd(teacher="jan"), library=LIB, uow=uow, events=EVENTS, now=NOW)
    assert busy.value.field == "teacher"
    with pytest.raises(ScheduleRefused) as uncertified:
        await handlers.schedule_run(
            schedule_cmd("digisterker", teacher="piet"), library=LIB, uow=uow, events=EVENTS, now=NOW
        )
    assert uncertified.value.field == "teacher"
    await handlers.put_teacher("piet", "Piet", ["digisterker"], uow=uow)
    await handlers.schedule_run(
        schedule_cmd("digisterker", teacher="piet"), library=LIB, uow=uow, events=EVENTS, now=NOW
    )
    (run,) = uow.runs.runs.values()
    assert run.teacher == "piet" and [kind for kind, _, _ in uow.published()] == ["CourseRunScheduled"]


async def test_enrolment_locks_the_run_saves_it_and_emits_in_arrival_order(uow):
    run_id = await scheduled(uow, capacity=1)
    first = await enrol(uow, run_id, 1)
    second = await enrol(uow, run_id, 2)
    assert (first.status, second.status) == ("enrolled", "waitlisted")
    assert uow.runs.locked == [run_id, run_id]
    assert uow.published() == [
        ("ParticipantEnrolled", run_id, 1),
        ("ParticipantWaitlisted", run_id, 2),
    ]
    stored = uow.runs.runs[run_id]
    assert stored.next_position == 2 and stored.seats_taken == 1 and set(stored.enrolments) == {first.id, second.id}


async def test_enrolment_errors(uow):
    run_id = await scheduled(uow)
    with pytest.raises(handlers.NotFound):
        await handlers.enrol(run_id, person(1), library="katwijk", uow=uow, events=EVENTS, now=NOW)
    with pytest.raises(handlers.NotFound):
        await enrol(uow, "no-such-run", 1)
    await enrol(uow, run_id, 1)
    with pytest.raises(handlers.AlreadyEnrolled):
        await enrol(uow, run_id, 1)
    staff_run = await scheduled(uow, "doorvragen", sessions=1)
    with pytest.raises(handlers.Invalid):
        await enrol(uow, staff_run, 2)
    with pytest.raises(handlers.Refused):
        await handlers.enrol(run_id, person(3), library=LIB, uow=uow, events=EVENTS, now=START)


async def test_a_cancellation_and_the_offer_of_its_seat_are_one_unit_of_work(uow):
    run_id = await scheduled(uow, capacity=1)
    first, second = await enrol(uow, run_id, 1), await enrol(uow, run_id, 2)
    uow.emitted.clear()
    cancelled = await handlers.cancel(first.id, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    assert cancelled.status == "cancelled"
    assert uow.published() == [("EnrolmentCancelled", run_id, 1), ("SeatOffered", run_id, 2)]
    assert uow.runs.runs[run_id].enrolments[second.id].offered_until == NOW + WINDOW
    with pytest.raises(handlers.NotFound):
        await handlers.cancel("nobody", library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    with pytest.raises(handlers.NotFound):
        await handlers.cancel(second.id, library="katwijk", uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    with pytest.raises(handlers.Refused):
        await handlers.cancel(first.id, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)


async def test_accepting_an_offer_saves_it_and_publishes_participant_enrolled(uow):
    run_id = await scheduled(uow, capacity=1)
    first, second = await enrol(uow, run_id, 1), await enrol(uow, run_id, 2)
    await handlers.cancel(first.id, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    uow.emitted.clear()
    accepted = await handlers.accept_offer(second.id, library=LIB, uow=uow, events=EVENTS, now=NOW + timedelta(hours=1))
    assert accepted.status == "enrolled" and uow.runs.runs[run_id].enrolments[second.id].status == "enrolled"
    assert uow.published() == [("ParticipantEnrolled", run_id, 2)], "reporting must learn the seat was taken"


async def test_changing_capacity_publishes_the_new_capacity(uow):
    run_id = await scheduled(uow, capacity=1)
    await enrol(uow, run_id, 1)
    await enrol(uow, run_id, 2)
    uow.emitted.clear()
    await handlers.change_capacity(run_id, 2, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    assert uow.published() == [("CourseRunCapacityChanged", run_id, None), ("SeatOffered", run_id, 2)]
    await handlers.change_capacity(run_id, 2, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    assert uow.published() == [], "an unchanged capacity is no change"


async def test_expiry_handles_each_run_in_its_own_unit_of_work(uow):
    runs = [await scheduled(uow, capacity=1) for _ in range(2)]
    for run_id in runs:
        first = await enrol(uow, run_id, 1)
        await enrol(uow, run_id, 2)
        await enrol(uow, run_id, 3)
        await handlers.cancel(first.id, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    uow.emitted.clear()
    expired = await handlers.expire_offers(units=uow.units(), events=EVENTS, now=NOW + WINDOW, window=WINDOW)
    assert expired == 2 and uow.units_opened == 3, "one to find the runs, one per run"
    assert uow.published() == [
        ("SeatOfferExpired", runs[0], 2),
        ("SeatOffered", runs[0], 3),
        ("SeatOfferExpired", runs[1], 2),
        ("SeatOffered", runs[1], 3),
    ]
    assert await handlers.expire_offers(units=uow.units(), events=EVENTS, now=NOW + WINDOW, window=WINDOW) == 0


async def test_cancelling_a_run_and_changing_its_capacity(uow):
    run_id = await scheduled(uow, capacity=1)
    await enrol(uow, run_id, 1)
    second = await enrol(uow, run_id, 2)
    uow.emitted.clear()
    with pytest.raises(handlers.Invalid):
        await handlers.change_capacity(run_id, 9, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    run = await handlers.change_capacity(run_id, 2, library=LIB, uow=uow, events=EVENTS, now=NOW, window=WINDOW)
    assert run.seats_free == 0 and uow.runs.runs[run_id].enrolments[second.id].status == "offered"
    assert uow.published() == [("CourseRunCapacityChanged", run_id, None), ("SeatOffered", run_id, 2)]
    run = await handlers.cancel_run(run_id, library=LIB, uow=uow, events=EVENTS, now=NOW)
    assert run.status == "cancelled" and run.seats_taken == 0
    assert uow.published() == [
        ("CourseRunCancelled", run_id, None),
        ("EnrolmentCancelled", run_id, 1),
        ("EnrolmentCancelled", run_id, 2),
    ]
    with pytest.raises(handlers.NotFound):
        await handlers.cancel_run(run_id, library="katwijk", uow=uow, events=EVENTS, now=NOW)


async def test_staff_completions_update_the_librarys_readiness_after_the_run(uow):
    run_id = await scheduled(uow, "doorvragen", sessions=1)
    staff = [await enrol(uow, run_id, i, staff=f"mw-{i}") for i in range(3)]
    uow.emitted.clear()
    done = await handlers.record_attendance(
        run_id, 1, [s.id for s in staff[:2]], library=LIB, uow=uow, events=EVENTS, now=START
    )
    assert done == [staff[0].id, staff[1].id]
    assert uow.readiness.locked == [LIB] and uow.readiness.saved[LIB] == {"doorvragen": {"mw-0", "mw-1"}}
    kinds = [(kind, correlation) for kind, correlation, _ in uow.published()]
    assert kinds == [
        ("AttendanceRecorded", run_id),
        ("EnrolmentCancelled", run_id),  # the third missed the first session
        ("CourseCompleted", run_id),
        ("StaffTrainingCompleted", run_id),
        ("CourseCompleted", run_id),
        ("StaffTrainingCompleted", run_id),
        ("LibraryReadinessChanged", LIB),
        ("LibraryReadinessChanged", LIB),
    ]


async def test_attendance_of_a_course_for_visitors_leaves_readiness_alone(uow):
    run_id = await scheduled(uow, "klik-en-tik-veilig-online", sessions=1)
    a = await enrol(uow, run_id, 1)
    done = await handlers.record_attendance(run_id, 1, [a.id], library=LIB, uow=uow, events=EVENTS, now=START)
    assert done == [a.id] and uow.readiness.locked == []


async def test_a_certificate_is_read_from_the_enrolment_and_its_run(uow):
    run_id = await scheduled(uow, "klik-en-tik-veilig-online", sessions=1)
    a = await enrol(uow, run_id, 1)
    with pytest.raises(handlers.Refused):
        await handlers.certificate(a.id, library=LIB, repos=uow)
    await handlers.record_attendance(run_id, 1, [a.id], library=LIB, uow=uow, events=EVENTS, now=START)
    record = await handlers.certificate(a.id, library=LIB, repos=uow)
    assert record["course"] == "Klik & Tik: Veilig online" and record["participant"] == "P1"
    with pytest.raises(handlers.NotFound):
        await handlers.certificate(a.id, library="katwijk", repos=uow)


async def test_erasure_asks_for_the_runs_ended_before_the_retention_period(uow):
    assert await handlers.purge_participants(retention=timedelta(days=90), uow=uow, now=NOW) == 2
    assert uow.runs.erased == [(NOW - timedelta(days=90), NOW)]


def routed(*decisions: QuestionDecision, library: str = LIB) -> HelpRequestRouted:
    return HelpRequestRouted(help_request_id="hr-1", library=library, decisions=list(decisions))


async def test_course_advice_from_routing_and_a_seat_in_one_call(uow):
    gov = QuestionDecision(question_index=0, outcome="course_advised", category="digital_government", theme="digid")
    other = QuestionDecision(question_index=1, outcome="helped_at_desk", category="other")
    await handlers.on_help_request_routed(None, routed(gov, other), uow=uow, now=NOW)
    await handlers.on_help_request_routed(None, routed(gov, other), uow=uow, now=NOW + timedelta(hours=1))
    (advice,) = uow.advice.advice.values()
    assert advice.course_types == ["digisterker", "klik-en-tik"] and advice.advised_at == NOW

    run_id = await scheduled(uow, "klik-en-tik")
    veilig = await scheduled(uow, "klik-en-tik-veilig-online", sessions=1)
    wanted, runs = await handlers.course_advice("hr-1", library=LIB, repos=uow, now=NOW)
    assert wanted == ["digisterker", "klik-en-tik"] and [r.id for r in runs] == [run_id]
    with pytest.raises(handlers.NotFound):
        await handlers.course_advice("hr-1", library="katwijk", repos=uow, now=NOW)

    def cmd(run: str) -> EnrolFromAdvice:
        return EnrolFromAdvice(run_id=run, name="Bezoeker", contact={"phone": "0612345678"}, consent=True)

    with pytest.raises(handlers.Invalid) as invalid:
        await handlers.enrol_from_advice("hr-1", cmd(veilig), library=LIB, uow=uow, events=EVENTS, now=NOW)
    assert invalid.value.field == "run_id"
    with pytest.raises(handlers.NotFound):
        await handlers.enrol_from_advice("hr-2", cmd(run_id), library=LIB, uow=uow, events=EVENTS, now=NOW)
    enrolment = await handlers.enrol_from_advice("hr-1", cmd(run_id), library=LIB, uow=uow, events=EVENTS, now=NOW)
    assert enrolment.status == "enrolled" and uow.published() == [("ParticipantEnrolled", run_id, 1)]


async def test_a_registered_location_is_kept_under_intakes_id(uow):
    data = IdoLocationRegistered(
        location_id=f"{LIB}:blerick",
        library=LIB,
        code="blerick",
        name="IDO Blerick",
        postcode="5921 AB",
        city="Venlo",
        municipality="Venlo",
        opening_hours_per_week=12,
        staff=1,
        volunteers=2,
        registered_at=NOW,
    )
    await handlers.on_location_registered(None, data, uow=uow)
    assert uow.locations.locations[f"{LIB}:blerick"] == Location(
        library=LIB, code="blerick", postcode="5921 AB", name="IDO Blerick", municipality="Venlo"
    )
