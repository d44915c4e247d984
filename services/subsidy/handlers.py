"""Subsidy's use cases. Each runs in ONE unit of work (one transaction): the state change, the
budget reservation, the tranches paid and the events they cause commit together or not at all.

Locks, always in this order: a library's conditions row, the application row, the scheme's
budget row. A decision on an application that is no longer `applied` is refused (409)."""

from datetime import datetime
from typing import Protocol

from services.subsidy.domain.model import (
    AlreadyDecided,
    Application,
    Apply,
    Budget,
    BudgetExhausted,
    Condition,
    Decide,
    LibraryConditions,
    Refused,
    Renew,
    Scheme,
)
from shared.auth import Principal
from shared.events.catalog import CourseRunScheduled, HelpRequested, SubsidySchemePublished
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory, PendingEvent


class Schemes(Protocol):
    async def get(self, code: str) -> Scheme | None: ...
    async def budget_for_update(self, code: str) -> Budget | None: ...
    async def save_budget(self, budget: Budget) -> None: ...
    async def put(self, code: str, scheme: Scheme) -> None: ...


class Applications(Protocol):
    async def add(self, application: Application) -> bool: ...
    async def library_of(self, application_id: str) -> str | None: ...
    async def get_for_update(self, application_id: str) -> Application | None: ...
    async def granted_for_update(self, library: str) -> list[Application]: ...
    async def save(self, application: Application) -> None: ...


class Conditions(Protocol):
    async def met(self, library: str) -> set[str]: ...
    async def lock(self, library: str) -> LibraryConditions: ...
    async def save(self, conditions: LibraryConditions) -> None: ...


class SubsidyUnitOfWork(Protocol):
    """What the handlers need of a transaction (adapters.repository.SubsidyUnitOfWork)."""

    @property
    def schemes(self) -> Schemes: ...
    @property
    def applications(self) -> Applications: ...
    @property
    def conditions(self) -> Conditions: ...
    def emit(self, *events: PendingEvent) -> None: ...


__all__ = ["AlreadyDecided", "BudgetExhausted", "NotFound"]


class NotFound(Exception):
    pass


def _emit(uow: SubsidyUnitOfWork, events: EventFactory, application: Application) -> None:
    uow.emit(*(events.create(fact, correlation_id=application.id) for fact in application.events))
    application.events.clear()


async def put_scheme(code: str, scheme: Scheme, *, uow: SubsidyUnitOfWork, events: EventFactory) -> None:
    """Create or change a scheme; applications already made keep their calculation."""
    budget = await uow.schemes.budget_for_update(code)
    if budget is not None:
        budget.change_ceiling(scheme.budget_ceiling_cents)
    await uow.schemes.put(code, scheme)
    published = SubsidySchemePublished(
        scheme=code,
        name=scheme.name,
        opens=scheme.opens,
        closes=scheme.closes,
        budget_ceiling_cents=scheme.budget_ceiling_cents,
    )
    uow.emit(events.create(published, correlation_id=code))


async def apply(
    cmd: Apply, *, library: str, uow: SubsidyUnitOfWork, events: EventFactory, now: datetime
) -> Application:
    application = Application.submit(cmd, await uow.schemes.get(cmd.scheme), library=library, now=now)
    if not await uow.applications.add(application):
        raise Refused("scheme", "this library already applied for this scheme (one application per scheme)")
    _emit(uow, events, application)
    return application


async def decide(
    application_id: str, cmd: Decide, *, caller: Principal, uow: SubsidyUnitOfWork, events: EventFactory, now: datetime
) -> Application:
    """Grant (all or part: reserved under the ceiling, the advance paid, the final tranche too if
    the conditions are already met) or reject, with a reason."""
    library = await uow.applications.library_of(application_id)
    if library is None:
        raise NotFound(application_id)
    conditions = await uow.conditions.lock(library)
    application = await uow.applications.get_for_update(application_id)
    if application is None:
        raise NotFound(application_id)
    by = f"kb:{caller.credential_id}"
    if cmd.decision == "reject":
        application.reject(cmd.reason, by=by, now=now)
    else:
        scheme, budget = await _scheme_and_budget(uow, application.scheme)
        application.grant(
            cmd.amount_cents, cmd.reason, by=by, now=now, scheme=scheme, budget=budget, conditions=conditions
        )
        await uow.schemes.save_budget(budget)
    await uow.applications.save(application)
    _emit(uow, events, application)
    return application


async def _scheme_and_budget(uow: SubsidyUnitOfWork, code: str) -> tuple[Scheme, Budget]:
    """An application's scheme and its budget row, locked (an application's scheme exists)."""
    scheme, budget = await uow.schemes.get(code), await uow.schemes.budget_for_update(code)
    if scheme is None or budget is None:
        raise LookupError(f"scheme {code} of an application is missing")
    return scheme, budget


async def condition_met(
    library: str, condition: Condition, at: datetime, *, uow: SubsidyUnitOfWork, events: EventFactory
) -> int:
    """Record that the library meets a condition and, the first time, pay the final tranche of
    every grant of the library whose conditions are now all met. Returns the tranches paid."""
    if condition in await uow.conditions.met(library):
        return 0  # the usual case (every visit is a "visitor registration"): no lock, no queue
    conditions = await uow.conditions.lock(library)
    if not conditions.meet(condition, at):
        return 0
    await uow.conditions.save(conditions)
    paid = 0
    for application in await uow.applications.granted_for_update(library):
        scheme = await uow.schemes.get(application.scheme)
        if scheme is not None and application.settle(scheme, conditions, now=at):
            await uow.applications.save(application)
            _emit(uow, events, application)
            paid += 1
    return paid


async def on_visit_registered(
    event: CloudEvent, data: HelpRequested, *, uow: SubsidyUnitOfWork, events: EventFactory
) -> None:
    """The library registers its IDO visitors: a condition for the final tranche."""
    await condition_met(data.library, "visitor_registration", data.registered_at, uow=uow, events=events)


async def on_course_run_scheduled(
    event: CloudEvent, data: CourseRunScheduled, *, uow: SubsidyUnitOfWork, events: EventFactory
) -> None:
    """The library publishes course offers: a condition for the final tranche."""
    await condition_met(data.library, "course_offers", event.time, uow=uow, events=events)


async def renew(
    application_id: str, cmd: Renew, *, library: str, uow: SubsidyUnitOfWork, events: EventFactory, now: datetime
) -> Application:
    """The extension year: a granted application, renewed by a signed confirmation before the
    deadline; renewing again answers the same."""
    application = await uow.applications.get_for_update(application_id)
    if application is None or application.library != library:
        raise NotFound(application_id)
    scheme, budget = await _scheme_and_budget(uow, application.scheme)
    if application.renew(cmd, scheme=scheme, budget=budget, now=now):
        await uow.schemes.save_budget(budget)
        await uow.applications.save(application)
        _emit(uow, events, application)
    return application
