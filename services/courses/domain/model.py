"""Courses: Klik & Tik, Digisterker and staff training, scheduled as runs at IDO locations,
with enrolment, a first-in-first-out waitlist and seat offers with an acceptance window."""

import itertools
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

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
    starts_at: AwareDatetime
    ends_at: AwareDatetime

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


def check_schedule(cmd: ScheduleRun, course: CourseType | None, *, now: datetime, teacher_certified: bool) -> int:
    """The run's capacity, or ScheduleRefused naming the field that is wrong."""
    if course is None:
        raise ScheduleRefused("course_type", "unknown course type; see GET /v1/course-types")
    if min(s.starts_at for s in cmd.sessions) <= now:
        raise ScheduleRefused("sessions", "a run cannot start in the past")
    capacity = cmd.capacity or course.max_participants
    if capacity > course.max_participants:
        raise ScheduleRefused("capacity", f"at most {course.max_participants} participants for {course.name}")
    if course.certified_teacher_required and not (cmd.teacher and teacher_certified):
        raise ScheduleRefused("teacher", f"{course.name} needs a teacher in the certification register")
    return capacity


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
