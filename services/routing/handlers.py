"""Routing's use cases: one function per event or command. Inputs and outputs are domain
objects; the repository, event factory and clock are handed in by the wiring."""

from datetime import datetime
from typing import Any, Protocol

from services.routing.adapters.repository import ConcurrentChange, RoutingRepository
from services.routing.domain.model import decide
from services.routing.domain.referral import Referral
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
from shared.outbox import EventFactory
from shared.sealing import unseal


class ReferralTopics(Protocol):
    async def ensure(self, organisation: str) -> None: ...


class NotFound(Exception):
    """Unknown, or not addressed to this caller: both answer 404 so nothing leaks."""


async def on_help_requested(
    event: CloudEvent,
    data: HelpRequested,
    *,
    repo: RoutingRepository,
    events: EventFactory,
    handover_url: str,
    topics: ReferralTopics,
    now: datetime,
) -> None:
    """Decide every question. Referrals are stored first (idempotently); the case with
    HelpRequestRouted and one ReferredToAgency per referral is the single commit point."""
    rules = await repo.rules()
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
    questions = {q.index: q for q in data.questions}
    referrals = [
        Referral.send(
            sent_at=now,
            response_time=await repo.response_time(d.organisation),
            referral_id=d.referral_id,
            help_request_id=data.help_request_id,
            question_index=d.question_index,
            agency=d.organisation,
            library=data.library,
            theme=questions[d.question_index].theme,
            subtheme=questions[d.question_index].subtheme,
            contact_preference=data.contact_preference,
        )
        for d in decisions
        if d.outcome == "referred" and d.referral_id and d.organisation
    ]
    correlation_id = event.correlationid or str(event.id)
    routed = HelpRequestRouted(help_request_id=data.help_request_id, library=data.library, decisions=decisions)
    pending = [events.create(routed, correlation_id=correlation_id)] + [
        events.create(
            _referred(r), correlation_id=correlation_id, dataref=handover_url.format(referral_id=r.referral_id)
        )
        for r in referrals
    ]
    for organisation in {r.agency for r in referrals}:
        await topics.ensure(organisation)  # a local partner added as data gets its topic here
    await repo.add_referrals(referrals)
    await repo.add_case(routed, pending, data.sealed)


async def on_personal_data_erased(event: CloudEvent, data: PersonalDataErased, *, repo: RoutingRepository) -> None:
    """Drop routing's copy of the sealed details (its key is already destroyed at intake)."""
    await repo.forget_sealed(data.help_request_id)


class KeySource(Protocol):
    async def fetch(self, help_request_id: str) -> bytes | None: ...


async def personal_details(referral: Referral, *, repo: RoutingRepository, keys: KeySource) -> dict[str, Any]:
    """What the receiving agency may see of the visitor: contact details only with consent and
    as the visitor prefers to be contacted, and the note of the referred question."""
    sealed = await repo.sealed(referral.help_request_id)
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


async def _addressed_to(repo: RoutingRepository, referral_id: str, caller: Principal) -> Referral:
    referral = await repo.referral(referral_id)
    if referral is None or caller.role != "agency" or referral.agency != caller.organisation:
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
    referral_id: str, *, caller: Principal, repo: RoutingRepository, events: EventFactory, now: datetime
) -> Referral:
    """The receiving agency reads the handover; every read is recorded and reported to the library."""
    referral = await _addressed_to(repo, referral_id, caller)
    read = ReferralHandoverRead(**_facts(referral), read_at=now, credential_id=caller.credential_id)
    await repo.record_read(
        referral_id,
        {"at": now, "by": caller.organisation, "credential_id": caller.credential_id},
        events.create(read, correlation_id=referral.help_request_id),
    )
    return referral


async def report_status(
    referral_id: str,
    status: ReferralStatus,
    reason: str | None,
    *,
    caller: Principal,
    repo: RoutingRepository,
    events: EventFactory,
    now: datetime,
) -> Referral:
    """The receiving agency reports progress. Repeating the current status is a no-op, so a
    retried request is harmless; a transition the status does not allow raises InvalidTransition."""
    referral = await _addressed_to(repo, referral_id, caller)
    if referral.status == status:
        return referral
    changed = referral.change_status(status, reason, at=now, by=caller.organisation)
    event = ReferralStatusChanged(
        **_facts(changed), status=status, reason=reason, changed_at=now, sequence=changed.version
    )
    await repo.save_referral(
        changed,
        expected_version=referral.version,
        events=[events.create(event, correlation_id=referral.help_request_id)],
    )
    return changed


async def notify_overdue(*, repo: RoutingRepository, events: EventFactory, now: datetime) -> int:
    """Emit ReferralOverdue once for every referral past its response time; return how many."""
    emitted = 0
    for referral in await repo.due_referrals(now, limit=500):
        if not referral.is_overdue(now) or referral.due_at is None:
            continue
        overdue = ReferralOverdue(**_facts(referral), status=referral.status, due_at=referral.due_at, detected_at=now)
        try:
            await repo.save_referral(
                referral.mark_overdue_notified(),
                expected_version=referral.version,
                events=[events.create(overdue, correlation_id=referral.help_request_id)],
            )
        except ConcurrentChange:
            continue  # its status just changed; the next round looks at it again
        emitted += 1
    return emitted
