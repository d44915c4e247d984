"""Wires courses: settings, database (migrated at start), broker, consumers, HTTP routes and the
offer-expiry and retention watch."""

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field

from services.courses import handlers
from services.courses.adapters.repository import CoursesUnitOfWork, units_of_work
from services.courses.domain.model import DEFAULT_COURSE_TYPES
from services.courses.entrypoints import http
from shared.events import catalog
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
    runtime = ServiceRuntime(settings, migrations_dir=Path(__file__).parent / "migrations")
    units = units_of_work(runtime.db)
    window = timedelta(hours=settings.acceptance_window_hours)
    retention = timedelta(days=settings.retention_days)

    async def seed_course_types() -> None:
        async with units() as uow:
            await handlers.seed_course_types(DEFAULT_COURSE_TYPES, uow=uow)

    async def expire_offers() -> None:
        # Every instance runs this watch; the run's row lock lets each offer lapse once.
        while True:
            try:
                await handlers.expire_offers(units=units, events=runtime.events, now=clock(), window=window)
                async with units() as uow:
                    await handlers.purge_participants(retention=retention, uow=uow, now=clock())
            except Exception:
                log.exception("offer expiry failed; retrying")
            await asyncio.sleep(settings.offer_check_seconds)

    runtime.add_background(expire_offers)

    runtime.consumer.subscribe_many(
        {
            catalog.ROUTING: {
                catalog.HelpRequestRouted.event_name: lambda event, data, tx: handlers.on_help_request_routed(
                    event, data, uow=CoursesUnitOfWork(tx), now=clock()
                )
            },
            catalog.LIBRARIES: {
                catalog.IdoLocationRegistered.event_name: lambda event, data, tx: handlers.on_location_registered(
                    event, data, uow=CoursesUnitOfWork(tx)
                )
            },
        }
    )
    app = runtime.http_app(title="IDO courses API", api_version=API_VERSION, on_start=seed_course_types)
    http.install_error_answers(app)
    app.include_router(
        http.build_router(
            authenticated=runtime.authenticated,
            db=runtime.db,
            events=runtime.events,
            clock=clock,
            window=window,
            no_show_frees_seat=settings.no_show_frees_seat,
        )
    )
    return app
