"""Routing's subscriptions: every registered help request is routed, and an erasure drops the
sealed personal data. Each event is handled in the consumer's unit of work (one transaction)."""

from collections.abc import Callable
from datetime import datetime, timedelta

from services.routing import handlers
from services.routing.adapters.repository import RoutingUnitOfWork
from shared.consuming import EventConsumer, Handler
from shared.events import catalog
from shared.events.envelope import CloudEvent
from shared.outbox import EventFactory
from shared.unit_of_work import UnitOfWork


def help_request_handlers(
    events: EventFactory,
    handover_url: str,
    topics: handlers.ReferralTopics,
    default_response_time: timedelta,
    clock: Callable[[], datetime],
) -> dict[str, Handler]:
    async def help_requested(event: CloudEvent, data: catalog.HelpRequested, tx: UnitOfWork) -> None:
        await handlers.on_help_requested(
            event,
            data,
            uow=RoutingUnitOfWork(tx),
            events=events,
            handover_url=handover_url,
            topics=topics,
            default_response_time=default_response_time,
            now=clock(),
        )

    async def personal_data_erased(event: CloudEvent, data: catalog.PersonalDataErased, tx: UnitOfWork) -> None:
        await handlers.on_personal_data_erased(event, data, uow=RoutingUnitOfWork(tx))

    return {
        catalog.HelpRequested.event_name: help_requested,
        catalog.PersonalDataErased.event_name: personal_data_erased,
    }


def subscribe(
    consumer: EventConsumer,
    events: EventFactory,
    handover_url: str,
    topics: handlers.ReferralTopics,
    default_response_time: timedelta,
    clock: Callable[[], datetime],
) -> None:
    consumer.subscribe(
        catalog.HELP_REQUESTS, help_request_handlers(events, handover_url, topics, default_response_time, clock)
    )
