"""Courses' HTTP API: course types, runs, enrolment with waitlist and seat offers, the teacher
certification register, and a public search of upcoming runs by postcode."""

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from services.courses import handlers
from services.courses.adapters.repository import CoursesUnitOfWork, reading
from services.courses.domain.model import (
    Attendance,
    ChangeRun,
    CourseRun,
    CourseType,
    Enrol,
    EnrolFromAdvice,
    Enrolment,
    Kind,
    ScheduleRefused,
    ScheduleRun,
    Session,
)
from shared.auth import Principal
from shared.db import Database
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
    def of(cls, run: CourseRun) -> "RunView":
        return cls(
            id=run.id,
            course_type=run.course_type,
            library=run.library,
            location=run.location,
            postcode=run.postcode,
            teacher=run.teacher,
            sessions=run.sessions,
            capacity=run.capacity,
            seats_free=run.seats_free,
            status=run.status,
        )


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

    @classmethod
    def of(cls, enrolment: Enrolment) -> "EnrolmentView":
        return cls(
            id=enrolment.id,
            run_id=enrolment.run_id,
            status=enrolment.status,
            position=enrolment.position,
            offered_until=enrolment.offered_until,
        )


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
    flexible_sessions: bool = Field(
        False, description="runs may deviate from `sessions` and `session_minutes` (otherwise 422 naming `sessions`)"
    )


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
        return problem_response(409, "Not possible now", str(exc))  # AlreadyEnrolled is one of these

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        return field_problem(exc)

    app.add_exception_handler(handlers.NotFound, not_found)
    app.add_exception_handler(handlers.Refused, refused)
    app.add_exception_handler(handlers.Invalid, invalid)
    app.add_exception_handler(ScheduleRefused, invalid)


def _library(caller: Principal) -> str:
    if caller.role != "library":
        raise Problem(403, "Only a library schedules runs and enrols participants")
    return caller.organisation


def _postcode_area(postcode: str) -> int:
    # The 4-digit postcode area as a proxy for distance: nearby areas have nearby numbers.
    return int(postcode[:4])


def build_router(
    *,
    authenticated,
    db: Database,
    events: EventFactory,
    clock: Callable[[], datetime],
    window: timedelta,
    no_show_frees_seat: bool = True,
) -> APIRouter:
    """The routes; each command is one unit of work on `db`, each read a query on its pool."""
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Principal, Depends(authenticated)]

    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[CoursesUnitOfWork]:
        async with db.unit_of_work() as tx:
            yield CoursesUnitOfWork(tx)

    @router.get("/course-types", response_model=list[CourseType], tags=["catalogue"])
    async def course_types() -> list[CourseType]:
        """Digisterker, Klik & Tik and staff training, with their sessions and group sizes."""
        return await reading(db).course_types.all()

    @router.put("/course-types/{code}", response_model=CourseType, tags=["catalogue"])
    async def put_course_type(code: str, course: CourseTypeData, caller: Caller) -> CourseType:
        """Add or change a course type, e.g. a training per agency domain (KB staff)."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff maintain the course catalogue")
        async with unit_of_work() as uow:
            return await handlers.put_course_type(CourseType(code=code, **course.model_dump()), uow=uow)

    @router.get("/course-runs", response_model=list[PublicRun], tags=["catalogue"])
    async def find_runs(
        postcode: Annotated[str, Query(pattern=r"^[1-9][0-9]{3} ?[A-Z]{2}$")],
        course_type: Annotated[str | None, Query(max_length=64)] = None,
        kind: Kind | None = None,
        limit: Annotated[int, Query(ge=1, le=50)] = 10,
    ) -> list[PublicRun]:
        """Upcoming runs with free seats or a waitlist, nearest first. Public: no personal data."""
        runs = await reading(db).runs.upcoming_near(
            _postcode_area(postcode), clock(), course_type=course_type, kind=kind, limit=limit
        )
        return [
            PublicRun(
                id=run.id,
                course_type=run.course_type,
                library=run.library,
                location=run.location,
                postcode=run.postcode,
                first_session_at=run.first_session_at,
                sessions=len(run.sessions),
                seats_free=run.seats_free,
            )
            for run in runs
        ]

    @router.post(
        "/course-runs", status_code=201, response_model=RunView, tags=["runs"], dependencies=[Depends(require_json)]
    )
    async def schedule(cmd: ScheduleRun, caller: Caller) -> RunView:
        """Schedule a run of a course type at one of the caller's IDO locations."""
        library = _library(caller)
        async with unit_of_work() as uow:
            run = await handlers.schedule_run(cmd, library=library, uow=uow, events=events, now=clock())
        return RunView.of(run)

    async def _own_run(run_id: str, caller: Principal) -> CourseRun:
        run = await reading(db).runs.get(run_id)
        if run is None or run.library != _library(caller):
            raise Problem(404, "Course run not found")
        return run

    @router.get("/course-runs/{run_id}", response_model=RunView, tags=["runs"])
    async def read_run(run_id: str, caller: Caller) -> RunView:
        return RunView.of(await _own_run(run_id, caller))

    @router.post(
        "/course-runs/{run_id}/enrolments",
        status_code=201,
        response_model=EnrolmentView,
        tags=["enrolment"],
        dependencies=[Depends(require_json)],
    )
    async def enrol(run_id: str, cmd: Enrol, caller: Caller) -> EnrolmentView:
        """Enrol a participant (with consent); a full run puts them on its waitlist."""
        library = _library(caller)
        async with unit_of_work() as uow:
            enrolment = await handlers.enrol(run_id, cmd, library=library, uow=uow, events=events, now=clock())
        return EnrolmentView.of(enrolment)

    @router.get("/course-runs/{run_id}/enrolments", response_model=list[EnrolmentView], tags=["enrolment"])
    async def enrolments(run_id: str, caller: Caller) -> list[EnrolmentView]:
        await _own_run(run_id, caller)
        return [EnrolmentView.of(e) for e in await reading(db).runs.enrolments_of(run_id)]

    @router.delete("/enrolments/{enrolment_id}", response_model=EnrolmentView, tags=["enrolment"])
    async def cancel(enrolment_id: str, caller: Caller) -> EnrolmentView:
        """Cancel; a freed seat is offered to the first on the waitlist."""
        library = _library(caller)
        async with unit_of_work() as uow:
            enrolment = await handlers.cancel(
                enrolment_id, library=library, uow=uow, events=events, now=clock(), window=window
            )
        return EnrolmentView.of(enrolment)

    @router.post("/enrolments/{enrolment_id}/accept", response_model=EnrolmentView, tags=["enrolment"])
    async def accept(enrolment_id: str, caller: Caller) -> EnrolmentView:
        """Accept a seat offered from the waitlist, within its acceptance window."""
        library = _library(caller)
        async with unit_of_work() as uow:
            enrolment = await handlers.accept_offer(enrolment_id, library=library, uow=uow, events=events, now=clock())
        return EnrolmentView.of(enrolment)

    @router.post("/course-runs/{run_id}/cancel", response_model=RunView, tags=["runs"])
    async def cancel_run(run_id: str, caller: Caller) -> RunView:
        """Cancel a run; its enrolments and waitlist are cancelled with it."""
        library = _library(caller)
        async with unit_of_work() as uow:
            run = await handlers.cancel_run(run_id, library=library, uow=uow, events=events, now=clock())
        return RunView.of(run)

    @router.patch("/course-runs/{run_id}", response_model=RunView, tags=["runs"], dependencies=[Depends(require_json)])
    async def change_run(run_id: str, change: ChangeRun, caller: Caller) -> RunView:
        """Change a run's capacity; added seats are offered to the waitlist at once."""
        library = _library(caller)
        async with unit_of_work() as uow:
            run = await handlers.change_capacity(
                run_id, change.capacity, library=library, uow=uow, events=events, now=clock(), window=window
            )
        return RunView.of(run)

    @router.put("/course-runs/{run_id}/sessions/{session}/attendance", response_model=Completions, tags=["attendance"])
    async def attendance(run_id: str, session: int, attendance: Attendance, caller: Caller) -> Completions:
        """Record who attended a session; returns the enrolments that completed the course by it."""
        library = _library(caller)
        async with unit_of_work() as uow:
            done = await handlers.record_attendance(
                run_id,
                session,
                attendance.present,
                library=library,
                uow=uow,
                events=events,
                now=clock(),
                window=window,
                no_show_frees_seat=no_show_frees_seat,
            )
        return Completions(completed=done)

    @router.get("/enrolments/{enrolment_id}/certificate", tags=["attendance"])
    async def certificate(enrolment_id: str, caller: Caller) -> JSONResponse:
        """The certificate of completion as a downloadable record."""
        record = await handlers.certificate(enrolment_id, library=_library(caller), repos=reading(db))
        disposition = f'attachment; filename="certificate-{enrolment_id.rsplit(":", 1)[-1]}.json"'
        return JSONResponse(record, headers={"Content-Disposition": disposition})

    @router.get("/course-advice/{help_request_id}", response_model=AdviceView, tags=["from the desk"])
    async def advice(help_request_id: str, caller: Caller) -> AdviceView:
        """What the desk advised for a visit, with the library's upcoming runs that fit it."""
        wanted, runs = await handlers.course_advice(
            help_request_id, library=_library(caller), repos=reading(db), now=clock()
        )
        return AdviceView(help_request_id=help_request_id, course_types=wanted, runs=[RunView.of(r) for r in runs])

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
        async with unit_of_work() as uow:
            enrolment = await handlers.enrol_from_advice(
                help_request_id, cmd, library=library, uow=uow, events=events, now=clock()
            )
        return EnrolmentView.of(enrolment)

    @router.put("/teachers/{teacher_id}", response_model=Teacher, tags=["teachers"])
    async def put_teacher(teacher_id: str, teacher: Teacher, caller: Caller) -> Teacher:
        """The certification register, kept by KB staff."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff keep the certification register")
        async with unit_of_work() as uow:
            await handlers.put_teacher(teacher_id, teacher.name, teacher.certified_for, uow=uow)
        return teacher

    return router
