"""Intake's subscriptions: routing's decisions come back and update the help request."""

from functools import partial

from services.intake import handlers
from services.intake.adapters.repository import HelpRequestRepository
from shared.consuming import EventConsumer
from shared.events import catalog


def subscribe(consumer: EventConsumer, repo: HelpRequestRepository) -> None:
    consumer.subscribe(
        catalog.ROUTING,
        {catalog.HelpRequestRouted.event_name: partial(handlers.on_help_request_routed, repo=repo)},
    )
