"""Intake's HTTP API for libraries: /v1/help-requests and /v1/themes (the KB keeps the taxonomy)."""

import base64
import html
import uuid
from datetime import UTC, datetime
from pathlib import Path as FilePath
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from pydantic import BaseModel

from services.intake import handlers
from services.intake.adapters.repository import HelpRequests, IntakeUnitOfWork, Libraries, Locations, Themes
from services.intake.domain.location import IdoLocation, RegisteredLocation
from services.intake.domain.model import HelpRequest, Listing, RegisterHelpRequest, Status
from services.intake.domain.taxonomy import Theme, ThemeDefinition
from shared import reference
from shared.auth import Principal
from shared.db import Database
from shared.http import Problem, invalid_field, next_page, page_after, require_json
from shared.logging import bound_context, get_logger
from shared.outbox import EventFactory
from shared.pages import labels_attribute, page_router
from shared.values import Timestamp

log = get_logger(__name__)


class HelpRequestPage(BaseModel):
    items: list[HelpRequest]
    next: str | None


class DataKey(BaseModel):
    key: str


class LibraryView(BaseModel):
    code: str
    name: str


class ThemeView(BaseModel):
    code: str
    label: str
    default_organisation: str | None
    subthemes: dict[str, str | None]
    category: str
    retired: bool

    @classmethod
    def of(cls, theme: Theme) -> "ThemeView":
        return cls.model_validate(theme.model_dump())


def _library(principal: Principal) -> str:
    if principal.role != "library":
        raise Problem(403, "Only a library can register and read help requests")
    return principal.organisation


def build_router(
    *,
    authenticated,
    db: Database,
    events: EventFactory,
) -> APIRouter:
    router = APIRouter(prefix="/v1")
    # Reads go to the pool; every change runs in a unit of work.
    repo, libraries, locations, themes_table = HelpRequests(db), Libraries(db), Locations(db), Themes(db)
    Caller = Annotated[Principal, Depends(authenticated)]

    @router.post(
        "/help-requests",
        status_code=201,
        response_model=HelpRequest,
        tags=["help requests"],
        dependencies=[Depends(require_json)],
    )
    async def register(
        cmd: RegisterHelpRequest,
        caller: Caller,
        request: Request,
        response: Response,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
    ) -> HelpRequest:
        """Register one visit to the IDO with its questions."""
        library = _library(caller)
        correlation_id = request.headers.get("x-correlation-id") or str(uuid.uuid4())
        with bound_context(correlation_id=correlation_id, library=library):
            try:
                async with db.unit_of_work() as tx:
                    help_request, created = await handlers.register_help_request(
                        cmd,
                        library=library,
                        idempotency_key=idempotency_key,
                        correlation_id=correlation_id,
                        uow=IntakeUnitOfWork(tx),
                        events=events,
                    )
            except handlers.InvalidThemes as invalid:
                raise Problem(
                    422,
                    "Invalid request",
                    f"{len(invalid.params)} invalid field(s): themes and subthemes come from GET /v1/themes",
                    extensions={"invalid-params": invalid.params},
                ) from None
            except handlers.UnknownLocation:
                raise invalid_field("location", "not a registered IDO location of this library") from None
            except handlers.IdempotencyConflict:
                raise Problem(409, "Idempotency-Key reused", "this key was used for a different request") from None
            log.info(
                "help request registered" if created else "idempotent retry answered", help_request_id=help_request.id
            )
        response.headers["Location"] = f"/v1/help-requests/{help_request.id}"
        if not created:
            response.status_code = 200
        return help_request

    @router.get("/help-requests/{request_id}", response_model=HelpRequest, tags=["help requests"])
    async def read(request_id: str, caller: Caller) -> HelpRequest:
        # Another library's id answers 404, so existence does not leak across libraries.
        help_request = await repo.get(request_id, _library(caller))
        if help_request is None:
            raise Problem(404, "Help request not found")
        return help_request

    @router.get("/help-requests", response_model=HelpRequestPage, tags=["help requests"])
    async def list_requests(
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        status: Status | None = None,
        theme: Annotated[str | None, Query(max_length=64)] = None,
        registered_from: Annotated[Timestamp | None, Query(alias="from")] = None,
        registered_to: Annotated[Timestamp | None, Query(alias="to")] = None,
        after: Annotated[str | None, Query(max_length=200, description="the `next` of the previous page")] = None,
    ) -> HelpRequestPage:
        """The caller's own help requests, newest first, filtered and paginated."""
        listing = Listing(limit, status, theme, registered_from, registered_to, page_after(after) if after else None)
        items = await repo.list(_library(caller), listing)
        last = items[-1] if len(items) == limit else None
        return HelpRequestPage(items=items, next=next_page(last.registered_at, last.id) if last else None)

    @router.delete("/help-requests/{request_id}/personal-data", response_model=HelpRequest, tags=["privacy"])
    async def erase(request_id: str, caller: Caller) -> HelpRequest:
        """Erase the visit's contact details and notes at once (AVG art. 17) and destroy its data
        key, so no copy anywhere can be read again. A library its own visits; the KB any."""
        if caller.role not in ("library", "kb"):
            raise Problem(403, "Only the library or the KB can erase personal data")
        library = caller.organisation if caller.role == "library" else None
        try:
            async with db.unit_of_work() as tx:
                return await handlers.erase_personal_data(
                    request_id,
                    library=library,
                    reason="request",
                    uow=IntakeUnitOfWork(tx),
                    events=events,
                    now=datetime.now(UTC),
                )
        except handlers.NotFound:
            raise Problem(404, "Help request not found") from None

    @router.get("/help-requests/{request_id}/data-key", response_model=DataKey, tags=["privacy"])
    async def data_key(request_id: str, caller: Caller) -> DataKey:
        """The request's data key, for routing only, to open the sealed handover details.
        404 once the personal data is erased."""
        if caller.role != "service" or caller.organisation != "routing":
            raise Problem(403, "Only the routing service may fetch data keys")
        key = await repo.data_key(request_id)
        if key is None:
            raise Problem(404, "No data key", "unknown, or its personal data was erased")
        log.info("data key handed out", help_request_id=request_id, to=caller.organisation)
        return DataKey(key=base64.urlsafe_b64encode(key).decode())

    @router.put("/locations/{code}", response_model=RegisteredLocation, tags=["locations"])
    async def put_location(
        code: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")], location: IdoLocation, caller: Caller
    ) -> RegisteredLocation:
        """Register or update one of the caller's IDO locations (opening hours, staffing)."""
        async with db.unit_of_work() as tx:
            return await handlers.register_location(
                code, location, library=_library(caller), uow=IntakeUnitOfWork(tx), events=events
            )

    @router.get("/locations", response_model=list[RegisteredLocation], tags=["locations"])
    async def list_locations(caller: Caller) -> list[RegisteredLocation]:
        """The caller's IDO locations."""
        return await locations.all(_library(caller))

    @router.get("/locations/{code}", response_model=RegisteredLocation, tags=["locations"])
    async def get_location(code: str, caller: Caller) -> RegisteredLocation:
        """One of the caller's IDO locations."""
        found = await locations.get(_library(caller), code)
        if found is None:
            raise Problem(404, "Location not found")
        return found

    @router.get("/libraries", response_model=list[LibraryView], tags=["reference data"])
    async def list_libraries(caller: Caller) -> list[LibraryView]:
        """The libraries that run an IDO (codes as used in credentials and events)."""
        return [LibraryView(**lib) for lib in await libraries.all()]

    @router.get("/themes", response_model=list[ThemeView], tags=["taxonomy"])
    async def themes() -> list[ThemeView]:
        """The question taxonomy per category: themes, subthemes and the default receiving
        organisation. A retired theme is listed (visits keep its code) but no longer accepted."""
        return [ThemeView.of(t) for t in await themes_table.all()]

    @router.put("/themes/{code}", response_model=ThemeView, tags=["taxonomy"], dependencies=[Depends(require_json)])
    async def put_theme(
        code: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")], definition: ThemeDefinition, caller: Caller
    ) -> ThemeView:
        """The KB adds, changes or retires (`retired: true`) a theme of the taxonomy; the
        category in the body is part of its key. Registration follows at once."""
        if caller.role != "kb":
            raise Problem(403, "Only the KB can change the taxonomy")
        async with db.unit_of_work() as tx:
            theme = await handlers.put_theme(Theme(code=code, **definition.model_dump()), uow=IntakeUnitOfWork(tx))
        log.info("theme put", theme=code, category=theme.category, retired=theme.retired)
        return ThemeView.of(theme)

    return router


STATIC = FilePath(__file__).parent / "static"
DESK = (STATIC / "desk.html").read_text(encoding="utf-8")


def desk_router(*, courses_url: str) -> APIRouter:
    """The desk page (in Dutch, for library staff): register a visit, follow its outcome. It
    holds no data: it calls this API (and courses', at `courses_url`) with the credential staff
    paste in, so it needs no authentication of its own."""
    courses = courses_url.rstrip("/")
    parts = urlsplit(courses)
    # The Dutch names the outcome is shown with (organisations a partner added later: their code).
    labels = {
        "organisations": reference.AGENCIES,
        "statuses": reference.REFERRAL_STATUS_LABELS,
        "outcomes": reference.OUTCOME_LABELS,
        "course_types": reference.COURSE_TYPE_LABELS,
    }
    page = DESK.replace("__COURSES_URL__", html.escape(courses, quote=True)).replace(
        "__LABELS__", labels_attribute(labels)
    )
    # The page talks to intake and courses only.
    connect_src = f"'self' {parts.scheme}://{parts.netloc}"
    return page_router("desk", STATIC, page, title="balie", whose="uw bibliotheek", connect_src=connect_src)
