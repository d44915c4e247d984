"""Courses' use cases: one function per command. Seats and waitlist positions come from atomic
counters on the run; an enrolment moves between statuses only from the status it was read in."""

import hashlib
import uuid
from datetime import datetime, timedelta

from services.courses.adapters.repository import AlreadyEnrolled, MongoCoursesRepository
from services.courses.domain.model import (
    Enrol,
    ScheduleRefused,
    ScheduleRun,
    check_schedule,
    completed,
    suggested_course_types,
)
from shared.events.catalog import (
    AttendanceRecorded,
    CourseCompleted,
    CourseRunCancelled,
    CourseRunScheduled,
    EnrolmentCancelled,
    HelpRequestRouted,
    IdoLocationRegistered,
    LibraryReadinessChanged,
    ParticipantEnrolled,
    ParticipantWaitlisted,
    SeatOffered,
    SeatOfferExpired,
    StaffTrainingCompleted,
)
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory


class NotFound(Exception):
    pass


class Refused(Exception):
    """The run or enrolment is not in a state that allows this (answers 409)."""


async def schedule_run(
    cmd: ScheduleRun, *, library: str, repo: MongoCoursesRepository, events: EventFactory, now: datetime
) -> dict:
    location = await repo.location(library, cmd.location)
    if location is None:
        raise ScheduleRefused("location", "not a registered IDO location of this library (PUT /v1/locations at intake)")
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
        "postcode": location["postcode"],
        "capacity": capacity,
        "status": "scheduled",
        "scheduled_at": now,
    }
    fact = CourseRunScheduled(
        run_id=run_id,
        library=library,
        course_type=cmd.course_type,
        location=cmd.location,
        postcode=location["postcode"],
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
    course = await repo.course_type(run["course_type"])
    if course and course.kind == "staff_training" and not cmd.staff_member:
        raise Invalid("staff_member", "staff training is for library staff: give the staff member's id")
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


class Invalid(Exception):
    """Input that is well-formed but not acceptable here (answers 422 naming the field)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


async def _own_run(run_id: str, library: str, repo: MongoCoursesRepository) -> dict:
    run = await repo.run(run_id)
    if run is None or run["library"] != library:
        raise NotFound(run_id)
    return run


async def cancel_run(
    run_id: str, *, library: str, repo: MongoCoursesRepository, events: EventFactory, now: datetime
) -> dict:
    """Cancel a run that has not finished; every enrolment and waitlist place goes with it."""
    run = await _own_run(run_id, library, repo)
    if run["status"] != "scheduled":
        raise Refused(f"a run that is '{run['status']}' cannot be cancelled")
    fact = CourseRunCancelled(run_id=run_id, library=library, course_type=run["course_type"], at=now)
    await repo.update_run(run_id, {"status": "cancelled"}, [events.create(fact, correlation_id=run_id)])
    for enrolment in await repo.enrolments_of(run_id):
        if enrolment["status"] in ("enrolled", "offered", "waitlisted"):
            gone = EnrolmentCancelled(
                run_id=run_id,
                library=library,
                course_type=run["course_type"],
                enrolment_id=enrolment["_id"],
                position=enrolment["position"],
                at=now,
                reason="run_cancelled",
            )
            await repo.move(
                enrolment["_id"],
                expected=enrolment["status"],
                fields={"status": "cancelled"},
                events=[events.create(gone, correlation_id=run_id)],
            )
            if enrolment.get("seat"):
                await repo.release_seat(run_id, enrolment["seat"])
    return {**run, "status": "cancelled"}


async def change_capacity(
    run_id: str,
    capacity: int,
    *,
    library: str,
    repo: MongoCoursesRepository,
    events: EventFactory,
    now: datetime,
    window: timedelta,
) -> dict:
    """Raise or lower a run's capacity within its type's maximum; new seats go to the waitlist."""
    run = await _own_run(run_id, library, repo)
    course = await repo.course_type(run["course_type"])
    if course and capacity > course.max_participants:
        raise Invalid("capacity", f"at most {course.max_participants} participants for {course.name}")
    if capacity < await repo.seats_taken(run_id):
        raise Invalid("capacity", "fewer seats than participants already have: cancel enrolments first")
    await repo.update_run(run_id, {"capacity": capacity}, [])  # seats are claimed against the new capacity
    await offer_free_seats(run_id, repo=repo, events=events, now=now, window=window)
    return {**run, "capacity": capacity}


async def record_attendance(
    run_id: str,
    session: int,
    present: list[str],
    *,
    library: str,
    repo: MongoCoursesRepository,
    events: EventFactory,
    now: datetime,
    window: timedelta = timedelta(hours=24),
    no_show_frees_seat: bool = True,
) -> list[str]:
    """Who attended session `session` (1-based); returns the enrolments that completed the course."""
    run = await _own_run(run_id, library, repo)
    if not 1 <= session <= len(run["sessions"]):
        raise Invalid("session", f"the run has sessions 1 to {len(run['sessions'])}")
    if run["sessions"][session - 1]["starts_at"] > now:
        raise Invalid("session", "attendance is recorded once the session has started")
    enrolled = {e["_id"]: e for e in await repo.enrolments_of(run_id) if e["status"] == "enrolled"}
    if unknown := [p for p in present if p not in enrolled]:
        raise Invalid("present", f"not enrolled in this run: {', '.join(unknown)}")
    course = await repo.course_type(run["course_type"])
    recorded = AttendanceRecorded(
        run_id=run_id, library=library, course_type=run["course_type"], session=session, present=present, at=now
    )
    await repo.update_run(run_id, {"attendance_recorded_at": now}, [events.create(recorded, correlation_id=run_id)])
    if session == 1 and no_show_frees_seat:
        await _free_seats_of_no_shows(run, enrolled, set(present), repo=repo, events=events, now=now, window=window)
    newly_completed = []
    for enrolment_key in present:
        attended = await repo.attend(enrolment_key, session)
        enrolment = enrolled[enrolment_key]
        if course and not enrolment.get("completed_at") and completed(set(attended), course):
            await _complete(run, enrolment, len(attended), course, repo=repo, events=events, now=now)
            newly_completed.append(enrolment_key)
    return newly_completed


async def _free_seats_of_no_shows(
    run: dict, enrolled: dict[str, dict], present: set[str], *, repo, events, now, window
) -> None:
    """No-show policy: whoever misses the first session without cancelling loses the seat, which
    goes to the waitlist (the later sessions are still enough to complete)."""
    for enrolment_key, enrolment in enrolled.items():
        if enrolment_key in present:
            continue
        fact = EnrolmentCancelled(
            run_id=run["_id"],
            library=run["library"],
            course_type=run["course_type"],
            enrolment_id=enrolment_key,
            position=enrolment["position"],
            at=now,
            reason="no_show",
        )
        if await repo.move(
            enrolment_key,
            expected="enrolled",
            fields={"status": "no_show"},
            events=[events.create(fact, correlation_id=run["_id"])],
        ):
            await repo.release_seat(run["_id"], enrolment["seat"])
    await offer_free_seats(run["_id"], repo=repo, events=events, now=now, window=window)


async def _complete(run: dict, enrolment: dict, attended: int, course, *, repo, events, now) -> None:
    facts = dict(
        run_id=run["_id"],
        library=run["library"],
        course_type=run["course_type"],
        enrolment_id=enrolment["_id"],
        position=enrolment["position"],
        at=now,
    )
    pending = [events.create(CourseCompleted(**facts, sessions_attended=attended), correlation_id=run["_id"])]
    staff_member = enrolment["participant"].get("staff_member")
    if course.kind == "staff_training" and staff_member:
        pending.append(
            events.create(StaffTrainingCompleted(**facts, staff_member=staff_member), correlation_id=run["_id"])
        )
    await repo.move(enrolment["_id"], expected="enrolled", fields={"completed_at": now}, events=pending)
    if course.kind == "staff_training" and staff_member:
        await repo.staff_trained(
            run["library"],
            run["course_type"],
            staff_member,
            lambda counts: events.create(
                LibraryReadinessChanged(library=run["library"], trained_staff=counts, at=now),
                correlation_id=run["library"],
            ),
        )


async def certificate(enrolment_key: str, *, library: str, repo: MongoCoursesRepository) -> dict:
    """The record of a completed course, for the participant to keep."""
    enrolment = await repo.enrolment(enrolment_key)
    if enrolment is None or enrolment["library"] != library:
        raise NotFound(enrolment_key)
    if not enrolment.get("completed_at"):
        raise Refused("the course is not completed (yet)")
    if enrolment.get("personal_data_erased_at"):
        raise Refused("the participant's data was erased at the end of its retention period")
    run = await repo.run(enrolment["run_id"]) or {}
    course = await repo.course_type(run.get("course_type", ""))
    return {
        "certificate": f"{enrolment_key}",
        "participant": enrolment["participant"]["name"],
        "course": course.name if course else run.get("course_type"),
        "library": library,
        "location": run.get("location"),
        "sessions_attended": len(enrolment.get("attended", [])),
        "sessions": [s["starts_at"].date().isoformat() for s in run.get("sessions", [])],
        "completed_at": enrolment["completed_at"].isoformat(),
    }


async def on_location_registered(
    event: CloudEvent, data: IdoLocationRegistered, *, repo: MongoCoursesRepository
) -> None:
    await repo.put_location(
        {
            "_id": data.location_id,
            "library": data.library,
            "code": data.code,
            "name": data.name,
            "postcode": data.postcode,
            "municipality": data.municipality,
        }
    )


async def on_help_request_routed(
    event: CloudEvent, data: HelpRequestRouted, *, repo: MongoCoursesRepository, now: datetime
) -> None:
    """A question answered with "course advised" becomes a course advice the library can act on."""
    for decision in data.decisions:
        if decision.outcome != "course_advised":
            continue
        await repo.put_advice(
            {
                "_id": f"{data.help_request_id}:{decision.question_index}",
                "help_request_id": data.help_request_id,
                "library": data.library,
                "question_index": decision.question_index,
                "theme": decision.theme,
                "course_types": suggested_course_types(decision.category, decision.theme),
                "advised_at": now,
            }
        )


async def course_advice(help_request_id: str, *, library: str, repo: MongoCoursesRepository, now: datetime) -> dict:
    """The advice for a visit and the library's upcoming runs that fit it, best fit first."""
    advice = [a for a in await repo.advice_for(help_request_id) if a["library"] == library]
    if not advice:
        raise NotFound(help_request_id)
    wanted = list(dict.fromkeys(t for a in advice for t in a["course_types"]))
    return {"advice": advice, "runs": await repo.upcoming_runs(library, wanted, now)}


async def purge_participants(*, retention: timedelta, repo: MongoCoursesRepository, now: datetime) -> int:
    """Names and contact details are kept until `retention` after a run's last session (time to
    hand out certificates and follow up), then erased. Returns the runs purged."""
    runs = await repo.runs_with_participants_ended_before(now - retention)
    for run_id in runs:
        await repo.erase_participants(run_id, now)
    return len(runs)
