"""Courses' use cases: one function per command. Seats and waitlist positions come from atomic
counters on the run; an enrolment moves between statuses only from the status it was read in."""

import hashlib
import uuid
from datetime import datetime, timedelta

from services.courses.adapters.repository import AlreadyEnrolled, MongoCoursesRepository
from services.courses.domain.model import Enrol, ScheduleRefused, ScheduleRun, check_schedule
from shared.events.catalog import (
    CourseRunScheduled,
    EnrolmentCancelled,
    ParticipantEnrolled,
    ParticipantWaitlisted,
    SeatOffered,
    SeatOfferExpired,
)
from shared.outbox import EventFactory


class NotFound(Exception):
    pass


class Refused(Exception):
    """The run or enrolment is not in a state that allows this (answers 409)."""


async def schedule_run(
    cmd: ScheduleRun, *, library: str, repo: MongoCoursesRepository, events: EventFactory, now: datetime
) -> dict:
    course = await repo.course_type(cmd.course_type)
    certified = bool(cmd.teacher) and await repo.teacher_certified(cmd.teacher or "", cmd.course_type)
    capacity = check_schedule(cmd, course, now=now, teacher_certified=certified)
    if cmd.teacher:
        taken = [s for run in await repo.teacher_runs(cmd.teacher) for s in run["sessions"]]
        if any(
            new.starts_at < old["ends_at"] and old["starts_at"] < new.ends_at for new in cmd.sessions for old in taken
        ):
            raise ScheduleRefused("teacher", "the teacher already teaches another run at that time")
    run_id = str(uuid.uuid4())
    run = {
        "_id": run_id,
        "library": library,
        **cmd.model_dump(mode="python", exclude={"capacity"}),
        "capacity": capacity,
        "status": "scheduled",
        "scheduled_at": now,
    }
    fact = CourseRunScheduled(
        run_id=run_id,
        library=library,
        course_type=cmd.course_type,
        location=cmd.location,
        postcode=cmd.postcode,
        capacity=capacity,
        first_session_at=min(s.starts_at for s in cmd.sessions),
        sessions=len(cmd.sessions),
    )
    await repo.add_run(run, [events.create(fact, correlation_id=run_id)])
    return run


def enrolment_id(run_id: str, cmd: Enrol) -> str:
    """The same person (name and contact) enrolling twice in one run gets the same id."""
    person = f"{cmd.name.casefold()}|{cmd.contact.phone or ''}|{(cmd.contact.email or '').casefold()}"
    return f"{run_id}:{hashlib.sha256(person.encode()).hexdigest()[:24]}"


async def enrol(
    run_id: str, cmd: Enrol, *, library: str, repo: MongoCoursesRepository, events: EventFactory, now: datetime
) -> dict:
    """A seat if one is free and nobody waits for it, else a place on the waitlist; both in
    arrival order (the first `capacity` arrivals take seats 1..capacity)."""
    run = await repo.run(run_id)
    if run is None or run["library"] != library:
        raise NotFound(run_id)
    if run["status"] != "scheduled" or min(s["starts_at"] for s in run["sessions"]) <= now:
        raise Refused("the run is cancelled, has started or is finished")
    enrolment_key = enrolment_id(run_id, cmd)
    if await repo.exists(enrolment_key):
        raise AlreadyEnrolled
    position = await repo.arrival(run_id)
    seat = None
    if position <= run["capacity"] or await repo.first_waiting(run_id) is None:
        seat = await repo.claim_seat(run_id, run["capacity"], enrolment_key, first_choice=position)
    status = "enrolled" if seat is not None else "waitlisted"
    fact_type = ParticipantEnrolled if seat is not None else ParticipantWaitlisted
    fact = fact_type(
        run_id=run_id,
        library=library,
        course_type=run["course_type"],
        enrolment_id=enrolment_key,
        position=position,
        at=now,
    )
    enrolment = {
        "_id": enrolment_key,
        "run_id": run_id,
        "library": library,
        "status": status,
        "position": position,
        "seat": seat,
        "participant": cmd.model_dump(mode="python", exclude={"consent"}),
        "consented_at": now,
        "offered_until": None,
    }
    try:
        await repo.add_enrolment(enrolment, [events.create(fact, correlation_id=run_id)])
    except AlreadyEnrolled:
        if seat is not None:  # a concurrent double enrolment: give the seat back
            await repo.release_seat(run_id, seat)
        raise
    return enrolment


async def offer_free_seats(
    run_id: str, *, repo: MongoCoursesRepository, events: EventFactory, now: datetime, window: timedelta
) -> int:
    """Offer every free seat to the first on the waitlist, each with an acceptance window."""
    run = await repo.run(run_id)
    if run is None:
        return 0
    offered = 0
    while (waiting := await repo.first_waiting(run_id)) is not None:
        seat = await repo.claim_seat(run_id, run["capacity"], waiting["_id"])
        if seat is None:
            break
        until = now + window
        fact = SeatOffered(
            run_id=run_id,
            library=waiting["library"],
            course_type=run["course_type"],
            enrolment_id=waiting["_id"],
            position=waiting["position"],
            at=now,
            offered_until=until,
        )
        moved = await repo.move(
            waiting["_id"],
            expected="waitlisted",
            fields={"status": "offered", "offered_until": until, "seat": seat},
            events=[events.create(fact, correlation_id=run_id)],
        )
        if not moved:  # taken by a concurrent offer or cancelled meanwhile: give the seat back
            await repo.release_seat(run_id, seat)
            continue
        offered += 1
    return offered


async def cancel(
    enrolment_key: str,
    *,
    library: str,
    repo: MongoCoursesRepository,
    events: EventFactory,
    now: datetime,
    window: timedelta,
) -> dict:
    enrolment = await repo.enrolment(enrolment_key)
    if enrolment is None or enrolment["library"] != library:
        raise NotFound(enrolment_key)
    status = enrolment["status"]
    if status not in ("enrolled", "offered", "waitlisted"):
        raise Refused(f"an enrolment that is '{status}' cannot be cancelled")
    run = await repo.run(enrolment["run_id"])
    fact = EnrolmentCancelled(
        run_id=enrolment["run_id"],
        library=library,
        course_type=run["course_type"] if run else "",
        enrolment_id=enrolment_key,
        position=enrolment["position"],
        at=now,
    )
    if not await repo.move(
        enrolment_key,
        expected=status,
        fields={"status": "cancelled"},
        events=[events.create(fact, correlation_id=enrolment["run_id"])],
    ):
        raise Refused("the enrolment changed meanwhile; read it again")
    if status in ("enrolled", "offered") and enrolment.get("seat"):
        await repo.release_seat(enrolment["run_id"], enrolment["seat"])
        await offer_free_seats(enrolment["run_id"], repo=repo, events=events, now=now, window=window)
    return {**enrolment, "status": "cancelled"}


async def accept_offer(enrolment_key: str, *, library: str, repo: MongoCoursesRepository, now: datetime) -> dict:
    enrolment = await repo.enrolment(enrolment_key)
    if enrolment is None or enrolment["library"] != library:
        raise NotFound(enrolment_key)
    if enrolment["status"] != "offered" or enrolment["offered_until"] <= now:
        raise Refused("there is no open seat offer for this enrolment")
    if not await repo.move(enrolment_key, expected="offered", fields={"status": "enrolled"}, events=[]):
        raise Refused("the offer changed meanwhile")
    return {**enrolment, "status": "enrolled"}


async def expire_offers(*, repo: MongoCoursesRepository, events: EventFactory, now: datetime, window: timedelta) -> int:
    """Offers past their window lapse; their seats go to the next on the waitlist."""
    expired = 0
    for offer in await repo.expired_offers(now):
        run = await repo.run(offer["run_id"])
        fact = SeatOfferExpired(
            run_id=offer["run_id"],
            library=offer["library"],
            course_type=run["course_type"] if run else "",
            enrolment_id=offer["_id"],
            position=offer["position"],
            at=now,
        )
        if await repo.move(
            offer["_id"],
            expected="offered",
            fields={"status": "offer_expired"},
            events=[events.create(fact, correlation_id=offer["run_id"])],
        ):
            await repo.release_seat(offer["run_id"], offer["seat"])
            await offer_free_seats(offer["run_id"], repo=repo, events=events, now=now, window=window)
            expired += 1
    return expired
