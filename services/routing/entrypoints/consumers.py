"""Routing's subscriptions: every registered help request is routed."""

from functools import partial

from services.routing import handlers
from services.routing.adapters.repository import RoutingRepository
from shared.consuming import EventConsumer
from shared.events import catalog
from shared.outbox import EventFactory


def subscribe(consumer: EventConsumer, repo: RoutingRepository, events: EventFactory, handover_url: str) -> None:
    consumer.subscribe(
        catalog.HELP_REQUESTS,
        {
            catalog.HelpRequested.event_name: partial(
                handlers.on_help_requested, repo=repo, events=events, handover_url=handover_url
            )
        },
    )
