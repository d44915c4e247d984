"""Subsidy's use cases: apply, decide. Every step lands in the application's activity trail."""

from datetime import datetime
from typing import Any

from services.subsidy.adapters.repository import AlreadyApplied, MongoSubsidyRepository
from services.subsidy.domain.model import Apply, Decide, Refused, Scheme, check_application
from shared.auth import Principal
from shared.events.catalog import SubsidyApplied, SubsidyGranted, SubsidyRejected
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
    return {**application, "status": "granted", "granted_cents": amount}
