"""Routing's HTTP API for agencies: the handover of a referral (the CloudEvent's dataref), the
status reports that close the loop, and the list of their referrals."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from services.routing import handlers
from services.routing.adapters.repository import Cases, Organisations, RoutingUnitOfWork, Rules
from services.routing.domain.referral import InvalidTransition, Referral
from shared.auth import Principal
from shared.db import Database
from shared.events.catalog import ReferralStatus
from shared.http import Problem, invalid_field
from shared.outbox import EventFactory
from shared.privacy import NoBsn

HANDOVER_PATH = "/v1/referrals/{referral_id}"
Reason = Annotated[str, StringConstraints(max_length=500), NoBsn]


class StatusChangeView(BaseModel):
    status: str
    reason: str | None
    at: datetime
    by: str


class ReferralView(BaseModel):
    """A referral as its receiving organisation sees it: the handover."""

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
    history: list[StatusChangeView]
    # Only in the handover: the visitor's contact details (with consent, per preference) and
    # the note of the referred question. None once the personal data is erased.
    contact: dict[str, str] | None = None
    note: str | None = None

    @classmethod
    def of(cls, referral: Referral, **personal: Any) -> "ReferralView":
        return cls.model_validate(referral, from_attributes=True).model_copy(update=personal)


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
