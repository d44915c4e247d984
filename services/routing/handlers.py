"""Routing's use cases: one function per event or command."""

from services.routing.adapters.repository import RoutingRepository
from services.routing.domain.model import decide
from shared.events.catalog import HelpRequested, HelpRequestRouted, ReferredToAgency
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory


async def on_help_requested(
    event: CloudEvent, data: HelpRequested, *, repo: RoutingRepository, events: EventFactory, handover_url: str
) -> None:
    """Decide every question; store the case with HelpRequestRouted and one ReferredToAgency
    per referral in one write (its id is the help request's, so a replay cannot add a second)."""
    rules = await repo.rules()
    decisions = [
        decide(data.help_request_id, q, rules=rules, consent=data.referral_consent, help_given=data.help_given)
        for q in data.questions
    ]
    correlation_id = event.correlationid or str(event.id)
    questions = {q.index: q for q in data.questions}
    referrals = [
        ReferredToAgency(
            referral_id=d.referral_id,
            help_request_id=data.help_request_id,
            agency=d.organisation,
            library=data.library,
            theme=questions[d.question_index].theme,
            subtheme=questions[d.question_index].subtheme,
            contact_preference=data.contact_preference,
        )
        for d in decisions
        if d.outcome == "referred" and d.referral_id and d.organisation
    ]
    routed = HelpRequestRouted(help_request_id=data.help_request_id, library=data.library, decisions=decisions)
    pending = [events.create(routed, correlation_id=correlation_id)] + [
        events.create(r, correlation_id=correlation_id, dataref=handover_url.format(referral_id=r.referral_id))
        for r in referrals
    ]
    await repo.add_case(routed, referrals, pending)
