"""Courses' use cases: one function per command or event, each ONE unit of work (transaction).

A change to a run loads it with `uow.runs.lock` (its row locked until commit: every change to
one run, from any instance, waits its turn), lets the `CourseRun` aggregate decide, saves it
and emits the facts it recorded. So the arrival order is the order in which enrolments got
the run's lock, and the run's events are written to the outbox in that same order."""

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.courses.domain import model
from services.courses.domain.model import AlreadyEnrolled as AlreadyEnrolled  # the domain's errors, re-exported
from services.courses.domain.model import (
    CourseAdvice,
    CourseRun,
    CourseType,
    Enrol,
    EnrolFromAdvice,
    Enrolment,
    Invalid,
    LibraryReadiness,
    Location,
    NotFound,
    ScheduleRun,
    advise,
    enrolment_id,
)
from services.courses.domain.model import Refused as Refused
from shared.events.catalog import HelpRequestRouted, IdoLocationRegistered
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory, PendingEvent


class Repositories(Protocol):
    """What the handlers use (adapters.repository.CoursesRepositories, or fakes in unit tests)."""

    course_types: Any
    teachers: Any
    locations: Any
    runs: Any
    readiness: Any
    advice: Any


class UnitOfWork(Repositories, Protocol):
    def emit(self, *events: PendingEvent) -> None: ...


Units = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


def _publish(uow: UnitOfWork, events: EventFactory, *aggregates: CourseRun | LibraryReadiness) -> None:
    """Hand the facts the aggregates recorded to the unit of work (outbox rows at commit)."""
    for aggregate in aggregates:
        uow.emit(*(events.create(fact, correlation_id=fact.subject()) for fact in aggregate.events))
        aggregate.events.clear()


async def _locked_run(run_id: str, library: str, uow: UnitOfWork) -> CourseRun:
    run = await uow.runs.lock(run_id)
    if run is None or run.library != library:
        raise NotFound(run_id)
    return run


async def _save(run: CourseRun, uow: UnitOfWork, events: EventFactory) -> None:
    await uow.runs.save(run)
    _publish(uow, events, run)


# -- the catalogue --------------------------------------------------------------------------------


async def seed_course_types(courses: list[CourseType], *, uow: UnitOfWork) -> None:
    await uow.course_types.add_missing(courses)


async def put_course_type(course: CourseType, *, uow: UnitOfWork) -> CourseType:
    await uow.course_types.put(course)
    return course


async def put_teacher(teacher_id: str, name: str, certified_for: list[str], *, uow: UnitOfWork) -> None:
    await uow.teachers.put(teacher_id, name, certified_for)


# -- runs and enrolments --------------------------------------------------------------------------


async def schedule_run(
    cmd: ScheduleRun, *, library: str, uow: UnitOfWork, events: EventFactory, now: datetime
) -> CourseRun:
    location = await uow.locations.get(library, cmd.location)
    course = await uow.course_types.get(cmd.course_type)
    certified = bool(cmd.teacher) and await uow.teachers.certified(cmd.teacher or "", cmd.course_type)
    busy = await uow.teachers.busy(cmd.teacher) if cmd.teacher else []
    run = model.schedule_run(
        cmd,
        run_id=str(uuid.uuid4()),
        library=library,
        location=location,
        course=course,
        teacher_certified=certified,
        teacher_sessions=busy,
        now=now,
    )
    await uow.runs.add(run)  # the teacher's exclusion constraint settles a race with another instance
    _publish(uow, events, run)
    return run


async def enrol(
    run_id: str, cmd: Enrol, *, library: str, uow: UnitOfWork, events: EventFactory, now: datetime
) -> Enrolment:
    """A seat if one is free and nobody waits for it, else a place on the waitlist; both in
    arrival order (the first `capacity` arrivals take the seats)."""
    run = await _locked_run(run_id, library, uow)
    course = await uow.course_types.get(run.course_type)
    enrolment = run.enrol(enrolment_id(run_id, cmd), cmd, course, now=now)
    await _save(run, uow, events)
    return enrolment


async def enrol_from_advice(
    help_request_id: str, cmd: EnrolFromAdvice, *, library: str, uow: UnitOfWork, events: EventFactory, now: datetime
) -> Enrolment:
    """The desk's advice becomes a seat (or a waitlist place) in one of the runs that fit it."""
    wanted = await _advised_course_types(help_request_id, library, uow)
    run = await uow.runs.lock(cmd.run_id)
    fits = (
        run is not None
        and run.library == library
        and run.status == "scheduled"
        and run.course_type in wanted
        and run.first_session_at > now
    )
    if not fits:
        raise Invalid("run_id", "not one of the upcoming runs that fit this advice")
    course = await uow.course_types.get(run.course_type)
    person = Enrol(**cmd.model_dump(exclude={"run_id"}))
    enrolment = run.enrol(enrolment_id(run.id, person), person, course, now=now)
    await _save(run, uow, events)
    return enrolment


async def _run_of_enrolment(enrolment_key: str, library: str, uow: UnitOfWork) -> CourseRun:
    run_id = await uow.runs.run_of_enrolment(enrolment_key)  # never changes: safe to read before the lock
    if run_id is None:
        raise NotFound(enrolment_key)
    return await _locked_run(run_id, library, uow)


async def cancel(
    enrolment_key: str, *, library: str, uow: UnitOfWork, events: EventFactory, now: datetime, window: timedelta
) -> Enrolment:
    """Cancel an enrolment or waitlist place; a freed seat is offered to the next in line."""
    run = await _run_of_enrolment(enrolment_key, library, uow)
    enrolment = run.cancel_enrolment(enrolment_key, now=now, window=window)
    await _save(run, uow, events)
    return enrolment


async def accept_offer(
    enrolment_key: str, *, library: str, uow: UnitOfWork, events: EventFactory, now: datetime
) -> Enrolment:
    """Accept a seat offered from the waitlist, within its window: the participant is enrolled
    (`ParticipantEnrolled`, as for a seat taken at once)."""
    run = await _run_of_enrolment(enrolment_key, library, uow)
    enrolment = run.accept_offer(enrolment_key, now=now)
    await _save(run, uow, events)
    return enrolment


async def expire_offers_of_run(
    run_id: str, *, uow: UnitOfWork, events: EventFactory, now: datetime, window: timedelta
) -> int:
    run = await uow.runs.lock(run_id)
    if run is None:
        return 0
    expired = run.expire_offers(now=now, window=window)
    if expired:
        await _save(run, uow, events)
    return expired


async def expire_offers(*, units: Units, events: EventFactory, now: datetime, window: timedelta) -> int:
    """Offers past their window lapse, each run in its own unit of work. Several instances may
    scan at once: under the run's lock the second finds the offers already lapsed."""
    async with units() as uow:
        run_ids = await uow.runs.with_expired_offers(now)
    expired = 0
    for run_id in run_ids:
        async with units() as uow:
            expired += await expire_offers_of_run(run_id, uow=uow, events=events, now=now, window=window)
    return expired


async def cancel_run(run_id: str, *, library: str, uow: UnitOfWork, events: EventFactory, now: datetime) -> CourseRun:
    """Cancel a run; every enrolment and waitlist place goes with it."""
    run = await _locked_run(run_id, library, uow)
    run.cancel(now=now)
    await _save(run, uow, events)
    return run


async def change_capacity(
    run_id: str,
    capacity: int,
    *,
    library: str,
    uow: UnitOfWork,
    events: EventFactory,
    now: datetime,
    window: timedelta,
) -> CourseRun:
    """Raise or lower a run's capacity within its type's maximum; new seats go to the waitlist."""
    run = await _locked_run(run_id, library, uow)
    course = await uow.course_types.get(run.course_type)
    run.change_capacity(capacity, course, now=now, window=window)
    await _save(run, uow, events)
    return run


async def record_attendance(
    run_id: str,
    session: int,
    present: list[str],
    *,
    library: str,
    uow: UnitOfWork,
    events: EventFactory,
    now: datetime,
    window: timedelta = timedelta(hours=24),
    no_show_frees_seat: bool = True,
) -> list[str]:
    """Who attended session `session` (1-based); returns the enrolments that completed the course.
    A staff member's completion also counts for the library's readiness (its row locked after
    the run's: always in that order)."""
    run = await _locked_run(run_id, library, uow)
    course = await uow.course_types.get(run.course_type)
    done = run.record_attendance(
        session, present, course, now=now, window=window, no_show_frees_seat=no_show_frees_seat
    )
    await uow.runs.save(run)
    staff = [e.participant.staff_member for e in done if e.participant.staff_member]
    if course and course.kind == "staff_training" and staff:
        readiness = await uow.readiness.lock(library)
        for staff_member in staff:
            readiness.staff_trained(run.course_type, staff_member, at=now)
        await uow.readiness.save(readiness, now)
        _publish(uow, events, run, readiness)
    else:
        _publish(uow, events, run)
    return [e.id for e in done]


async def purge_participants(*, retention: timedelta, uow: UnitOfWork, now: datetime) -> int:
    """Names and contact details are kept until `retention` after a run's last session (time to
    hand out certificates and follow up), then erased. Returns the runs purged."""
    return len(await uow.runs.erase_participants_of_runs_ended_before(now - retention, now))


# -- reads ---------------------------------------------------------------------------------------


async def certificate(enrolment_key: str, *, library: str, repos: Repositories) -> dict:
    """The record of a completed course, for the participant to keep."""
    enrolment = await repos.runs.enrolment(enrolment_key)
    if enrolment is None or enrolment.library != library:
        raise NotFound(enrolment_key)
    run = await repos.runs.get(enrolment.run_id)
    course = await repos.course_types.get(run.course_type)
    return model.certificate(run, enrolment, course)


async def _advised_course_types(help_request_id: str, library: str, repos: Repositories) -> list[str]:
    advice = [a for a in await repos.advice.for_request(help_request_id) if a.library == library]
    if not advice:
        raise NotFound(help_request_id)
    return list(dict.fromkeys(t for a in advice for t in a.course_types))


async def course_advice(
    help_request_id: str, *, library: str, repos: Repositories, now: datetime
) -> tuple[list[str], list[CourseRun]]:
    """The course types advised for a visit and the library's upcoming runs that fit them, best
    fit first."""
    wanted = await _advised_course_types(help_request_id, library, repos)
    return wanted, await repos.runs.upcoming_of(library, wanted, now)


# -- events ---------------------------------------------------------------------------------------


async def on_location_registered(event: CloudEvent, data: IdoLocationRegistered, *, uow: UnitOfWork) -> None:
    location = Location(
        library=data.library, code=data.code, postcode=data.postcode, name=data.name, municipality=data.municipality
    )
    await uow.locations.put(data.location_id, location)


async def on_help_request_routed(event: CloudEvent, data: HelpRequestRouted, *, uow: UnitOfWork, now: datetime) -> None:
    """A question answered with "course advised" becomes a course advice the library can act on."""
    for decision in data.decisions:
        if decision.outcome != "course_advised":
            continue
        advice: CourseAdvice = advise(
            data.help_request_id,
            decision.question_index,
            library=data.library,
            category=decision.category,
            theme=decision.theme,
            now=now,
        )
        await uow.advice.add(advice)
