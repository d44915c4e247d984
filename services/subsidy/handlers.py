"""Subsidy's use cases: apply, decide. Every step lands in the application's activity trail."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from services.subsidy.adapters.repository import AlreadyApplied, MongoSubsidyRepository
from services.subsidy.domain.model import Apply, Decide, Refused, Renew, Scheme, advance, cents, check_application
from shared.auth import Principal
from shared.events.catalog import (
    CourseRunScheduled,
    HelpRequested,
    SubsidyApplied,
    SubsidyGranted,
    SubsidyPaid,
    SubsidyRejected,
    SubsidyRenewed,
)
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory


class NotFound(Exception):
    pass


class AlreadyDecided(Exception):
    pass


class BudgetExhausted(Exception):
    pass


async def apply(cmd: Apply, *, library: str, repo: MongoSubsidyRepository, events: EventFactory, now: datetime) -> dict:
    scheme_doc = await repo.scheme(cmd.scheme)
    scheme = Scheme.model_validate({k: v for k, v in scheme_doc.items() if k != "_id"}) if scheme_doc else None
    lines = check_application(cmd, scheme, now=now)
    requested = sum(line.amount_cents for line in lines)
    application_id = f"{cmd.scheme}:{library}"
    application = {
        "_id": application_id,
        "library": library,
        **cmd.model_dump(mode="json"),
        "calculation": [line.model_dump(mode="json") for line in lines],
        "requested_cents": requested,
        "status": "applied",
        "applied_at": now,
        "trail": [{"at": now, "by": f"library:{library}", "action": "applied", "detail": f"{requested} cents"}],
    }
    fact = SubsidyApplied(
        application_id=application_id,
        scheme=cmd.scheme,
        library=library,
        requested_cents=requested,
        ido_opening_date=cmd.ido_opening_date,
        applied_at=now,
    )
    try:
        await repo.add_application(application, [events.create(fact, correlation_id=application_id)])
    except AlreadyApplied:
        raise Refused("scheme", "this library already applied for this scheme (one application per scheme)") from None
    return application


async def decide(
    application_id: str,
    cmd: Decide,
    *,
    caller: Principal,
    repo: MongoSubsidyRepository,
    events: EventFactory,
    now: datetime,
) -> dict[str, Any]:
    """Grant (all or part, reserving the amount under the ceiling) or reject, with a reason."""
    application = await repo.application(application_id)
    if application is None:
        raise NotFound(application_id)
    if application["status"] != "applied":
        raise AlreadyDecided(application["status"])
    scheme = await repo.scheme(application["scheme"])
    facts = {"application_id": application_id, "scheme": application["scheme"], "library": application["library"]}
    by = f"kb:{caller.credential_id}"
    if cmd.decision == "reject":
        fact = SubsidyRejected(**facts, reason=cmd.reason, decided_at=now)
        trail = {"at": now, "by": by, "action": "rejected", "detail": cmd.reason}
        await repo.update_application(
            application_id,
            {"status": "rejected", "decision_reason": cmd.reason},
            trail,
            [events.create(fact, correlation_id=application_id)],
        )
        return {**application, "status": "rejected"}
    amount = cmd.amount_cents or application["requested_cents"]
    if amount > application["requested_cents"]:
        raise Refused("amount_cents", "a grant cannot exceed the amount the scheme's rules give")
    if not await repo.reserve(application["scheme"], application_id, amount, scheme["budget_ceiling_cents"]):
        raise BudgetExhausted(application["scheme"])
    fact = SubsidyGranted(
        **facts,
        granted_cents=amount,
        partial=amount < application["requested_cents"],
        reason=cmd.reason,
        decided_at=now,
    )
    trail = {"at": now, "by": by, "action": "granted", "detail": f"{amount} cents: {cmd.reason}"}
    await repo.update_application(
        application_id,
        {"status": "granted", "granted_cents": amount, "decision_reason": cmd.reason},
        trail,
        [events.create(fact, correlation_id=application_id)],
    )
    granted = {**application, "status": "granted", "granted_cents": amount}
    first = advance(amount, scheme["advance_percent"])
    if first:
        await _pay(granted, "advance", first, repo=repo, events=events, now=now)
    await settle(application["library"], repo=repo, events=events, now=now)
    return granted


async def _pay(application: dict, tranche: str, amount: int, *, repo, events: EventFactory, now: datetime) -> bool:
    fact = SubsidyPaid(
        application_id=application["_id"],
        scheme=application["scheme"],
        library=application["library"],
        tranche=tranche,
        amount_cents=amount,
        paid_at=now,
    )
    payment = {"tranche": tranche, "amount_cents": amount, "paid_at": now}
    return await repo.pay(application["_id"], payment, events.create(fact, correlation_id=application["_id"]))


async def settle(library: str, *, repo: MongoSubsidyRepository, events: EventFactory, now: datetime) -> int:
    """Pay the final tranche of every grant of the library whose conditions are now met.
    A tranche is paid once, however often the events that met the conditions arrive."""
    met = await repo.conditions_of(library)
    paid = 0
    for application in await repo.applications_of(library):
        if application["status"] != "granted":
            continue
        scheme = await repo.scheme(application["scheme"])
        if scheme is None or not all(c in met for c in scheme.get("conditions", [])):
            continue
        rest = application["granted_cents"] - advance(application["granted_cents"], scheme["advance_percent"])
        if rest > 0 and await _pay(application, "final", rest, repo=repo, events=events, now=now):
            paid += 1
    return paid


async def on_visit_registered(event: CloudEvent, data: HelpRequested, *, repo, events: EventFactory) -> None:
    """The library registers its IDO visitors: a condition for the final tranche."""
    if await repo.condition_met(data.library, "visitor_registration", data.registered_at):
        await settle(data.library, repo=repo, events=events, now=data.registered_at)


async def on_course_run_scheduled(event: CloudEvent, data: CourseRunScheduled, *, repo, events: EventFactory) -> None:
    """The library publishes course offers: a condition for the final tranche."""
    if await repo.condition_met(data.library, "course_offers", event.time):
        await settle(data.library, repo=repo, events=events, now=event.time)


async def renew(
    application_id: str, cmd: Renew, *, library: str, repo: MongoSubsidyRepository, events: EventFactory, now: datetime
) -> dict:
    """The extension year: a granted application, renewed by a signed confirmation before the deadline."""
    application = await repo.application(application_id)
    if application is None or application["library"] != library:
        raise NotFound(application_id)
    scheme = await repo.scheme(application["scheme"])
    extension = (scheme or {}).get("extension")
    if scheme is None or application["status"] != "granted" or extension is None:
        raise Refused("application", "only a granted application of a scheme with an extension can be renewed")
    if now > datetime.fromisoformat(extension["deadline"]):
        raise Refused("signed_on", f"the renewal deadline was {extension['deadline'][:10]}")
    if application.get("renewal"):
        return application
    amount = cents(Decimal(extension["rate"]) * application["inhabitants"])
    key = f"{application_id}/extension"
    if not await repo.reserve(application["scheme"], key, amount, scheme["budget_ceiling_cents"]):
        raise BudgetExhausted(application["scheme"])
    fact = SubsidyRenewed(
        application_id=application_id,
        scheme=application["scheme"],
        library=library,
        year=extension["year"],
        amount_cents=amount,
        signed_by=cmd.signed_by,
        renewed_at=now,
    )
    renewal = {
        "year": extension["year"],
        "amount_cents": amount,
        "signed_by": cmd.signed_by,
        "signed_on": cmd.signed_on.isoformat(),
    }
    trail = {"at": now, "by": f"library:{library}", "action": "renewed", "detail": f"{amount} cents"}
    await repo.update_application(
        application_id, {"renewal": renewal}, trail, [events.create(fact, correlation_id=application_id)]
    )
    await _pay(application, "extension", amount, repo=repo, events=events, now=now)
    return {**application, "renewal": renewal}
