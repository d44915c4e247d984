"""Wires courses: settings, database, broker, repository, HTTP routes and the offer-expiry watch."""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

from fastapi import FastAPI
from pydantic import Field

from services.courses import handlers
from services.courses.adapters.repository import ENROLMENTS, READINESS, RUNS, MongoCoursesRepository
from services.courses.entrypoints import http
from shared.events import catalog
from shared.events.envelope import CloudEvent
from shared.logging import get_logger
from shared.runtime import ServiceRuntime, utc_now
from shared.settings import ServiceSettings, service_settings

API_VERSION = "1.0.0"
log = get_logger(__name__)


class CoursesSettings(ServiceSettings):
    model_config = service_settings("courses")

    service_name: str = "courses"
    port: int = 8003
    # How long a seat offered from the waitlist stays open (users of booking systems expect a day).
    acceptance_window_hours: float = Field(24.0, gt=0)
    offer_check_seconds: float = Field(60.0, gt=0)
    # No-show policy: missing the first session without cancelling gives the seat to the waitlist.
    no_show_frees_seat: bool = True
    # Participants' names and contact details are erased this long after the run's last session:
    # time to hand out certificates and follow up, then no longer needed.
    retention_days: int = Field(90, ge=1)


def build_app(settings: CoursesSettings | None = None, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    settings = settings or CoursesSettings()
    runtime = ServiceRuntime(settings, outbox_collections=[RUNS, ENROLMENTS, READINESS])
    repo = MongoCoursesRepository(runtime.db, runtime.relay)
    window = timedelta(hours=settings.acceptance_window_hours)

    async def expire_offers() -> None:
        while True:
            try:
                await handlers.expire_offers(repo=repo, events=runtime.events, now=clock(), window=window)
                await handlers.purge_participants(
                    retention=timedelta(days=settings.retention_days), repo=repo, now=clock()
                )
            except Exception:
                log.exception("offer expiry failed; retrying")
            await asyncio.sleep(settings.offer_check_seconds)

    runtime.add_background(expire_offers)

    async def help_request_routed(event: CloudEvent, data: catalog.HelpRequestRouted) -> None:
        await handlers.on_help_request_routed(event, data, repo=repo, now=clock())

    runtime.consumer.subscribe_many(
        {
            catalog.ROUTING: {catalog.HelpRequestRouted.event_name: help_request_routed},
            catalog.LIBRARIES: {
                catalog.IdoLocationRegistered.event_name: partial(handlers.on_location_registered, repo=repo)
            },
        }
    )
    app = runtime.http_app(title="IDO courses API", api_version=API_VERSION, on_start=repo.prepare)
    http.install_error_answers(app)
    app.include_router(
        http.build_router(
            authenticated=runtime.authenticated,
            repo=repo,
            events=runtime.events,
            clock=clock,
            window=window,
            no_show_frees_seat=settings.no_show_frees_seat,
        )
    )
    return app
