"""Routing's HTTP API for agencies: the handover of a referral (the CloudEvent's dataref), the
status reports that close the loop, and the list of their referrals (the inbox page reads it)."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.routing import handlers
from services.routing.adapters.repository import Cases, Organisations, Referrals, RoutingUnitOfWork, Rules
from services.routing.domain.referral import OPEN, InvalidTransition, Listing, Referral
from shared import reference
from shared.auth import Principal
from shared.db import Database
from shared.events.catalog import ReferralStatus
from shared.http import Problem, invalid_field, next_page, page_after
from shared.outbox import EventFactory
from shared.pages import labels_attribute, page_router
from shared.privacy import NoBsn

HANDOVER_PATH = "/v1/referrals/{referral_id}"
Reason = Annotated[str, StringConstraints(max_length=500), NoBsn]


class StatusChangeView(BaseModel):
    status: str
    reason: str | None
    at: datetime
    by: str


class ReferralSummary(BaseModel):
    """What the ReferredToAgency event says of a referral, and where it stands: never personal data."""

    referral_id: str
    help_request_id: str
    agency: str
    library: str
    theme: str
    subtheme: str | None
    contact_preference: str | None
    status: str
    sent_at: datetime
    due_at: datetime | None
    # The statuses the organisation may report next (the domain's rule, so no client repeats it).
    allowed_statuses: list[str]


class ReferralView(ReferralSummary):
    """A referral as its receiving organisation sees it: the handover."""

    history: list[StatusChangeView]
    # Only in the handover: the visitor's contact details (with consent, per preference) and
    # the note of the referred question. None once the personal data is erased.
    contact: dict[str, str] | None = None
    note: str | None = None

    @classmethod
    def of(cls, referral: Referral, **personal: Any) -> "ReferralView":
        return cls.model_validate(referral, from_attributes=True).model_copy(update=personal)


class ReferralItem(ReferralSummary):
    """A referral in its organisation's list: no contact, no note, no reasons (those are in the
    handover, whose every read is recorded)."""

    paused: bool = Field(description="the service-level clock is paused: the visitor has to act")
    overdue: bool = Field(description="past its response time and still open")

    @classmethod
    def of(cls, referral: Referral, now: datetime) -> "ReferralItem":
        summary = ReferralSummary.model_validate(referral, from_attributes=True)
        return cls(**summary.model_dump(), paused=referral.paused_at is not None, overdue=referral.past_due(now))


class ReferralPage(BaseModel):
    items: list[ReferralItem]
    next: str | None


class StatusReport(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    status: ReferralStatus
    reason: Reason | None = None


class Organisation(BaseModel):
    code: str
    name: str
    kind: str
    municipality: str | None = None
    response_hours: int | None = None


Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]


class OrganisationData(BaseModel):
    """A receiving organisation: an agency, or a local partner in one municipality."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["agency", "partner"] = "partner"
    municipality: Slug | None = None
    response_hours: int | None = Field(default=None, ge=1, le=24 * 90)


class RoutingRule(BaseModel):
    """Questions of this theme (and subtheme), in this municipality if given, go to `organisation`
    (null: helped at the desk)."""

    model_config = ConfigDict(extra="forbid")

    theme: Slug
    subtheme: Slug | None = None
    municipality: Slug | None = None
    organisation: Slug | None


def _kb_only(caller: Principal) -> None:
    if caller.role != "kb":
        raise Problem(403, "Only KB staff manage organisations and routing rules")


def _unknown_organisation() -> Problem:
    return invalid_field("organisation", "not a known organisation")


def build_router(
    *,
    authenticated,
    db: Database,
    events: EventFactory,
    keys: handlers.KeySource,
    clock: Callable[[], datetime],
) -> APIRouter:
    router = APIRouter()
    Caller = Annotated[Principal, Depends(authenticated)]

    @router.get("/v1/organisations", response_model=list[Organisation], tags=["reference data"])
    async def organisations(caller: Caller) -> list[Organisation]:
        """The organisations that receive referrals: the agencies and, as added, local partners."""
        return [Organisation(**org) for org in await Organisations(db).all()]

    @router.put("/v1/organisations/{code}", response_model=Organisation, tags=["reference data"])
    async def put_organisation(code: Slug, data: OrganisationData, caller: Caller) -> Organisation:
        """Add or change a receiving organisation (KB staff): data, no code change."""
        _kb_only(caller)
        await Organisations(db).put(code, data.model_dump())
        return Organisation(code=code, **data.model_dump())

    @router.put("/v1/routing-rules", response_model=RoutingRule, tags=["reference data"])
    async def put_rule(rule: RoutingRule, caller: Caller) -> RoutingRule:
        """Add or change a routing rule (KB staff); a municipality's rule wins over the national one."""
        _kb_only(caller)
        if rule.organisation is not None and not await Organisations(db).known([rule.organisation]):
            raise _unknown_organisation()
        try:
            await Rules(db).put(rule.model_dump())
        except asyncpg.ForeignKeyViolationError:  # the rule's foreign key: a check that cannot race
            raise _unknown_organisation() from None
        return rule

    @router.get("/v1/referrals", response_model=ReferralPage, tags=["referrals"])
    async def list_referrals(
        caller: Caller,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        status: Annotated[
            list[ReferralStatus] | None,
            Query(description=f"repeat for several; default every status (open ones: {', '.join(OPEN)})"),
        ] = None,
        after: Annotated[str | None, Query(max_length=200, description="the `next` of the previous page")] = None,
    ) -> ReferralPage:
        """The caller's own referrals (an agency's or a local partner's), newest first, with
        their service-level clock. No personal data: open one (the handover) for that."""
        listing = Listing(limit, tuple(dict.fromkeys(status or ())), page_after(after) if after else None)
        try:
            found = await handlers.list_referrals(listing, caller=caller, referrals=Referrals(db))
        except handlers.NotReceiving:
            raise Problem(403, "Only an agency or a partner has referrals to list") from None
        now = clock()
        last = found[-1] if len(found) == limit else None
        return ReferralPage(
            items=[ReferralItem.of(r, now) for r in found],
            next=next_page(last.sent_at, last.referral_id) if last else None,
        )

    @router.get(HANDOVER_PATH, response_model=ReferralView, tags=["referrals"])
    async def handover(referral_id: str, caller: Caller) -> ReferralView:
        """The handover of a warm referral, for the receiving agency only; every read is recorded."""
        try:
            async with db.unit_of_work() as tx:
                referral = await handlers.read_handover(
                    referral_id, caller=caller, uow=RoutingUnitOfWork(tx), events=events, now=clock()
                )
        except handlers.NotFound:
            raise Problem(404, "Referral not found") from None
        # Outside the transaction: the data key is fetched from intake over HTTP.
        return ReferralView.of(referral, **await handlers.personal_details(referral, cases=Cases(db), keys=keys))

    @router.post(f"{HANDOVER_PATH}/status", response_model=ReferralView, tags=["referrals"])
    async def report_status(referral_id: str, report: StatusReport, caller: Caller) -> ReferralView:
        """The receiving agency reports progress; the library sees it on the help request."""
        try:
            async with db.unit_of_work() as tx:
                referral = await handlers.report_status(
                    referral_id,
                    report.status,
                    report.reason,
                    caller=caller,
                    uow=RoutingUnitOfWork(tx),
                    events=events,
                    now=clock(),
                )
        except handlers.NotFound:
            raise Problem(404, "Referral not found") from None
        except InvalidTransition as exc:
            raise Problem(409, "Status change not allowed", str(exc)) from None
        return ReferralView.of(referral)

    return router


STATIC = FilePath(__file__).parent / "static"
INBOX = (STATIC / "inbox.html").read_text(encoding="utf-8")


def inbox_router() -> APIRouter:
    """The inbox page (in Dutch, for staff of an agency or partner). It holds no data: it reads
    this API with the credential staff paste in, so it needs no authentication of its own."""
    # The Dutch names the list is shown with (a theme or partner added later: its code).
    labels = {
        "themes": {code: theme.label for code, theme in reference.THEMES.items()},
        "libraries": reference.PILOT_LIBRARIES,
        "organisations": reference.AGENCIES,
        "statuses": reference.REFERRAL_STATUS_LABELS,
    }
    page = INBOX.replace("__LABELS__", labels_attribute(labels))
    return page_router("inbox", STATIC, page, title="doorverwijzingen", whose="uw organisatie")
