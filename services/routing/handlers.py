"""Routing's use cases: one function per event or command, each run in one unit of work (one
transaction): the state change, its events (outbox rows) and, for a consumed event, the
processed record commit together. Inputs and outputs are domain objects; the unit of work,
event factory and clock are handed in by the wiring."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.routing.domain.model import RoutingRules, decide
from services.routing.domain.referral import Listing, Referral, response_time
from shared.auth import Principal
from shared.events.catalog import (
    HelpRequested,
    HelpRequestRouted,
    PersonalDataErased,
    ReferralHandoverRead,
    ReferralOverdue,
    ReferralStatus,
    ReferralStatusChanged,
    ReferredToAgency,
)
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory, PendingEvent
from shared.sealing import unseal


class Cases(Protocol):
    async def add(self, routed: HelpRequestRouted, *, sealed: str | None, at: datetime) -> bool: ...
    async def sealed(self, help_request_id: str) -> str | None: ...
    async def forget_sealed(self, help_request_id: str, at: datetime) -> None: ...


class Referrals(Protocol):
    async def add(self, referrals: Iterable[Referral]) -> None: ...
    async def get(self, referral_id: str, *, for_update: bool = False) -> Referral | None: ...
    async def save(self, referral: Referral) -> None: ...
    async def record_read(self, referral_id: str, *, at: datetime, organisation: str, credential_id: str) -> None: ...
    async def lock_due(self, now: datetime, limit: int) -> list[Referral]: ...


class ReferralList(Protocol):
    async def of_organisation(self, agency: str, listing: Listing) -> list[Referral]: ...


class Rules(Protocol):
    async def matching(
        self, themes: Iterable[str], municipality: str | None, targets: Iterable[str]
    ) -> RoutingRules: ...


class Organisations(Protocol):
    async def response_hours(self, codes: Iterable[str]) -> dict[str, int | None]: ...


class RoutingUnitOfWork(Protocol):
    """What the handlers need of a transaction (adapters.repository.RoutingUnitOfWork)."""

    @property
    def cases(self) -> Cases: ...
    @property
    def referrals(self) -> Referrals: ...
    @property
    def rules(self) -> Rules: ...
    @property
    def organisations(self) -> Organisations: ...
    def emit(self, *events: PendingEvent) -> None: ...


class ReferralTopics(Protocol):
    async def ensure(self, organisation: str) -> None: ...


class NotFound(Exception):
    """Unknown, or not addressed to this caller: both answer 404 so nothing leaks."""


class NotReceiving(Exception):
    """The caller is not an organisation that receives referrals (an agency or partner)."""


async def on_help_requested(
    event: CloudEvent,
    data: HelpRequested,
    *,
    uow: RoutingUnitOfWork,
    events: EventFactory,
    handover_url: str,
    topics: ReferralTopics,
    default_response_time: timedelta,
    now: datetime,
) -> bool:
    """Decide every question; store the case, its referrals, HelpRequestRouted and one
    ReferredToAgency per referral. The case's primary key makes this happen once per help
    request: False (and nothing stored or emitted) if it was routed before."""
    rules = await uow.rules.matching(
        themes={q.theme for q in data.questions},
        municipality=data.municipality,
        targets={q.target for q in data.questions if q.target},
    )
    decisions = [
        decide(
            data.help_request_id,
            q,
            rules=rules,
            consent=data.referral_consent,
            help_given=data.help_given,
            municipality=data.municipality,
        )
        for q in data.questions
    ]
    routed = HelpRequestRouted(help_request_id=data.help_request_id, library=data.library, decisions=decisions)
    if not await uow.cases.add(routed, sealed=data.sealed, at=now):
        return False
    referred = [d for d in decisions if d.outcome == "referred" and d.referral_id and d.organisation]
    hours = await uow.organisations.response_hours({str(d.organisation) for d in referred})
    questions = {q.index: q for q in data.questions}
    referrals = [
        Referral.send(
            sent_at=now,
            response_time=response_time(hours.get(str(d.organisation)), default_response_time),
            referral_id=d.referral_id,
            help_request_id=data.help_request_id,
            question_index=d.question_index,
            agency=d.organisation,
            library=data.library,
            theme=questions[d.question_index].theme,
            subtheme=questions[d.question_index].subtheme,
            contact_preference=data.contact_preference,
        )
        for d in referred
    ]
    for organisation in sorted({r.agency for r in referrals}):
        await topics.ensure(organisation)  # a local partner added as data gets its topic here
    await uow.referrals.add(referrals)
    correlation_id = event.correlationid or str(event.id)
    uow.emit(
        events.create(routed, correlation_id=correlation_id),
        *(
            events.create(
                _referred(r), correlation_id=correlation_id, dataref=handover_url.format(referral_id=r.referral_id)
            )
            for r in referrals
        ),
    )
    return True


async def on_personal_data_erased(event: CloudEvent, data: PersonalDataErased, *, uow: RoutingUnitOfWork) -> None:
    """Drop routing's copy of the sealed details (its key is already destroyed at intake)."""
    await uow.cases.forget_sealed(data.help_request_id, at=data.erased_at)


class KeySource(Protocol):
    async def fetch(self, help_request_id: str) -> bytes | None: ...


async def personal_details(referral: Referral, *, cases: Cases, keys: KeySource) -> dict[str, Any]:
    """What the receiving agency may see of the visitor: contact details only with consent and
    as the visitor prefers to be contacted, and the note of the referred question."""
    sealed = await cases.sealed(referral.help_request_id)
    key = await keys.fetch(referral.help_request_id) if sealed else None
    if sealed is None or key is None:
        return {"contact": None, "note": None}
    personal = unseal(key, sealed, bound_to=referral.help_request_id)
    contact = personal.get("contact") or None
    wanted = {"phone": ("name", "phone"), "email": ("name", "email")}.get(referral.contact_preference or "", ())
    shown = {k: v for k, v in (contact or {}).items() if k in wanted} or None
    return {"contact": shown, "note": personal.get("notes", {}).get(str(referral.question_index))}


def _referred(r: Referral) -> ReferredToAgency:
    return ReferredToAgency(
        referral_id=r.referral_id,
        help_request_id=r.help_request_id,
        agency=r.agency,
        library=r.library,
        theme=r.theme,
        subtheme=r.subtheme,
        contact_preference=r.contact_preference,
    )


async def _locked_for(uow: RoutingUnitOfWork, referral_id: str, caller: Principal) -> Referral:
    """The referral, row-locked until the unit of work ends, if it is addressed to the caller."""
    if caller.role != "agency":
        raise NotFound(referral_id)
    referral = await uow.referrals.get(referral_id, for_update=True)
    if referral is None or referral.agency != caller.organisation:
        raise NotFound(referral_id)
    return referral


def _facts(r: Referral) -> dict[str, str | int]:
    return {
        "referral_id": r.referral_id,
        "help_request_id": r.help_request_id,
        "question_index": r.question_index,
        "agency": r.agency,
        "library": r.library,
    }


async def read_handover(
    referral_id: str, *, caller: Principal, uow: RoutingUnitOfWork, events: EventFactory, now: datetime
) -> Referral:
    """The receiving agency reads the handover; every read is recorded and reported to the library."""
    referral = await _locked_for(uow, referral_id, caller)
    await uow.referrals.record_read(
        referral_id, at=now, organisation=caller.organisation, credential_id=caller.credential_id
    )
    read = ReferralHandoverRead(**_facts(referral), read_at=now, credential_id=caller.credential_id)
    uow.emit(events.create(read, correlation_id=referral.help_request_id))
    return referral


async def list_referrals(listing: Listing, *, caller: Principal, referrals: ReferralList) -> list[Referral]:
    """The caller's own referrals (an agency's or a partner's), newest first: the inbox. Only
    what the event already says; the handover (contact, note) is read one at a time, recorded."""
    if caller.role != "agency":
        raise NotReceiving(caller.role)
    return await referrals.of_organisation(caller.organisation, listing)


async def report_status(
    referral_id: str,
    status: ReferralStatus,
    reason: str | None,
    *,
    caller: Principal,
    uow: RoutingUnitOfWork,
    events: EventFactory,
    now: datetime,
) -> Referral:
    """The receiving agency reports progress. The referral is read under its row lock, so
    concurrent reports apply one after the other. Repeating the current status is a no-op, so
    a retried request is harmless; a transition the status does not allow raises InvalidTransition."""
    referral = await _locked_for(uow, referral_id, caller)
    if referral.status == status:
        return referral
    changed = referral.change_status(status, reason, at=now, by=caller.organisation)
    await uow.referrals.save(changed)
    event = ReferralStatusChanged(
        **_facts(changed), status=status, reason=reason, changed_at=now, sequence=changed.version
    )
    uow.emit(events.create(event, correlation_id=referral.help_request_id))
    return changed


async def notify_overdue(*, uow: RoutingUnitOfWork, events: EventFactory, now: datetime, limit: int = 100) -> int:
    """Emit ReferralOverdue once for every referral past its response time, of those this
    unit of work could lock (at most `limit`); return how many."""
    emitted = 0
    for referral in await uow.referrals.lock_due(now, limit):
        if not referral.is_overdue(now) or referral.due_at is None:
            continue
        await uow.referrals.save(referral.mark_overdue_notified())
        overdue = ReferralOverdue(**_facts(referral), status=referral.status, due_at=referral.due_at, detected_at=now)
        uow.emit(events.create(overdue, correlation_id=referral.help_request_id))
        emitted += 1
    return emitted
