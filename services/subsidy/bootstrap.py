"""Wires subsidy: settings, database (migrated at start), broker, unit of work and HTTP routes."""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI

from services.subsidy import handlers
from services.subsidy.adapters.repository import SubsidyUnitOfWork
from services.subsidy.entrypoints import http
from shared.consuming import Handler
from shared.events import catalog
from shared.outbox import EventFactory
from shared.runtime import ServiceRuntime, utc_now
from shared.settings import ServiceSettings, service_settings

API_VERSION = "0.2.0"
MIGRATIONS = Path(__file__).parent / "migrations"


class SubsidySettings(ServiceSettings):
    model_config = service_settings("subsidy")

    service_name: str = "subsidy"
    port: int = 8004


def event_handlers(events: EventFactory) -> dict[str, dict[str, Handler]]:
    """What subsidy consumes: the conditions for the final tranche, read from the other
    services' events; each handled in the consumer's unit of work."""
    return {
        catalog.HELP_REQUESTS: {
            catalog.HelpRequested.event_name: lambda event, data, tx: handlers.on_visit_registered(
                event, data, uow=SubsidyUnitOfWork(tx), events=events
            )
        },
        catalog.COURSES: {
            catalog.CourseRunScheduled.event_name: lambda event, data, tx: handlers.on_course_run_scheduled(
                event, data, uow=SubsidyUnitOfWork(tx), events=events
            )
        },
    }


def build_app(settings: SubsidySettings | None = None, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    settings = settings or SubsidySettings()
    runtime = ServiceRuntime(settings, migrations_dir=MIGRATIONS)
    runtime.consumer.subscribe_many(event_handlers(runtime.events))
    app = runtime.http_app(title="IDO subsidy API", api_version=API_VERSION)
    http.install_error_answers(app)
    app.include_router(
        http.build_router(authenticated=runtime.authenticated, db=runtime.db, events=runtime.events, clock=clock)
    )
    return app
