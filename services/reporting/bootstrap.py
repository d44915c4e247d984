"""Wires reporting: settings, database, the read-model versions, the projections (live and for a
rebuild), HTTP routes and the dashboard."""

from functools import partial

from fastapi import FastAPI
from pydantic import Field

from services.reporting import handlers
from services.reporting.adapters.versions import ActiveReadModels, ReadModelVersions
from services.reporting.entrypoints import http
from services.reporting.entrypoints.rebuild import Projection, Rebuild, project
from shared import reference
from shared.events import catalog
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "0.3.0"
COURSE_EVENTS = (
    "CourseRunScheduled",
    "CourseRunCancelled",
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


def projections() -> dict[str, dict[str, Projection]]:
    """Per topic, per event type: the projection that writes it into the read models."""
    return {
        catalog.HELP_REQUESTS: {"HelpRequested": handlers.on_help_requested},
        catalog.ROUTING: {
            "HelpRequestRouted": handlers.on_help_request_routed,
            "ReferralStatusChanged": handlers.on_status_changed,
            "ReferralOverdue": handlers.on_overdue,
        },
        catalog.LIBRARIES: {"IdoLocationRegistered": handlers.on_location_registered},
        catalog.COURSES: {
            **{name: handlers.on_course_event for name in COURSE_EVENTS},
            "LibraryReadinessChanged": handlers.on_readiness,
        },
        catalog.SUBSIDY: {name: handlers.on_subsidy_event for name in SUBSIDY_EVENTS},
        **{catalog.referral_topic(a): {"ReferredToAgency": handlers.on_referred} for a in reference.AGENCIES},
    }


def build_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime(settings)
    versions = ReadModelVersions(runtime.mongo, settings.database)
    by_topic = projections()
    runtime.consumer.subscribe_many(
        {topic: {name: partial(project, versions, p) for name, p in types.items()} for topic, types in by_topic.items()}
    )
    rebuild = Rebuild(versions, by_topic, settings.kafka_bootstrap_servers)
    app = runtime.http_app(title="IDO reporting API", api_version=API_VERSION, on_start=versions.load)
    app.include_router(http.dashboard_router())
    app.include_router(
        http.build_router(
            authenticated=runtime.authenticated,
            repo=ActiveReadModels(versions),  # type: ignore[arg-type]
            threshold=settings.suppression_threshold,
        )
    )
    app.include_router(http.admin_router(authenticated=runtime.authenticated, rebuild=rebuild))
    return app
