"""Courses' HTTP API: course types, runs, enrolment with waitlist and seat offers, the teacher
certification register, and a public search of upcoming runs by postcode."""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.courses import handlers
from services.courses.adapters.repository import AlreadyEnrolled, MongoCoursesRepository
from services.courses.domain.model import (
    Attendance,
    ChangeRun,
    CourseType,
    Enrol,
    EnrolFromAdvice,
    Kind,
    ScheduleRefused,
    ScheduleRun,
    Session,
)
from shared.auth import Principal
from shared.http import Problem, field_problem, problem_response, require_json
from shared.outbox import EventFactory


class RunView(BaseModel):
    id: str
    course_type: str
    library: str
    location: str
    postcode: str
    teacher: str | None
    sessions: list[Session]
    capacity: int
    seats_free: int
    status: str

    @classmethod
    def of(cls, run: dict[str, Any], seats_taken: int) -> "RunView":
        return cls.model_validate({**run, "id": run["_id"], "seats_free": run["capacity"] - seats_taken})


class PublicRun(BaseModel):
    """What anyone may see of an upcoming run: no teacher, no participants."""

    id: str
    course_type: str
    library: str
    location: str
    postcode: str
    first_session_at: datetime
    sessions: int
    seats_free: int


class EnrolmentView(BaseModel):
    id: str
    run_id: str
    status: str
    position: int
    offered_until: datetime | None = None


class Teacher(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    certified_for: list[str] = []


class CourseTypeData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Kind
    sessions: int = Field(ge=1, le=20)
    session_minutes: int = Field(ge=15, le=480)
    max_participants: int = Field(ge=1, le=50)
    certified_teacher_required: bool = False
    intake_first: bool = False
    sessions_to_complete: int = Field(ge=1, le=20)


class AdviceView(BaseModel):
    help_request_id: str
    course_types: list[str]
    runs: list[RunView]


class Completions(BaseModel):
    completed: list[str]


def install_error_answers(app: FastAPI) -> None:
    """One place that turns courses' domain errors into problem+json answers."""

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(404, "Not found", "no such course run or enrolment of this library")

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        detail = "this participant is already enrolled or waitlisted" if isinstance(exc, AlreadyEnrolled) else str(exc)
        return problem_response(409, "Not possible now", detail)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        return field_problem(exc)

    app.add_exception_handler(handlers.NotFound, not_found)
    app.add_exception_handler(handlers.Refused, refused)
    app.add_exception_handler(AlreadyEnrolled, refused)
    app.add_exception_handler(handlers.Invalid, invalid)
    app.add_exception_handler(ScheduleRefused, invalid)


def _enrolment(doc: dict[str, Any]) -> EnrolmentView:
    return EnrolmentView.model_validate({**doc, "id": doc["_id"]})


def _library(caller: Principal) -> str:
    if caller.role != "library":
        raise Problem(403, "Only a library schedules runs and enrols participants")
    return caller.organisation


def _distance(a: str, b: str) -> int:
    # The 4-digit postcode area as a proxy for distance: nearby areas have nearby numbers.
    return abs(int(a[:4]) - int(b[:4]))


def build_router(
    *,
    authenticated,
    repo: MongoCoursesRepository,
    events: EventFactory,
    clock: Callable[[], datetime],
    window: timedelta,
    no_show_frees_seat: bool = True,
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Principal, Depends(authenticated)]

    @router.get("/course-types", response_model=list[CourseType], tags=["catalogue"])
    async def course_types() -> list[CourseType]:
        """Digisterker, Klik & Tik and staff training, with their sessions and group sizes."""
        return await repo.course_types()

    @router.put("/course-types/{code}", response_model=CourseType, tags=["catalogue"])
    async def put_course_type(code: str, course: CourseTypeData, caller: Caller) -> CourseType:
        """Add or change a course type, e.g. a training per agency domain (KB staff)."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff maintain the course catalogue")
        saved = CourseType(code=code, **course.model_dump())
        await repo.put_course_type(saved)
        return saved

    @router.get("/course-runs", response_model=list[PublicRun], tags=["catalogue"])
    async def find_runs(
        postcode: Annotated[str, Query(pattern=r"^[1-9][0-9]{3} ?[A-Z]{2}$")],
        course_type: Annotated[str | None, Query(max_length=64)] = None,
        kind: Kind | None = None,
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> list[PublicRun]:
        """Upcoming runs with free seats or a waitlist, nearest first. Public: no personal data."""
        now = clock()
        kinds = {t.code: t.kind for t in await repo.course_types()}
        found = []
        async for run in repo.runs.find({"status": "scheduled"}, {"outbox": 0}):
            first = min(s["starts_at"] for s in run["sessions"])
            if first <= now or (course_type and run["course_type"] != course_type):
                continue
            if kind and kinds.get(run["course_type"]) != kind:
                continue
            found.append((_distance(run["postcode"], postcode), first, run))
        found.sort(key=lambda f: (f[0], f[1]))
        return [
            PublicRun(
                id=run["_id"],
                course_type=run["course_type"],
                library=run["library"],
                location=run["location"],
                postcode=run["postcode"],
                first_session_at=first,
                sessions=len(run["sessions"]),
                seats_free=run["capacity"] - await repo.seats_taken(run["_id"]),
            )
            for _, first, run in found[:limit]
        ]

    @router.post(
        "/course-runs", status_code=201, response_model=RunView, tags=["runs"], dependencies=[Depends(require_json)]
    )
    async def schedule(cmd: ScheduleRun, caller: Caller) -> RunView:
        """Schedule a run of a course type at one of the caller's IDO locations."""
        run = await handlers.schedule_run(cmd, library=_library(caller), repo=repo, events=events, now=clock())
        return RunView.of(run, 0)

    @router.get("/course-runs/{run_id}", response_model=RunView, tags=["runs"])
    async def read_run(run_id: str, caller: Caller) -> RunView:
        run = await repo.run(run_id)
        if run is None or run["library"] != _library(caller):
            raise Problem(404, "Course run not found")
        return RunView.of(run, await repo.seats_taken(run_id))

    @router.post(
        "/course-runs/{run_id}/enrolments",
        status_code=201,
        response_model=EnrolmentView,
        tags=["enrolment"],
        dependencies=[Depends(require_json)],
    )
    async def enrol(run_id: str, cmd: Enrol, caller: Caller) -> EnrolmentView:
        """Enrol a participant (with consent); a full run puts them on its waitlist."""
        doc = await handlers.enrol(run_id, cmd, library=_library(caller), repo=repo, events=events, now=clock())
        return _enrolment(doc)

    @router.get("/course-runs/{run_id}/enrolments", response_model=list[EnrolmentView], tags=["enrolment"])
    async def enrolments(run_id: str, caller: Caller) -> list[EnrolmentView]:
        run = await repo.run(run_id)
        if run is None or run["library"] != _library(caller):
            raise Problem(404, "Course run not found")
        return [_enrolment(d) for d in await repo.enrolments_of(run_id)]

    @router.delete("/enrolments/{enrolment_id}", response_model=EnrolmentView, tags=["enrolment"])
    async def cancel(enrolment_id: str, caller: Caller) -> EnrolmentView:
        """Cancel; a freed seat is offered to the first on the waitlist."""
        doc = await handlers.cancel(
            enrolment_id, library=_library(caller), repo=repo, events=events, now=clock(), window=window
        )
        return _enrolment(doc)

    @router.post("/enrolments/{enrolment_id}/accept", response_model=EnrolmentView, tags=["enrolment"])
    async def accept(enrolment_id: str, caller: Caller) -> EnrolmentView:
        """Accept a seat offered from the waitlist, within its acceptance window."""
        doc = await handlers.accept_offer(enrolment_id, library=_library(caller), repo=repo, now=clock())
        return _enrolment(doc)

    @router.post("/course-runs/{run_id}/cancel", response_model=RunView, tags=["runs"])
    async def cancel_run(run_id: str, caller: Caller) -> RunView:
        """Cancel a run; its enrolments and waitlist are cancelled with it."""
        run = await handlers.cancel_run(run_id, library=_library(caller), repo=repo, events=events, now=clock())
        return RunView.of(run, await repo.seats_taken(run_id))

    @router.patch("/course-runs/{run_id}", response_model=RunView, tags=["runs"], dependencies=[Depends(require_json)])
    async def change_run(run_id: str, change: ChangeRun, caller: Caller) -> RunView:
        """Change a run's capacity; added seats are offered to the waitlist at once."""
        run = await handlers.change_capacity(
            run_id, change.capacity, library=_library(caller), repo=repo, events=events, now=clock(), window=window
        )
        return RunView.of(run, await repo.seats_taken(run_id))

    @router.put("/course-runs/{run_id}/sessions/{session}/attendance", response_model=Completions, tags=["attendance"])
    async def attendance(run_id: str, session: int, attendance: Attendance, caller: Caller) -> Completions:
        """Record who attended a session; returns the enrolments that completed the course by it."""
        done = await handlers.record_attendance(
            run_id,
            session,
            attendance.present,
            library=_library(caller),
            repo=repo,
            events=events,
            now=clock(),
            window=window,
            no_show_frees_seat=no_show_frees_seat,
        )
        return Completions(completed=done)

    @router.get("/enrolments/{enrolment_id}/certificate", tags=["attendance"])
    async def certificate(enrolment_id: str, caller: Caller) -> JSONResponse:
        """The certificate of completion as a downloadable record."""
        record = await handlers.certificate(enrolment_id, library=_library(caller), repo=repo)
        disposition = f'attachment; filename="certificate-{enrolment_id.rsplit(":", 1)[-1]}.json"'
        return JSONResponse(record, headers={"Content-Disposition": disposition})

    @router.get("/course-advice/{help_request_id}", response_model=AdviceView, tags=["from the desk"])
    async def advice(help_request_id: str, caller: Caller) -> AdviceView:
        """What the desk advised for a visit, with the library's upcoming runs that fit it."""
        found = await handlers.course_advice(help_request_id, library=_library(caller), repo=repo, now=clock())
        return AdviceView(
            help_request_id=help_request_id,
            course_types=list(dict.fromkeys(t for a in found["advice"] for t in a["course_types"])),
            runs=[RunView.of(r, await repo.seats_taken(r["_id"])) for r in found["runs"]],
        )

    @router.post(
        "/course-advice/{help_request_id}/enrolments",
        status_code=201,
        response_model=EnrolmentView,
        tags=["from the desk"],
        dependencies=[Depends(require_json)],
    )
    async def enrol_from_advice(help_request_id: str, cmd: EnrolFromAdvice, caller: Caller) -> EnrolmentView:
        """With the visitor's consent, enrol them in one of the advised runs in one call."""
        library = _library(caller)
        found = await handlers.course_advice(help_request_id, library=library, repo=repo, now=clock())
        if cmd.run_id not in {r["_id"] for r in found["runs"]}:
            raise handlers.Invalid("run_id", "not one of the upcoming runs that fit this advice")
        return await enrol(cmd.run_id, Enrol(**cmd.model_dump(exclude={"run_id"})), caller)

    @router.put("/teachers/{teacher_id}", response_model=Teacher, tags=["teachers"])
    async def put_teacher(teacher_id: str, teacher: Teacher, caller: Caller) -> Teacher:
        """The certification register, kept by KB staff."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff keep the certification register")
        await repo.put_teacher(teacher_id, teacher.model_dump())
        return teacher

    return router
