"""Courses: Klik & Tik, Digisterker and staff training, scheduled as runs at IDO locations,
with enrolment, a first-in-first-out waitlist and seat offers with an acceptance window.

Pure Python, no I/O. The `CourseRun` aggregate (a run with its enrolments) decides everything
that happens to a run: seats, arrival order, the waitlist, offers and their expiry, the no-show
policy, attendance and completion. Each decision is recorded as a fact in `run.events`; the
handlers save the run and publish those facts in the same transaction."""

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from shared.events.catalog import (
    AttendanceRecorded,
    CourseCompleted,
    CourseRunCancelled,
    CourseRunCapacityChanged,
    CourseRunScheduled,
    EnrolmentCancelled,
    EventData,
    LibraryReadinessChanged,
    ParticipantEnrolled,
    ParticipantWaitlisted,
    SeatOffered,
    SeatOfferExpired,
    StaffTrainingCompleted,
)
from shared.values import Timestamp

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Kind = Literal["digisterker", "klik_en_tik", "staff_training"]


class CourseType(BaseModel):
    """A course format, kept as data (the defaults below are seeded once)."""

    code: Slug
    name: str
    kind: Kind
    sessions: int = Field(ge=1)
    session_minutes: int = Field(ge=15)
    max_participants: int = Field(ge=1)
    certified_teacher_required: bool = False
    intake_first: bool = False
    # Completed when at least this many sessions were attended.
    sessions_to_complete: int = Field(ge=1)
    # Runs may deviate from `sessions` and `session_minutes` (e.g. a training given in parts);
    # otherwise a run has exactly the type's number of sessions, each exactly that long.
    flexible_sessions: bool = False


DEFAULT_COURSE_TYPES = [
    CourseType(
        code="digisterker",
        name="Digisterker: Werken met de digitale overheid",
        kind="digisterker",
        sessions=4,
        session_minutes=120,
        max_participants=8,
        certified_teacher_required=True,
        intake_first=True,
        sessions_to_complete=3,
    ),
    CourseType(
        code="klik-en-tik",
        name="Klik & Tik",
        kind="klik_en_tik",
        sessions=8,
        session_minutes=120,
        max_participants=8,
        sessions_to_complete=6,
    ),
    CourseType(
        code="klik-en-tik-veilig-online",
        name="Klik & Tik: Veilig online",
        kind="klik_en_tik",
        sessions=1,
        session_minutes=120,
        max_participants=8,
        sessions_to_complete=1,
    ),
    CourseType(
        code="doorvragen",
        name="IDO-training: doorvragen",
        kind="staff_training",
        sessions=1,
        session_minutes=180,
        max_participants=16,
        sessions_to_complete=1,
    ),
    CourseType(
        code="zakelijke-empathie",
        name="IDO-training: zakelijke empathie",
        kind="staff_training",
        sessions=1,
        session_minutes=180,
        max_participants=16,
        sessions_to_complete=1,
    ),
    CourseType(
        code="privacy-in-het-ido",
        name="IDO-training: privacy in het IDO",
        kind="staff_training",
        sessions=1,
        session_minutes=120,
        max_participants=16,
        sessions_to_complete=1,
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Session(_Strict):
    starts_at: Timestamp
    ends_at: Timestamp

    @model_validator(mode="after")
    def _starts_before_end(self) -> "Session":
        if self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self

    def overlaps(self, other: "Session") -> bool:
        return self.starts_at < other.ends_at and other.starts_at < self.ends_at


class ScheduleRun(_Strict):
    """The command a library sends: POST /v1/course-runs."""

    course_type: Slug
    location: Slug = Field(description="one of the library's registered IDO locations")
    teacher: Slug | None = None
    sessions: list[Session] = Field(min_length=1, max_length=20)
    capacity: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _sessions_do_not_overlap(self) -> "ScheduleRun":
        ordered = sorted(self.sessions, key=lambda s: s.starts_at)
        if any(a.overlaps(b) for a, b in itertools.pairwise(ordered)):
            raise ValueError("sessions of one run overlap")
        return self


class ScheduleRefused(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


class NotFound(Exception):
    """No such run or enrolment (of this library)."""


class Refused(Exception):
    """The run or enrolment is not in a state that allows this (answers 409)."""


class AlreadyEnrolled(Refused):
    """The same person (name and contact) is already enrolled or waitlisted in this run."""

    def __init__(self) -> None:
        super().__init__("this participant is already enrolled or waitlisted")


class Invalid(Exception):
    """Input that is well-formed but not acceptable here (answers 422 naming the field)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


def check_schedule(cmd: ScheduleRun, course: CourseType | None, *, now: datetime, teacher_certified: bool) -> int:
    """The run's capacity, or ScheduleRefused naming the field that is wrong."""
    if course is None:
        raise ScheduleRefused("course_type", "unknown course type; see GET /v1/course-types")
    if min(s.starts_at for s in cmd.sessions) <= now:
        raise ScheduleRefused("sessions", "a run cannot start in the past")
    check_sessions(cmd.sessions, course)
    capacity = cmd.capacity or course.max_participants
    if capacity > course.max_participants:
        raise ScheduleRefused("capacity", f"at most {course.max_participants} participants for {course.name}")
    if course.certified_teacher_required and not (cmd.teacher and teacher_certified):
        raise ScheduleRefused("teacher", f"{course.name} needs a teacher in the certification register")
    return capacity


def check_sessions(sessions: list[Session], course: CourseType) -> None:
    """A run follows its type: its number of sessions and their length (ScheduleRefused naming
    `sessions`), unless the type allows runs to deviate (`flexible_sessions`)."""
    if course.flexible_sessions:
        return
    if len(sessions) != course.sessions:
        raise ScheduleRefused(
            "sessions", f"{course.name} has {course.sessions} session(s): give {course.sessions}, not {len(sessions)}"
        )
    length = timedelta(minutes=course.session_minutes)
    if wrong := [i for i, s in enumerate(sessions, 1) if s.ends_at - s.starts_at != length]:
        raise ScheduleRefused(
            "sessions",
            f"each session of {course.name} lasts {course.session_minutes} minutes"
            f" (session {', '.join(map(str, wrong))} does not)",
        )


class Contact(_Strict):
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{6,20}$")
    email: EmailStr | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> "Contact":
        if (self.phone is None) == (self.email is None):
            raise ValueError("give exactly one contact channel: phone or email")
        return self


class Enrol(_Strict):
    """POST /v1/course-runs/{id}/enrolments: minimal personal data, only with consent."""

    name: str = Field(min_length=1, max_length=100, description="a name or a pseudonym")
    contact: Contact
    consent: Literal[True] = Field(description="the participant agreed to be contacted about this course")
    # For staff training: the library's own id for the staff member (no HR data here).
    staff_member: Slug | None = None


class ChangeRun(_Strict):
    """PATCH /v1/course-runs/{id}: a raised capacity offers the new seats to the waitlist."""

    capacity: int = Field(ge=1)


class Attendance(_Strict):
    """PUT /v1/course-runs/{id}/sessions/{n}/attendance: the enrolments present at session n."""

    present: list[str] = Field(max_length=100)


def suggested_course_types(category: str | None, theme: str | None) -> list[str]:
    """Which courses fit a question the desk answered with "course advised": for contact with the
    government Digisterker first, then basic skills; otherwise basic skills and staying safe."""
    if category == "digital_government" or theme == "digid":
        return ["digisterker", "klik-en-tik"]
    return ["klik-en-tik", "klik-en-tik-veilig-online"]


class EnrolFromAdvice(Enrol):
    """POST /v1/course-advice/{help_request_id}/enrolments: enrol the visitor in a chosen run."""

    run_id: str = Field(min_length=1, max_length=100)


def completed(attended: set[int], course: CourseType) -> bool:
    return len(attended) >= course.sessions_to_complete


def enrolment_id(run_id: str, cmd: Enrol) -> str:
    """The same person (name and contact) enrolling twice in one run gets the same id."""
    person = f"{cmd.name.casefold()}|{cmd.contact.phone or ''}|{(cmd.contact.email or '').casefold()}"
    return f"{run_id}:{hashlib.sha256(person.encode()).hexdigest()[:24]}"


@dataclass(frozen=True)
class Location:
    """An IDO location of a library, as intake announced it (IdoLocationRegistered)."""

    library: str
    code: str
    postcode: str
    name: str | None = None
    municipality: str | None = None


@dataclass(frozen=True)
class Participant:
    """A name or pseudonym and one contact channel (None once erased); for staff training the
    library's own id for the staff member, which stays for the library's readiness."""

    name: str | None
    phone: str | None = None
    email: str | None = None
    staff_member: str | None = None

    @classmethod
    def of(cls, cmd: Enrol) -> "Participant":
        return cls(name=cmd.name, phone=cmd.contact.phone, email=cmd.contact.email, staff_member=cmd.staff_member)

    def erased(self) -> "Participant":
        return Participant(name=None, phone=None, email=None, staff_member=self.staff_member)


EnrolmentStatus = Literal["enrolled", "waitlisted", "offered", "offer_expired", "cancelled", "no_show"]
OPEN_STATUSES = ("enrolled", "offered", "waitlisted")  # what a cancellation may still end


@dataclass
class Enrolment:
    id: str
    run_id: str
    library: str
    position: int  # arrival order in the run: 1, 2, 3, ...
    status: EnrolmentStatus
    participant: Participant
    consented_at: datetime
    seat: int | None = None  # held while enrolled or offered
    offered_until: datetime | None = None
    attended: set[int] = field(default_factory=set)
    completed_at: datetime | None = None
    personal_data_erased_at: datetime | None = None


@dataclass
class CourseRun:
    """A run of a course type with its enrolments: the unit of consistency. Every change to a run
    or one of its enrolments goes through here, one run at a time."""

    id: str
    library: str
    course_type: str
    location: str
    postcode: str
    teacher: str | None
    sessions: list[Session]
    capacity: int
    scheduled_at: datetime
    status: Literal["scheduled", "cancelled"] = "scheduled"
    seats_taken: int = 0
    next_position: int = 0  # the last arrival number handed out
    attendance_recorded_at: datetime | None = None
    participants_erased_at: datetime | None = None
    enrolments: dict[str, Enrolment] = field(default_factory=dict)
    events: list[EventData] = field(default_factory=list)

    @property
    def first_session_at(self) -> datetime:
        return min(s.starts_at for s in self.sessions)

    @property
    def last_session_ends_at(self) -> datetime:
        return max(s.ends_at for s in self.sessions)

    @property
    def seats_free(self) -> int:
        return self.capacity - self.seats_taken

    def in_order(self) -> list[Enrolment]:
        return sorted(self.enrolments.values(), key=lambda e: e.position)

    def waitlist(self) -> list[Enrolment]:
        return [e for e in self.in_order() if e.status == "waitlisted"]

    def enrolment(self, enrolment_key: str) -> Enrolment:
        if enrolment_key not in self.enrolments:
            raise NotFound(enrolment_key)
        return self.enrolments[enrolment_key]

    # -- enrolment, waitlist and offers ---------------------------------------------------------

    def enrol(self, enrolment_key: str, cmd: Enrol, course: CourseType | None, *, now: datetime) -> Enrolment:
        """The next arrival number; a seat if one is free and nobody waits for it, else a place
        on the waitlist. So the first `capacity` arrivals are seated, later ones wait in order."""
        if self.status != "scheduled" or self.first_session_at <= now:
            raise Refused("the run is cancelled, has started or is finished")
        if course and course.kind == "staff_training" and not cmd.staff_member:
            raise Invalid("staff_member", "staff training is for library staff: give the staff member's id")
        if enrolment_key in self.enrolments:
            raise AlreadyEnrolled
        someone_waits = bool(self.waitlist())
        self.next_position += 1
        enrolment = Enrolment(
            id=enrolment_key,
            run_id=self.id,
            library=self.library,
            position=self.next_position,
            status="waitlisted",
            participant=Participant.of(cmd),
            consented_at=now,
        )
        self.enrolments[enrolment_key] = enrolment
        if self.seats_free > 0 and not someone_waits:
            self._take_seat(enrolment)
            enrolment.status = "enrolled"
            self.events.append(self._fact(ParticipantEnrolled, enrolment, now))
        else:
            self.events.append(self._fact(ParticipantWaitlisted, enrolment, now))
        return enrolment

    def cancel_enrolment(self, enrolment_key: str, *, now: datetime, window: timedelta) -> Enrolment:
        """Cancel an enrolment or a place on the waitlist; a freed seat is offered at once."""
        enrolment = self.enrolment(enrolment_key)
        if enrolment.status not in OPEN_STATUSES:
            raise Refused(f"an enrolment that is '{enrolment.status}' cannot be cancelled")
        enrolment.status = "cancelled"
        self._release_seat(enrolment)
        self.events.append(self._fact(EnrolmentCancelled, enrolment, now))
        self._offer_free_seats(now, window)
        return enrolment

    def accept_offer(self, enrolment_key: str, *, now: datetime) -> Enrolment:
        enrolment = self.enrolment(enrolment_key)
        if enrolment.status != "offered" or enrolment.offered_until is None or enrolment.offered_until <= now:
            raise Refused("there is no open seat offer for this enrolment")
        enrolment.status = "enrolled"
        self.events.append(self._fact(ParticipantEnrolled, enrolment, now))
        return enrolment

    def expire_offers(self, *, now: datetime, window: timedelta) -> int:
        """Offers past their window lapse; each seat goes to the next on the waitlist."""
        lapsed = [
            e
            for e in self.in_order()
            if e.status == "offered" and e.offered_until is not None and e.offered_until <= now
        ]
        for enrolment in lapsed:
            enrolment.status = "offer_expired"
            self._release_seat(enrolment)
            self.events.append(self._fact(SeatOfferExpired, enrolment, now))
            self._offer_free_seats(now, window)
        return len(lapsed)

    def _offer_free_seats(self, now: datetime, window: timedelta) -> int:
        """Offer every free seat to the first on the waitlist, each with an acceptance window."""
        offered = 0
        for waiting in self.waitlist():
            if self.seats_free <= 0:
                break
            self._take_seat(waiting)
            waiting.status = "offered"
            waiting.offered_until = now + window
            self.events.append(self._fact(SeatOffered, waiting, now, offered_until=waiting.offered_until))
            offered += 1
        return offered

    def _take_seat(self, enrolment: Enrolment) -> None:
        if self.seats_free <= 0:
            raise Refused("no free seat in this run")  # the callers check first: never reached
        held = {e.seat for e in self.enrolments.values() if e.seat is not None}
        enrolment.seat = next(n for n in itertools.count(1) if n not in held)
        self.seats_taken += 1

    def _release_seat(self, enrolment: Enrolment) -> None:
        if enrolment.seat is not None:
            enrolment.seat = None
            self.seats_taken -= 1

    # -- the run itself ---------------------------------------------------------------------------

    def cancel(self, *, now: datetime) -> None:
        """Cancel the run; every enrolment and waitlist place goes with it."""
        if self.status != "scheduled":
            raise Refused(f"a run that is '{self.status}' cannot be cancelled")
        self.status = "cancelled"
        self.events.append(
            CourseRunCancelled(run_id=self.id, library=self.library, course_type=self.course_type, at=now)
        )
        for enrolment in self.in_order():
            if enrolment.status in OPEN_STATUSES:
                enrolment.status = "cancelled"
                self._release_seat(enrolment)
                self.events.append(self._fact(EnrolmentCancelled, enrolment, now, reason="run_cancelled"))

    def change_capacity(self, capacity: int, course: CourseType | None, *, now: datetime, window: timedelta) -> None:
        """Raise or lower the capacity within the type's maximum; new seats go to the waitlist."""
        if course and capacity > course.max_participants:
            raise Invalid("capacity", f"at most {course.max_participants} participants for {course.name}")
        if capacity < self.seats_taken:
            raise Invalid("capacity", "fewer seats than participants already have: cancel enrolments first")
        if capacity != self.capacity:
            self.capacity = capacity
            self.events.append(
                CourseRunCapacityChanged(
                    run_id=self.id, library=self.library, course_type=self.course_type, capacity=capacity, at=now
                )
            )
        self._offer_free_seats(now, window)

    # -- attendance and completion --------------------------------------------------------------

    def record_attendance(
        self,
        session: int,
        present: list[str],
        course: CourseType | None,
        *,
        now: datetime,
        window: timedelta,
        no_show_frees_seat: bool,
    ) -> list[Enrolment]:
        """Who attended session `session` (1-based); returns the enrolments it completed."""
        if not 1 <= session <= len(self.sessions):
            raise Invalid("session", f"the run has sessions 1 to {len(self.sessions)}")
        if self.sessions[session - 1].starts_at > now:
            raise Invalid("session", "attendance is recorded once the session has started")
        enrolled = {e.id: e for e in self.in_order() if e.status == "enrolled"}
        if unknown := [p for p in present if p not in enrolled]:
            raise Invalid("present", f"not enrolled in this run: {', '.join(unknown)}")
        self.attendance_recorded_at = now
        self.events.append(
            AttendanceRecorded(
                run_id=self.id,
                library=self.library,
                course_type=self.course_type,
                session=session,
                present=present,
                at=now,
            )
        )
        if session == 1 and no_show_frees_seat:
            self._free_seats_of_no_shows(enrolled, set(present), now, window)
        newly_completed = []
        for enrolment_key in present:
            enrolment = enrolled[enrolment_key]
            enrolment.attended.add(session)
            if course and enrolment.completed_at is None and completed(enrolment.attended, course):
                self._complete(enrolment, course, now)
                newly_completed.append(enrolment)
        return newly_completed

    def _free_seats_of_no_shows(
        self, enrolled: dict[str, Enrolment], present: set[str], now: datetime, window: timedelta
    ) -> None:
        """No-show policy: whoever misses the first session without cancelling loses the seat,
        which goes to the waitlist (the later sessions are still enough to complete)."""
        for enrolment_key, enrolment in enrolled.items():
            if enrolment_key in present:
                continue
            enrolment.status = "no_show"
            self._release_seat(enrolment)
            self.events.append(self._fact(EnrolmentCancelled, enrolment, now, reason="no_show"))
        self._offer_free_seats(now, window)

    def _complete(self, enrolment: Enrolment, course: CourseType, now: datetime) -> None:
        enrolment.completed_at = now
        self.events.append(self._fact(CourseCompleted, enrolment, now, sessions_attended=len(enrolment.attended)))
        if course.kind == "staff_training" and enrolment.participant.staff_member:
            self.events.append(
                self._fact(StaffTrainingCompleted, enrolment, now, staff_member=enrolment.participant.staff_member)
            )

    def _fact(self, kind: type, enrolment: Enrolment, at: datetime, **more) -> EventData:
        return kind(
            run_id=self.id,
            library=self.library,
            course_type=self.course_type,
            enrolment_id=enrolment.id,
            position=enrolment.position,
            at=at,
            **more,
        )


def certificate(run: CourseRun, enrolment: Enrolment, course: CourseType | None) -> dict:
    """The record of a completed course, for the participant to keep."""
    if enrolment.completed_at is None:
        raise Refused("the course is not completed (yet)")
    if enrolment.personal_data_erased_at is not None:
        raise Refused("the participant's data was erased at the end of its retention period")
    return {
        "certificate": enrolment.id,
        "participant": enrolment.participant.name,
        "course": course.name if course else run.course_type,
        "library": run.library,
        "location": run.location,
        "sessions_attended": len(enrolment.attended),
        "sessions": [s.starts_at.date().isoformat() for s in run.sessions],
        "completed_at": enrolment.completed_at.isoformat(),
    }


def schedule_run(
    cmd: ScheduleRun,
    *,
    run_id: str,
    library: str,
    location: Location | None,
    course: CourseType | None,
    teacher_certified: bool,
    teacher_sessions: list[Session],
    now: datetime,
) -> CourseRun:
    """A new run, or ScheduleRefused naming the field that is wrong. `teacher_sessions` are the
    sessions the teacher already teaches in other scheduled runs."""
    if location is None:
        raise ScheduleRefused("location", "not a registered IDO location of this library (PUT /v1/locations at intake)")
    capacity = check_schedule(cmd, course, now=now, teacher_certified=teacher_certified)
    if cmd.teacher and any(new.overlaps(old) for new in cmd.sessions for old in teacher_sessions):
        raise teacher_busy()
    run = CourseRun(
        id=run_id,
        library=library,
        course_type=cmd.course_type,
        location=cmd.location,
        postcode=location.postcode,
        teacher=cmd.teacher,
        sessions=list(cmd.sessions),
        capacity=capacity,
        scheduled_at=now,
    )
    run.events.append(
        CourseRunScheduled(
            run_id=run_id,
            library=library,
            course_type=cmd.course_type,
            location=cmd.location,
            postcode=location.postcode,
            capacity=capacity,
            first_session_at=run.first_session_at,
            sessions=len(run.sessions),
        )
    )
    return run


def teacher_busy() -> ScheduleRefused:
    return ScheduleRefused("teacher", "the teacher already teaches another run at that time")


@dataclass
class LibraryReadiness:
    """Which of a library's staff completed which training."""

    library: str
    trained: dict[str, set[str]] = field(default_factory=dict)
    events: list[EventData] = field(default_factory=list)

    def staff_trained(self, training: str, staff_member: str, *, at: datetime) -> dict[str, int]:
        self.trained.setdefault(training, set()).add(staff_member)
        counts = {k: len(v) for k, v in sorted(self.trained.items())}
        self.events.append(LibraryReadinessChanged(library=self.library, trained_staff=counts, at=at))
        return counts


@dataclass(frozen=True)
class CourseAdvice:
    """A question the desk answered with "course advised", and the course types that fit it."""

    help_request_id: str
    question_index: int
    library: str
    theme: str | None
    course_types: list[str]
    advised_at: datetime


def advise(
    help_request_id: str, question_index: int, *, library: str, category: str | None, theme: str | None, now: datetime
) -> CourseAdvice:
    return CourseAdvice(
        help_request_id=help_request_id,
        question_index=question_index,
        library=library,
        theme=theme,
        course_types=suggested_course_types(category, theme),
        advised_at=now,
    )
