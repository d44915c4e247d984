"""Wires reporting: settings, database (migrated at start), the live projection in the consumer's
unit of work, the rebuild, HTTP routes and the dashboard."""

import re
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import Field

from services.reporting import handlers
from services.reporting.adapters.repository import ReportingQueries, ReportingUnitOfWork
from services.reporting.entrypoints import http
from services.reporting.entrypoints.rebuild import Rebuild
from shared import reference
from shared.consuming import TopicMap
from shared.events import catalog
from shared.events.envelope import CloudEvent
from shared.kafka import referral_organisations
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings
from shared.unit_of_work import UnitOfWork

API_VERSION = "0.3.0"
COURSE_EVENTS = (
    "CourseRunScheduled",
    "CourseRunCancelled",
    "CourseRunCapacityChanged",
    "ParticipantEnrolled",
    "ParticipantWaitlisted",
    "SeatOffered",
    "SeatOfferExpired",
    "EnrolmentCancelled",
    "CourseCompleted",
)
SUBSIDY_EVENTS = (
    "SubsidyApplied",
    "SubsidyGranted",
    "SubsidyRejected",
    "SubsidyPaid",
    "SubsidyRenewed",
    "SubsidySchemePublished",
)


class ReportingSettings(ServiceSettings):
    model_config = service_settings("reporting")

    service_name: str = "reporting"
    port: int = 8005
    # Outside the library itself, counts below this are shown as "<5".
    suppression_threshold: int = Field(5, ge=1)
    # Records a rebuild reads, folds and writes at a time.
    rebuild_batch_size: int = Field(5000, ge=1)


REFERRALS = ("ReferredToAgency",)


def subscriptions(organisations: Iterable[str] = reference.AGENCIES) -> dict[str, tuple[str, ...]]:
    """Per topic, the event types projected into the read models (domain.projections.PROJECTIONS),
    with the referral topics of these receiving organisations."""
    return {
        catalog.HELP_REQUESTS: ("HelpRequested",),
        catalog.ROUTING: ("HelpRequestRouted", "ReferralStatusChanged", "ReferralOverdue"),
        catalog.LIBRARIES: ("IdoLocationRegistered",),
        catalog.COURSES: (*COURSE_EVENTS, "LibraryReadinessChanged"),
        catalog.SUBSIDY: SUBSIDY_EVENTS,
        **{catalog.referral_topic(o): REFERRALS for o in organisations},
    }


def live_subscriptions() -> tuple[str, TopicMap[tuple[str, ...]]]:
    """The live consumer's pattern: the platform's topics and every organisation's referral
    topic, also a local partner's made later."""
    named = subscriptions()
    fixed = "|".join(re.escape(t) for t in named if catalog.organisation_of(t) is None)
    return f"^(?:{fixed}|{catalog.referral_topic_pattern()})$", TopicMap(named, lambda _: REFERRALS)


def current_subscriptions(bootstrap: str) -> Callable[[], Awaitable[dict[str, tuple[str, ...]]]]:
    """What a rebuild replays: the platform's topics and every referral topic the cluster has."""

    async def current() -> dict[str, tuple[str, ...]]:
        return subscriptions(set(reference.AGENCIES) | await referral_organisations(bootstrap))

    return current


async def project(events: list[tuple[CloudEvent, Any]], tx: UnitOfWork) -> None:
    await handlers.on_events(events, uow=ReportingUnitOfWork(tx))


def build_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime(settings, migrations_dir=Path(__file__).parent / "migrations")
    pattern, by_topic = live_subscriptions()
    runtime.consumer.subscribe_folded(by_topic, project, pattern=pattern)
    rebuild = Rebuild(
        runtime.db,
        current_subscriptions(settings.kafka_bootstrap_servers),
        settings.kafka_bootstrap_servers,
        consumer_group=runtime.consumer.group_id,
        retention=timedelta(hours=settings.processed_retention_hours),
        batch_size=settings.rebuild_batch_size,
    )
    app = runtime.http_app(title="IDO reporting API", api_version=API_VERSION, on_start=rebuild.recover)
    app.include_router(http.dashboard_router())
    app.include_router(
        http.build_router(
            authenticated=runtime.authenticated,
            queries=ReportingQueries(runtime.db),
            threshold=settings.suppression_threshold,
        )
    )
    app.include_router(http.admin_router(authenticated=runtime.authenticated, rebuild=rebuild))
    return app
