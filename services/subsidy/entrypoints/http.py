"""Subsidy's HTTP API: schemes (KB staff), applications (libraries), decisions (KB staff) and
the budget overview."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.subsidy import handlers
from services.subsidy.adapters.repository import BudgetBusy, MongoSubsidyRepository
from services.subsidy.domain.model import Apply, Decide, Refused, Renew, Scheme
from shared.auth import Principal
from shared.events.catalog import SubsidySchemePublished
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
    def of(cls, doc: dict[str, Any]) -> "ApplicationView":
        return cls.model_validate({**doc, "id": doc["_id"]})


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
        if isinstance(exc, BudgetBusy):
            return problem_response(503, "Budget busy", "try again", headers={"Retry-After": "1"})
        return problem_response(409, "Already decided", f"the application is {exc}")

    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(handlers.NotFound, not_found)
    for error in (handlers.AlreadyDecided, handlers.BudgetExhausted, BudgetBusy):
        app.add_exception_handler(error, conflict)


def build_router(
    *, authenticated, repo: MongoSubsidyRepository, events: EventFactory, clock: Callable[[], datetime]
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Principal, Depends(authenticated)]

    def kb_only(caller: Principal) -> None:
        if caller.role != "kb":
            raise Problem(403, "Only KB staff manage schemes and decide")

    @router.put("/schemes/{code}", response_model=Scheme, tags=["schemes"], dependencies=[Depends(require_json)])
    async def put_scheme(code: str, scheme: Scheme, caller: Caller) -> Scheme:
        """Create or change a scheme (KB staff); decisions already taken keep their amounts."""
        kb_only(caller)
        published = SubsidySchemePublished(
            scheme=code,
            name=scheme.name,
            opens=scheme.opens,
            closes=scheme.closes,
            budget_ceiling_cents=scheme.budget_ceiling_cents,
        )
        await repo.put_scheme(code, scheme.model_dump(mode="json"), [events.create(published, correlation_id=code)])
        return scheme

    @router.get("/schemes", tags=["schemes"])
    async def schemes(caller: Caller) -> list[dict[str, Any]]:
        """The schemes with their windows and rates."""
        return [{"code": d.pop("_id"), **d} for d in await repo.all_schemes()]

    @router.get("/schemes/{code}/overview", response_model=Overview, tags=["schemes"])
    async def overview(code: str, caller: Caller) -> Overview:
        """Awarded (reserved) and remaining budget, and applications per status (KB staff)."""
        kb_only(caller)
        scheme, budget = await repo.scheme(code), await repo.budget(code)
        if scheme is None or budget is None:
            raise Problem(404, "Scheme not found")
        counts: dict[str, int] = {}
        paid = 0
        for application in await repo.applications_of(None):
            if application["scheme"] == code:
                counts[application["status"]] = counts.get(application["status"], 0) + 1
                paid += sum(p["amount_cents"] for p in application.get("payments", []))
        ceiling = scheme["budget_ceiling_cents"]
        return Overview(
            scheme=code,
            budget_ceiling_cents=ceiling,
            reserved_cents=budget["reserved_cents"],
            paid_cents=paid,
            remaining_cents=ceiling - budget["reserved_cents"],
            applications=counts,
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
        return ApplicationView.of(
            await handlers.apply(cmd, library=caller.organisation, repo=repo, events=events, now=clock())
        )

    @router.get("/applications", response_model=list[ApplicationView], tags=["applications"])
    async def applications(caller: Caller) -> list[ApplicationView]:
        """A library's own applications; KB staff see all."""
        if caller.role not in ("library", "kb"):
            raise Problem(403, "Only libraries and KB staff")
        library = caller.organisation if caller.role == "library" else None
        return [ApplicationView.of(d) for d in await repo.applications_of(library)]

    @router.get("/applications/{application_id}", response_model=ApplicationView, tags=["applications"])
    async def application(application_id: str, caller: Caller) -> ApplicationView:
        doc = await repo.application(application_id)
        if doc is None or (caller.role != "kb" and (caller.role != "library" or doc["library"] != caller.organisation)):
            raise Problem(404, "Application not found")
        return ApplicationView.of(doc)

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
        await handlers.renew(application_id, cmd, library=caller.organisation, repo=repo, events=events, now=clock())
        return ApplicationView.of(await repo.application(application_id) or {})

    @router.post(
        "/applications/{application_id}/decision",
        response_model=ApplicationView,
        tags=["decisions"],
        dependencies=[Depends(require_json)],
    )
    async def decide(application_id: str, cmd: Decide, caller: Caller) -> ApplicationView:
        """Grant (all or part) or reject, always with a reason (KB staff)."""
        kb_only(caller)
        await handlers.decide(application_id, cmd, caller=caller, repo=repo, events=events, now=clock())
        return ApplicationView.of(await repo.application(application_id) or {})

    return router
