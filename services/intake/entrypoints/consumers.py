"""Intake's subscriptions: what routing decided and what agencies reported come back here.
Each event is handled in the consumer's unit of work, with intake's repositories on it."""

from services.intake import handlers
from services.intake.adapters.repository import IntakeUnitOfWork
from shared.consuming import EventConsumer, Handler
from shared.events import catalog


def _in_intake(handler) -> Handler:
    return lambda event, data, tx: handler(event, data, IntakeUnitOfWork(tx))


def subscribe(consumer: EventConsumer) -> None:
    consumer.subscribe(
        catalog.ROUTING,
        {
            catalog.HelpRequestRouted.event_name: _in_intake(handlers.on_help_request_routed),
            catalog.ReferralStatusChanged.event_name: _in_intake(handlers.on_referral_status_changed),
            catalog.ReferralOverdue.event_name: _in_intake(handlers.on_referral_overdue),
            catalog.ReferralHandoverRead.event_name: _in_intake(handlers.on_handover_read),
        },
    )
