"""Intake's subscriptions: what routing decided and what agencies reported come back here."""

from functools import partial

from services.intake import handlers
from services.intake.adapters.repository import HelpRequestRepository
from shared.consuming import EventConsumer
from shared.events import catalog


def subscribe(consumer: EventConsumer, repo: HelpRequestRepository) -> None:
    consumer.subscribe(
        catalog.ROUTING,
        {
            catalog.HelpRequestRouted.event_name: partial(handlers.on_help_request_routed, repo=repo),
            catalog.ReferralStatusChanged.event_name: partial(handlers.on_referral_status_changed, repo=repo),
            catalog.ReferralOverdue.event_name: partial(handlers.on_referral_overdue, repo=repo),
            catalog.ReferralHandoverRead.event_name: partial(handlers.on_handover_read, repo=repo),
        },
    )
