"""Routing's subscriptions: every registered help request is routed."""

from collections.abc import Callable
from datetime import datetime
from functools import partial

from services.routing import handlers
from services.routing.adapters.repository import RoutingRepository
from shared.consuming import EventConsumer
from shared.events import catalog
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory


def subscribe(
    consumer: EventConsumer,
    repo: RoutingRepository,
    events: EventFactory,
    handover_url: str,
    topics: handlers.ReferralTopics,
    clock: Callable[[], datetime],
) -> None:
    async def help_requested(event: CloudEvent, data: catalog.HelpRequested) -> None:
        await handlers.on_help_requested(
            event, data, repo=repo, events=events, handover_url=handover_url, topics=topics, now=clock()
        )

    consumer.subscribe(
        catalog.HELP_REQUESTS,
        {
            catalog.HelpRequested.event_name: help_requested,
            catalog.PersonalDataErased.event_name: partial(handlers.on_personal_data_erased, repo=repo),
        },
    )
