"""Intake's use cases: one function per command or event. No framework, no I/O of their own:
the repository and the event factory are handed in by the wiring."""

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Protocol

from services.intake.adapters.repository import AlreadyExists, HelpRequestRepository
from services.intake.domain.location import IdoLocation, RegisteredLocation
from services.intake.domain.model import HelpRequest, RegisterHelpRequest
from shared.events.catalog import (
    HelpRequested,
    HelpRequestRouted,
    IdoLocationRegistered,
    QuestionFacts,
    ReferralHandoverRead,
    ReferralOverdue,
    ReferralStatusChanged,
)
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory, PendingEvent

_IDEMPOTENCY_NS = uuid.UUID("6f1d4c1e-3f57-4c55-9a53-1f6b8a3f2d10")


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different request."""


class UnknownLocation(Exception):
    """The help request names a location the library has not registered."""


class LocationRepository(Protocol):
    async def put(self, registered: RegisteredLocation, events: list[PendingEvent]) -> None: ...
    async def get(self, library: str, code: str) -> RegisteredLocation | None: ...


async def register_location(
    code: str, location: IdoLocation, *, library: str, repo: LocationRepository, events: EventFactory
) -> RegisteredLocation:
    """Register (or update) an IDO location; the rollout monitor learns of it by event."""
    registered = RegisteredLocation(code=code, library=library, location=location, registered_at=datetime.now(UTC))
    fact = IdoLocationRegistered(
        location_id=f"{library}:{code}",
        library=library,
        code=code,
        name=location.name,
        postcode=location.postcode,
        city=location.city,
        municipality=location.municipality,
        opening_hours_per_week=location.hours_per_week(),
        staff=location.staffing.staff,
        volunteers=location.staffing.volunteers,
        registered_at=registered.registered_at,
    )
    await repo.put(registered, [events.create(fact, correlation_id=None)])
    return registered


def _fingerprint(cmd: RegisterHelpRequest) -> str:
    return hashlib.sha256(cmd.model_dump_json().encode()).hexdigest()


async def register_help_request(
    cmd: RegisterHelpRequest,
    *,
    library: str,
    idempotency_key: str | None,
    correlation_id: str,
    repo: HelpRequestRepository,
    locations: LocationRepository,
    events: EventFactory,
) -> tuple[HelpRequest, bool]:
    """Store the visit and its HelpRequested event in one write. Returns (request, created).
    A retry with the same Idempotency-Key returns the first request instead of a second one."""
    if cmd.location and await locations.get(library, cmd.location) is None:
        raise UnknownLocation(cmd.location)
    request_id = str(uuid.uuid5(_IDEMPOTENCY_NS, f"{library}\n{idempotency_key}") if idempotency_key else uuid.uuid4())
    help_request = HelpRequest(id=request_id, library=library, registered_at=datetime.now(UTC), request=cmd)
    event = events.create(_help_requested(help_request), correlation_id=correlation_id)
    try:
        await repo.add(help_request, [event], fingerprint=_fingerprint(cmd))
    except AlreadyExists:
        existing, fingerprint = await repo.get_with_fingerprint(request_id, library)
        if existing is None or fingerprint != _fingerprint(cmd):
            raise IdempotencyConflict from None
        return existing, False
    return help_request, True


def _help_requested(hr: HelpRequest) -> HelpRequested:
    cmd = hr.request
    return HelpRequested(
        help_request_id=hr.id,
        library=hr.library,
        location=cmd.location,
        channel=cmd.channel,
        # Classification only: notes and contact details stay in intake.
        questions=[
            QuestionFacts(index=i, category=q.category, theme=q.theme, subtheme=q.subtheme)
            for i, q in enumerate(cmd.questions)
        ],
        help_given=list(cmd.help_given),
        referral_consent=bool(cmd.referral and cmd.referral.consent),
        contact_preference=cmd.referral.contact_preference if cmd.referral else None,
        duration_minutes=cmd.duration_minutes,
        registered_at=hr.registered_at,
    )


async def _progress(event: CloudEvent, help_request_id: str, library: str, repo: HelpRequestRepository, apply) -> None:
    """Apply one event from routing to its help request (idempotent: see save_progress)."""
    help_request = await repo.get(help_request_id, library)
    if help_request is None:
        raise LookupError(f"help request {help_request_id} not found")
    await repo.save_progress(apply(help_request))


async def on_help_request_routed(event: CloudEvent, data: HelpRequestRouted, *, repo: HelpRequestRepository) -> None:
    await _progress(event, data.help_request_id, data.library, repo, lambda hr: hr.apply_routing(data.decisions))


async def on_referral_status_changed(
    event: CloudEvent, data: ReferralStatusChanged, *, repo: HelpRequestRepository
) -> None:
    await _progress(event, data.help_request_id, data.library, repo, lambda hr: hr.apply_status_change(data))


async def on_referral_overdue(event: CloudEvent, data: ReferralOverdue, *, repo: HelpRequestRepository) -> None:
    await _progress(event, data.help_request_id, data.library, repo, lambda hr: hr.apply_overdue(data))


async def on_handover_read(event: CloudEvent, data: ReferralHandoverRead, *, repo: HelpRequestRepository) -> None:
    await _progress(event, data.help_request_id, data.library, repo, lambda hr: hr.apply_handover_read(data))
