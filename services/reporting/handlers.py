"""Reporting's projections: one function per event type, each idempotent or counted once."""

from services.reporting.adapters.repository import MongoReportingRepository
from services.reporting.domain.projections import help_request_increments, question_rows, routing_increments
from shared.events import catalog
from shared.events.envelope import CloudEvent


async def on_help_requested(event: CloudEvent, data: catalog.HelpRequested, *, repo: MongoReportingRepository) -> None:
    await repo.put_rows(question_rows(data))
    await repo.add(help_request_increments(data))


async def on_help_request_routed(
    event: CloudEvent, data: catalog.HelpRequestRouted, *, repo: MongoReportingRepository
) -> None:
    await repo.add(routing_increments(data, event.time))
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


async def on_course_event(event: CloudEvent, data: catalog.EventData, *, repo: MongoReportingRepository) -> None:
    """Course runs: capacity, enrolled, waitlisted and completed per run, kept per run document."""
    run_id, library = data.run_id, data.library  # type: ignore[attr-defined]
    if isinstance(data, catalog.CourseRunScheduled):
        await repo.put_run(
            run_id,
            {
                "library": library,
                "course_type": data.course_type,
                "capacity": data.capacity,
                "first_session_at": data.first_session_at,
                "status": "scheduled",
            },
        )
    elif isinstance(data, catalog.CourseRunCancelled):
        await repo.put_run(run_id, {"status": "cancelled"})
    else:
        # The latest state per enrolment: counts are derived from these, so repeats change nothing.
        state = {
            "ParticipantEnrolled": "enrolled",
            "ParticipantWaitlisted": "waitlisted",
            "SeatOffered": "offered",
            "SeatOfferExpired": "offer_expired",
            "EnrolmentCancelled": "cancelled",
            "CourseCompleted": "completed",
        }.get(event.name)
        if state:
            await repo.put_run(run_id, {f"enrolments.{data.enrolment_id.replace('.', '_')}": state})  # type: ignore[attr-defined]


async def on_readiness(
    event: CloudEvent, data: catalog.LibraryReadinessChanged, *, repo: MongoReportingRepository
) -> None:
    await repo.put_readiness(data.library, data.trained_staff)


async def on_subsidy_event(event: CloudEvent, data: catalog.EventData, *, repo: MongoReportingRepository) -> None:
    """Per application: granted and paid amounts (paid per tranche, so a repeat pays nothing twice)."""
    if isinstance(data, catalog.SubsidySchemePublished):
        await repo.put_scheme(data.scheme, {"name": data.name, "budget_ceiling_cents": data.budget_ceiling_cents})
        return
    application_id, scheme = data.application_id, data.scheme  # type: ignore[attr-defined]
    fields: dict = {"scheme": scheme, "library": data.library}  # type: ignore[attr-defined]
    if isinstance(data, catalog.SubsidyGranted):
        fields |= {"granted_cents": data.granted_cents, "status": "granted"}
    elif isinstance(data, catalog.SubsidyRejected):
        fields |= {"status": "rejected"}
    elif isinstance(data, catalog.SubsidyApplied):
        fields |= {"requested_cents": data.requested_cents}
    elif isinstance(data, catalog.SubsidyPaid):
        fields |= {f"paid.{data.tranche}": data.amount_cents}
    elif isinstance(data, catalog.SubsidyRenewed):
        fields |= {"extension_cents": data.amount_cents}
    await repo.put_subsidy(application_id, fields)
