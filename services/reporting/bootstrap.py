"""Wires reporting: settings, database, broker, read-model projections and HTTP routes."""

from functools import partial

from fastapi import FastAPI
from pydantic import Field

from services.reporting import handlers
from services.reporting.adapters.repository import MongoReportingRepository
from services.reporting.entrypoints import http
from shared import reference
from shared.events import catalog
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "0.2.0"
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
SUBSIDY_EVENTS = ("SubsidyApplied", "SubsidyGranted", "SubsidyRejected", "SubsidyPaid", "SubsidyRenewed")


class ReportingSettings(ServiceSettings):
    model_config = service_settings("reporting")

    service_name: str = "reporting"
    port: int = 8005
    # Outside the library itself, counts below this are shown as "<5".
    suppression_threshold: int = Field(5, ge=1)


def build_app(settings: ReportingSettings | None = None) -> FastAPI:
    settings = settings or ReportingSettings()
    runtime = ServiceRuntime(settings)
    repo = MongoReportingRepository(runtime.db)
    runtime.consumer.subscribe_many(
        {
            catalog.HELP_REQUESTS: {"HelpRequested": partial(handlers.on_help_requested, repo=repo)},
            catalog.ROUTING: {
                "HelpRequestRouted": partial(handlers.on_help_request_routed, repo=repo),
                "ReferralStatusChanged": partial(handlers.on_status_changed, repo=repo),
                "ReferralOverdue": partial(handlers.on_overdue, repo=repo),
            },
            catalog.LIBRARIES: {"IdoLocationRegistered": partial(handlers.on_location_registered, repo=repo)},
            catalog.COURSES: {
                **{name: partial(handlers.on_course_event, repo=repo) for name in COURSE_EVENTS},
                "LibraryReadinessChanged": partial(handlers.on_readiness, repo=repo),
            },
            catalog.SUBSIDY: {name: partial(handlers.on_subsidy_event, repo=repo) for name in SUBSIDY_EVENTS},
            **{
                catalog.referral_topic(a): {"ReferredToAgency": partial(handlers.on_referred, repo=repo)}
                for a in reference.AGENCIES
            },
        }
    )
    app = runtime.http_app(title="IDO reporting API", api_version=API_VERSION)
    app.include_router(http.dashboard_router())
    app.include_router(
        http.build_router(authenticated=runtime.authenticated, repo=repo, threshold=settings.suppression_threshold)
    )
    return app
