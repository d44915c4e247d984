"""Subsidy's HTTP API: schemes (KB staff), applications (libraries), decisions (KB staff) and
the budget overview. Every command runs in one unit of work; reads go to the pool."""

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.subsidy import handlers
from services.subsidy.adapters.repository import SubsidyUnitOfWork, SubsidyViews
from services.subsidy.domain.model import Application, Apply, Decide, Refused, Renew, Scheme
from shared.auth import Principal
from shared.db import Database
from shared.http import Problem, field_problem, problem_response, require_json
from shared.outbox import EventFactory


class ApplicationView(BaseModel):
    id: str
    scheme: str
    library: str
    inhabitants: int
    ido_opening_date: str
    planned_course_offers: int
    calculation: list[dict[str, Any]]
    requested_cents: int
    granted_cents: int | None = None
    status: str
    decision_reason: str | None = None
    payments: list[dict[str, Any]] = []
    renewal: dict[str, Any] | None = None
    trail: list[dict[str, Any]]

    @classmethod
    def of(cls, application: Application) -> "ApplicationView":
        renewal = asdict(application.renewal) if application.renewal else None
        return cls(
            id=application.id,
            scheme=application.scheme,
            library=application.library,
            inhabitants=application.inhabitants,
            ido_opening_date=application.ido_opening_date.isoformat(),
            planned_course_offers=application.planned_course_offers,
            calculation=[line.model_dump(mode="json") for line in application.calculation],
            requested_cents=application.requested_cents,
            granted_cents=application.granted_cents,
            status=application.status,
            decision_reason=application.decision_reason,
            payments=[asdict(p) for p in application.payments],
            renewal=renewal and {**renewal, "signed_on": renewal["signed_on"].isoformat()},
            trail=[asdict(t) for t in application.trail],
        )


class Overview(BaseModel):
    scheme: str
    budget_ceiling_cents: int
    reserved_cents: int
    paid_cents: int
    remaining_cents: int
    applications: dict[str, int]


def install_error_answers(app: FastAPI) -> None:
    """One place that turns subsidy's domain errors into problem+json answers."""

    async def refused(_: Request, exc: Exception) -> JSONResponse:
        return field_problem(exc)

    async def not_found(_: Request, exc: Exception) -> JSONResponse:
        return problem_response(404, "Application not found")

    async def conflict(_: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, handlers.BudgetExhausted):
            return problem_response(409, "Budget exhausted", "the grant does not fit in the scheme's remaining budget")
        return problem_response(409, "Already decided", f"the application is {exc}")

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(handlers.NotFound, not_found)
    for error in (handlers.AlreadyDecided, handlers.BudgetExhausted):
        app.add_exception_handler(error, conflict)


def build_router(*, authenticated, db: Database, events: EventFactory, clock: Callable[[], datetime]) -> APIRouter:
    router = APIRouter(prefix="/v1")
    views = SubsidyViews(db)
    Caller = Annotated[Principal, Depends(authenticated)]

    def kb_only(caller: Principal) -> None:
        if caller.role != "kb":
            raise Problem(403, "Only KB staff manage schemes and decide")

    @router.put("/schemes/{code}", response_model=Scheme, tags=["schemes"], dependencies=[Depends(require_json)])
    async def put_scheme(code: str, scheme: Scheme, caller: Caller) -> Scheme:
        """Create or change a scheme (KB staff); decisions already taken keep their amounts."""
        kb_only(caller)
        async with db.unit_of_work() as tx:
            await handlers.put_scheme(code, scheme, uow=SubsidyUnitOfWork(tx), events=events)
        return scheme

    @router.get("/schemes", tags=["schemes"])
    async def schemes(caller: Caller) -> list[dict[str, Any]]:
        """The schemes with their windows and rates."""
        return [{"code": code, **scheme.model_dump(mode="json")} for code, scheme in await views.schemes()]

    @router.get("/schemes/{code}/overview", response_model=Overview, tags=["schemes"])
    async def overview(code: str, caller: Caller) -> Overview:
        """Awarded (reserved) and remaining budget, and applications per status (KB staff)."""
        kb_only(caller)
        figures = await views.overview(code)
        if figures is None:
            raise Problem(404, "Scheme not found")
        ceiling, reserved = figures["budget_ceiling_cents"], figures["reserved_cents"]
        return Overview(
            scheme=code,
            budget_ceiling_cents=ceiling,
            reserved_cents=reserved,
            paid_cents=figures["paid_cents"],
            remaining_cents=ceiling - reserved,
            applications=figures["applications"],
        )

    @router.post(
        "/applications",
        status_code=201,
        response_model=ApplicationView,
        tags=["applications"],
        dependencies=[Depends(require_json)],
    )
    async def apply(cmd: Apply, caller: Caller) -> ApplicationView:
        """Apply for a scheme; the answer shows the amount with its calculation."""
        if caller.role != "library":
            raise Problem(403, "Only a library applies")
        async with db.unit_of_work() as tx:
            application = await handlers.apply(
                cmd, library=caller.organisation, uow=SubsidyUnitOfWork(tx), events=events, now=clock()
            )
        return ApplicationView.of(application)

    @router.get("/applications", response_model=list[ApplicationView], tags=["applications"])
    async def applications(caller: Caller) -> list[ApplicationView]:
        """A library's own applications; KB staff see all."""
        if caller.role not in ("library", "kb"):
            raise Problem(403, "Only libraries and KB staff")
        library = caller.organisation if caller.role == "library" else None
        return [ApplicationView.of(a) for a in await views.applications_of(library)]

    @router.get("/applications/{application_id}", response_model=ApplicationView, tags=["applications"])
    async def application(application_id: str, caller: Caller) -> ApplicationView:
        found = await views.application(application_id)
        if found is None or (
            caller.role != "kb" and (caller.role != "library" or found.library != caller.organisation)
        ):
            raise Problem(404, "Application not found")
        return ApplicationView.of(found)

    @router.post(
        "/applications/{application_id}/renewal",
        response_model=ApplicationView,
        tags=["applications"],
        dependencies=[Depends(require_json)],
    )
    async def renew(application_id: str, cmd: Renew, caller: Caller) -> ApplicationView:
        """The signed renewal confirmation for the extension year, before its deadline (library)."""
        if caller.role != "library":
            raise Problem(403, "Only the library renews its application")
        async with db.unit_of_work() as tx:
            application = await handlers.renew(
                application_id, cmd, library=caller.organisation, uow=SubsidyUnitOfWork(tx), events=events, now=clock()
            )
        return ApplicationView.of(application)

    @router.post(
        "/applications/{application_id}/decision",
        response_model=ApplicationView,
        tags=["decisions"],
        dependencies=[Depends(require_json)],
    )
    async def decide(application_id: str, cmd: Decide, caller: Caller) -> ApplicationView:
        """Grant (all or part) or reject, always with a reason (KB staff)."""
        kb_only(caller)
        async with db.unit_of_work() as tx:
            application = await handlers.decide(
                application_id, cmd, caller=caller, uow=SubsidyUnitOfWork(tx), events=events, now=clock()
            )
        return ApplicationView.of(application)

    return router
