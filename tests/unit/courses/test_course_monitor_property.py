"""Property: reporting's course monitor equals the courses service's own figures after ANY
sequence of enrol / cancel / offer (capacity raised) / accept / expire / no-show / run cancelled.

Seeded random sequences drive courses' real handlers on the fake unit of work; every event they
emit (as a CloudEvent, decoded as reporting's consumer decodes it) is folded by reporting's pure
projection (`changes_of`), and the monitor's figures (the same rules as its SQL: seats of
scheduled runs, enrolled = 'enrolled' or 'completed', waitlisted) are compared per run and per
course type with the state courses saved, after every operation."""

import random
from collections import Counter
from datetime import timedelta

import pytest

from services.courses import handlers
from services.courses.domain.model import (
    DEFAULT_COURSE_TYPES,
    AlreadyEnrolled,
    Enrol,
    Invalid,
    Location,
    NotFound,
    Refused,
    ScheduleRun,
)
from services.reporting.domain.projections import PROJECTIONS, Changes, EnrolmentState, RunChange, changes_of
from shared.events import catalog
from tests.unit.courses.test_course_handlers import EVENTS, LIB, NOW, WINDOW, FakeUnitOfWork

TYPES = {t.code: t for t in DEFAULT_COURSE_TYPES}
EXPECTED = (Refused, Invalid, NotFound, AlreadyEnrolled)  # refusals: nothing saved, nothing emitted


def run_cmd(course_type: str, rng: random.Random) -> ScheduleRun:
    """A run as its type prescribes: the type's number and length of sessions, a week apart."""
    course = TYPES[course_type]
    start = NOW + timedelta(hours=rng.randint(24, 96))
    return ScheduleRun(
        course_type=course_type,
        location="centrum",
        capacity=rng.randint(1, 2),
        sessions=[
            {
                "starts_at": start + timedelta(days=7 * i),
                "ends_at": start + timedelta(days=7 * i, minutes=course.session_minutes),
            }
            for i in range(course.sessions)
        ],
    )


def courses_figures(uow: FakeUnitOfWork) -> tuple[dict, dict]:
    """Courses' own figures from the runs it saved: per run and per course type."""
    per_run: dict[str, Counter] = {}
    per_type: dict[str, Counter] = {}
    for run in uow.runs.runs.values():
        statuses = Counter(e.status for e in run.enrolments.values())
        f = Counter(
            seats=run.capacity if run.status == "scheduled" else 0,
            enrolled=statuses["enrolled"],
            waitlisted=statuses["waitlisted"],
        )
        per_run[run.id] = f
        per_type.setdefault(run.course_type, Counter()).update(f)
    return per_run, per_type


def monitor_figures(changes: Changes) -> tuple[dict, dict]:
    """The course monitor's figures from reporting's read-model rows (as COURSE_FIGURES counts)."""
    states: dict[str, Counter] = {}
    for row in changes.of(EnrolmentState):
        states.setdefault(row.run_id, Counter())[row.state] += 1
    per_run: dict[str, Counter] = {}
    per_type: dict[str, Counter] = {}
    for run in changes.of(RunChange):
        s = states.get(run.run_id, Counter())
        f = Counter(
            seats=(run.capacity or 0) if run.status == "scheduled" else 0,
            enrolled=s["enrolled"] + s["completed"],
            waitlisted=s["waitlisted"],
        )
        per_run[run.run_id] = f
        assert run.course_type is not None, "every run in the monitor has its course type"
        per_type.setdefault(run.course_type, Counter()).update(f)
    return per_run, per_type


def project(uow: FakeUnitOfWork, into: Changes) -> None:
    """What reporting's consumer receives: the emitted CloudEvents of the types it subscribes to,
    their data decoded from the JSON as published."""
    received = []
    for pending in uow.emitted:
        event = pending.event
        if event.name in PROJECTIONS:
            received.append((event, catalog.data_model(event.name).model_validate(event.data)))
    uow.emitted.clear()
    changes_of(received, into=into)


async def play(seed: int, operations: int = 30) -> list[str]:
    rng = random.Random(seed)
    uow = FakeUnitOfWork()
    await handlers.seed_course_types(DEFAULT_COURSE_TYPES, uow=uow)
    await uow.locations.put(f"{LIB}:centrum", Location(library=LIB, code="centrum", postcode="5911 AA"))
    changes = Changes()
    now = NOW
    runs = []
    for course_type in rng.sample(["klik-en-tik", "klik-en-tik-veilig-online", "digisterker", "doorvragen"], 3):
        cmd = run_cmd(course_type, rng)
        if TYPES[course_type].certified_teacher_required:
            await uow.teachers.put("t-1", "Teacher", [course_type])
            cmd.teacher = "t-1"
        runs.append((await handlers.schedule_run(cmd, library=LIB, uow=uow, events=EVENTS, now=now)).id)
    project(uow, changes)
    people = 0
    done = []
    for _ in range(operations):
        now += timedelta(hours=rng.choice([0, 0.5, 1, 2, 4]))
        run_id = rng.choice(runs)
        keys = sorted(uow.runs.runs[run_id].enrolments)
        op = rng.choice(["enrol"] * 4 + ["cancel"] * 2 + ["accept"] * 2 + ["offer"] * 2 + ["expire", "no_show"])
        if rng.random() < 0.02:
            op = "cancel_run"
        run = uow.runs.runs[run_id]
        offered = sorted(k for r in uow.runs.runs.values() for k, e in r.enrolments.items() if e.status == "offered")
        if (op in ("cancel", "accept") and not keys) or (op == "no_show" and run.first_session_at > now + WINDOW):
            op = "expire"  # nothing to cancel or accept yet, or the run is days away: let time pass
        try:
            if op == "enrol":
                people += 1
                person = Enrol(
                    name=f"P{people}",
                    contact={"phone": f"06 1111 {people:04d}"},
                    consent=True,
                    staff_member=f"s{people}",
                )
                await handlers.enrol(run_id, person, library=LIB, uow=uow, events=EVENTS, now=now)
            elif op == "cancel":
                await handlers.cancel(rng.choice(keys), library=LIB, uow=uow, events=EVENTS, now=now, window=WINDOW)
            elif op == "accept":  # mostly an open offer; sometimes one that lapsed, or no offer at all
                key = rng.choice(offered if offered and rng.random() < 0.9 else keys)
                await handlers.accept_offer(key, library=LIB, uow=uow, events=EVENTS, now=now)
            elif op == "expire":
                await handlers.expire_offers(units=uow.units(), events=EVENTS, now=now, window=WINDOW)
            elif op == "offer":
                capacity = max(1, run.capacity + rng.choice([-1, 1, 2]))
                await handlers.change_capacity(
                    run_id, capacity, library=LIB, uow=uow, events=EVENTS, now=now, window=WINDOW
                )
            elif op == "no_show":
                now = max(now, run.first_session_at)  # the first session takes place
                enrolled = [k for k in keys if run.enrolments[k].status == "enrolled"]
                present = rng.sample(enrolled, rng.randint(0, len(enrolled)))
                await handlers.record_attendance(run_id, 1, present, library=LIB, uow=uow, events=EVENTS, now=now)
            elif op == "cancel_run":
                await handlers.cancel_run(run_id, library=LIB, uow=uow, events=EVENTS, now=now)
            done.append(op)
        except EXPECTED:
            assert not uow.emitted, f"{op} was refused but emitted events"
            done.append(f"{op} (refused)")
        project(uow, changes)
        own_runs, own_types = courses_figures(uow)
        seen_runs, seen_types = monitor_figures(changes)
        assert seen_runs == own_runs, f"seed {seed} after {done}"
        assert seen_types == own_types, f"seed {seed} after {done}"
    return done


@pytest.mark.parametrize("seed", range(50))
async def test_course_monitor_equals_courses_own_figures_after_any_sequence(seed):
    await play(seed)


async def test_the_sequences_exercise_every_operation():
    """The property is only as good as the sequences: together they accept offers, let them
    expire, free seats of no-shows, raise capacity and cancel."""
    done = Counter()
    for seed in range(50):
        done.update(await play(seed))
    for op in ("enrol", "cancel", "accept", "expire", "offer", "no_show"):
        assert done[op] >= 5, done
