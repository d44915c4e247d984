"""Reporting's projections: one function per event type, each idempotent or counted once."""

from services.reporting.adapters.repository import MongoReportingRepository
from services.reporting.domain.projections import help_request_increments, question_rows
from shared.events import catalog
from shared.events.envelope import CloudEvent


async def on_help_requested(event: CloudEvent, data: catalog.HelpRequested, *, repo: MongoReportingRepository) -> None:
    await repo.put_rows(question_rows(data))
    await repo.add(help_request_increments(data))


async def on_help_request_routed(
    event: CloudEvent, data: catalog.HelpRequestRouted, *, repo: MongoReportingRepository
) -> None:
    for d in data.decisions:
        await repo.set_row_fields(
            f"{data.help_request_id}:{d.question_index}", {"outcome": d.outcome, "referred_to": d.organisation or ""}
        )


async def on_referred(event: CloudEvent, data: catalog.ReferredToAgency, *, repo: MongoReportingRepository) -> None:
    await repo.put_referral(
        data.referral_id,
        {"agency": data.agency, "library": data.library, "theme": data.theme, "sent_at": event.time},
    )


async def on_status_changed(
    event: CloudEvent, data: catalog.ReferralStatusChanged, *, repo: MongoReportingRepository
) -> None:
    fields = {"agency": data.agency, "library": data.library, f"status_{data.sequence:03d}": data.status}
    if data.status == "accepted":
        fields["accepted_at"] = data.changed_at
    await repo.put_referral(data.referral_id, fields)


async def on_overdue(event: CloudEvent, data: catalog.ReferralOverdue, *, repo: MongoReportingRepository) -> None:
    await repo.put_referral(data.referral_id, {"agency": data.agency, "library": data.library, "overdue": True})


async def on_location_registered(
    event: CloudEvent, data: catalog.IdoLocationRegistered, *, repo: MongoReportingRepository
) -> None:
    await repo.put_location(data.location_id, data.library, data.registered_at)
