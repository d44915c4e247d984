"""Intake's use cases: one function per command or event, inside one unit of work (a
transaction: the state change and its events commit together). No framework, no I/O of
their own: the unit of work and the event factory are handed in by the wiring."""

import hashlib
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from services.intake.domain.location import IdoLocation, RegisteredLocation
from services.intake.domain.model import HelpRequest, RegisterHelpRequest
from services.intake.domain.taxonomy import Theme
from shared.events.catalog import (
    HelpRequested,
    HelpRequestRouted,
    IdoLocationRegistered,
    PersonalDataErased,
    QuestionFacts,
    ReferralHandoverRead,
    ReferralOverdue,
    ReferralStatusChanged,
)
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory, PendingEvent
from shared.sealing import new_data_key, seal

_IDEMPOTENCY_NS = uuid.UUID("6f1d4c1e-3f57-4c55-9a53-1f6b8a3f2d10")


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before for a different request."""


class UnknownLocation(Exception):
    """The help request names a location the library has not registered."""


class InvalidThemes(Exception):
    """Questions whose theme or subtheme is not (or no longer) in the taxonomy."""

    def __init__(self, params: list[dict[str, str]]) -> None:
        super().__init__(", ".join(p["name"] for p in params))
        self.params = params  # [{"name": "questions.0.theme", "reason": ...}], as invalid_params names fields


class HelpRequestRepository(Protocol):
    async def add(self, hr: HelpRequest, *, fingerprint: str, data_key: bytes) -> bool: ...
    async def get(self, request_id: str, library: str, *, for_update: bool = False) -> HelpRequest | None: ...
    async def get_any(self, request_id: str, *, for_update: bool = False) -> HelpRequest | None: ...
    async def fingerprint(self, request_id: str, library: str) -> str | None: ...
    async def erase(self, erased: HelpRequest) -> None: ...
    async def with_personal_data_before(self, moment: datetime) -> list[str]: ...
    async def save_progress(self, hr: HelpRequest) -> None: ...


class LocationRepository(Protocol):
    async def put(self, registered: RegisteredLocation) -> None: ...
    async def get(self, library: str, code: str) -> RegisteredLocation | None: ...


class ThemeRepository(Protocol):
    async def of(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Theme]: ...
    async def put(self, theme: Theme) -> None: ...


class UnitOfWork(Protocol):
    @property
    def help_requests(self) -> HelpRequestRepository: ...
    @property
    def locations(self) -> LocationRepository: ...
    @property
    def themes(self) -> ThemeRepository: ...

    def emit(self, *events: PendingEvent) -> None: ...


StartUnitOfWork = Callable[[], AbstractAsyncContextManager[UnitOfWork]]


async def register_location(
    code: str, location: IdoLocation, *, library: str, uow: UnitOfWork, events: EventFactory
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
    await uow.locations.put(registered)
    uow.emit(events.create(fact, correlation_id=None))
    return registered


async def put_theme(theme: Theme, *, uow: UnitOfWork) -> Theme:
    """The KB adds, changes or retires a theme of the taxonomy. Visits registered with it keep
    its code; new ones are checked against the taxonomy as it is now."""
    await uow.themes.put(theme)
    return theme


async def _check_themes(cmd: RegisterHelpRequest, uow: UnitOfWork) -> None:
    """Every question's theme and subtheme must be in the taxonomy and not retired."""
    invalid: list[dict[str, str]] = []
    known = await uow.themes.of([(q.category, q.theme) for q in cmd.questions])
    for i, question in enumerate(cmd.questions):
        theme = known.get((question.category, question.theme))
        if theme is None or theme.retired:
            # The reason does not echo the input (a free description might hold personal data).
            why = "not a theme" if theme is None else "a retired theme"
            reason = f"{why} of category '{question.category}' in the taxonomy; see GET /v1/themes"
            invalid.append({"name": f"questions.{i}.theme", "reason": reason})
        elif refused := theme.refuses(question):
            invalid.append({"name": f"questions.{i}.subtheme", "reason": refused})
    if invalid:
        raise InvalidThemes(invalid)


def _fingerprint(cmd: RegisterHelpRequest) -> str:
    return hashlib.sha256(cmd.model_dump_json().encode()).hexdigest()


async def register_help_request(
    cmd: RegisterHelpRequest,
    *,
    library: str,
    idempotency_key: str | None,
    correlation_id: str,
    uow: UnitOfWork,
    events: EventFactory,
) -> tuple[HelpRequest, bool]:
    """Store the visit and its HelpRequested event. Returns (request, created). A retry with
    the same Idempotency-Key returns the first request instead of a second one."""
    await _check_themes(cmd, uow)
    location = await uow.locations.get(library, cmd.location) if cmd.location else None
    if cmd.location and location is None:
        raise UnknownLocation(cmd.location)
    request_id = str(uuid.uuid5(_IDEMPOTENCY_NS, f"{library}\n{idempotency_key}") if idempotency_key else uuid.uuid4())
    help_request = HelpRequest(id=request_id, library=library, registered_at=datetime.now(UTC), request=cmd)
    # The request's own data key seals what is personal before it enters any event.
    data_key = new_data_key()
    personal = help_request.personal_data()
    sealed = seal(data_key, personal, bound_to=request_id) if personal else None
    municipality = location.location.municipality if location else None
    if not await uow.help_requests.add(help_request, fingerprint=_fingerprint(cmd), data_key=data_key):
        existing = await uow.help_requests.get(request_id, library)
        if existing is None or await uow.help_requests.fingerprint(request_id, library) != _fingerprint(cmd):
            raise IdempotencyConflict
        return existing, False
    uow.emit(events.create(_help_requested(help_request, sealed, municipality), correlation_id=correlation_id))
    return help_request, True


def _help_requested(hr: HelpRequest, sealed: str | None, municipality: str | None) -> HelpRequested:
    cmd = hr.request
    return HelpRequested(
        help_request_id=hr.id,
        library=hr.library,
        location=cmd.location,
        municipality=municipality,
        channel=cmd.channel,
        # Classification only: notes and contact details stay in intake.
        questions=[
            QuestionFacts(index=i, category=q.category, theme=q.theme, subtheme=q.subtheme, target=q.target)
            for i, q in enumerate(cmd.questions)
        ],
        help_given=list(cmd.help_given),
        referral_consent=bool(cmd.referral and cmd.referral.consent),
        contact_preference=cmd.referral.contact_preference if cmd.referral else None,
        duration_minutes=cmd.duration_minutes,
        registered_at=hr.registered_at,
        sealed=sealed,
    )


class NotFound(Exception):
    pass


async def erase_personal_data(
    request_id: str,
    *,
    library: str | None,
    reason: Literal["request", "retention"],
    uow: UnitOfWork,
    events: EventFactory,
    now: datetime,
) -> HelpRequest:
    """Erase a visit's contact details and notes and destroy its data key, at once; every
    service drops its copies on PersonalDataErased. `library` None: on behalf of the KB."""
    repo = uow.help_requests
    if library:
        help_request = await repo.get(request_id, library, for_update=True)
    else:
        help_request = await repo.get_any(request_id, for_update=True)
    if help_request is None:
        raise NotFound(request_id)
    if help_request.personal_data_erased_at is not None:
        return help_request
    erased = help_request.without_personal_data(now)
    fact = PersonalDataErased(help_request_id=request_id, library=help_request.library, reason=reason, erased_at=now)
    await repo.erase(erased)
    uow.emit(events.create(fact, correlation_id=request_id))
    return erased


async def purge_expired(*, retention: timedelta, start: StartUnitOfWork, events: EventFactory, now: datetime) -> int:
    """End of retention: erase the personal data of every visit registered before now - retention,
    each in its own unit of work (several instances may run this: the row lock and the
    already-erased check make each erasure happen once)."""
    async with start() as uow:
        expired = await uow.help_requests.with_personal_data_before(now - retention)
    for request_id in expired:
        async with start() as uow:
            await erase_personal_data(request_id, library=None, reason="retention", uow=uow, events=events, now=now)
    return len(expired)


async def _progress(help_request_id: str, library: str, uow: UnitOfWork, apply) -> None:
    """Apply one event from routing to its help request, under its row lock. Applying an event
    again gives the same state (the domain ignores repeated and older changes)."""
    help_request = await uow.help_requests.get(help_request_id, library, for_update=True)
    if help_request is None:
        raise LookupError(f"help request {help_request_id} not found")
    await uow.help_requests.save_progress(apply(help_request))


async def on_help_request_routed(event: CloudEvent, data: HelpRequestRouted, uow: UnitOfWork) -> None:
    await _progress(data.help_request_id, data.library, uow, lambda hr: hr.apply_routing(data.decisions))


async def on_referral_status_changed(event: CloudEvent, data: ReferralStatusChanged, uow: UnitOfWork) -> None:
    await _progress(data.help_request_id, data.library, uow, lambda hr: hr.apply_status_change(data))


async def on_referral_overdue(event: CloudEvent, data: ReferralOverdue, uow: UnitOfWork) -> None:
    await _progress(data.help_request_id, data.library, uow, lambda hr: hr.apply_overdue(data))


async def on_handover_read(event: CloudEvent, data: ReferralHandoverRead, uow: UnitOfWork) -> None:
    await _progress(data.help_request_id, data.library, uow, lambda hr: hr.apply_handover_read(data))
