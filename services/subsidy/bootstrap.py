"""Wires subsidy: settings, database, broker, repository and HTTP routes."""

from collections.abc import Callable
from datetime import datetime
from functools import partial

from fastapi import FastAPI

from services.subsidy import handlers
from services.subsidy.adapters.repository import APPLICATIONS, SCHEMES, MongoSubsidyRepository
from services.subsidy.entrypoints import http
from shared.events import catalog
from shared.runtime import ServiceRuntime, utc_now
from shared.settings import ServiceSettings, service_settings

API_VERSION = "0.2.0"


class SubsidySettings(ServiceSettings):
    model_config = service_settings("subsidy")

    service_name: str = "subsidy"
    port: int = 8004


def build_app(settings: SubsidySettings | None = None, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    settings = settings or SubsidySettings()
    runtime = ServiceRuntime(settings, outbox_collections=[APPLICATIONS, SCHEMES])
    # Conditions for the final tranche are read from the other services' events.
    repo = MongoSubsidyRepository(runtime.db, runtime.relay)
    runtime.consumer.subscribe_many(
        {
            catalog.HELP_REQUESTS: {
                catalog.HelpRequested.event_name: partial(
                    handlers.on_visit_registered, repo=repo, events=runtime.events
                )
            },
            catalog.COURSES: {
                catalog.CourseRunScheduled.event_name: partial(
                    handlers.on_course_run_scheduled, repo=repo, events=runtime.events
                )
            },
        }
    )
    app = runtime.http_app(title="IDO subsidy API", api_version=API_VERSION)
    http.install_error_answers(app)
    app.include_router(
        http.build_router(authenticated=runtime.authenticated, repo=repo, events=runtime.events, clock=clock)
    )
    return app
