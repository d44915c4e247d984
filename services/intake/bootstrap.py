"""Wires intake: settings, database, broker, repository, HTTP routes and subscriptions."""

import asyncio
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field

from services.intake import handlers
from services.intake.adapters.repository import IntakeUnitOfWork, Libraries, Themes
from services.intake.entrypoints import consumers, http
from shared.logging import get_logger
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "1.0.0"
log = get_logger(__name__)


class IntakeSettings(ServiceSettings):
    model_config = service_settings("intake")

    service_name: str = "intake"
    port: int = 8001
    # Largest accepted request body; a visit with 10 questions of 1000 characters fits easily.
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    # Contact details and notes are kept 30 days: long enough for an agency to pick up a warm
    # referral and for the library to follow it up, then erased (keys destroyed). The
    # registration itself (themes, channel, outcome) stays for the KB's monitoring.
    retention_days: int = Field(30, ge=1)
    retention_check_seconds: float = Field(3600.0, gt=0)
    # Where the desk page (GET /desk) finds the courses API, from the browser (INTAKE_COURSES_URL);
    # courses must list intake's origin in its IDO_CORS_ORIGINS.
    courses_url: str = "http://127.0.0.1:8003"


def build_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings, migrations_dir=Path(__file__).parent / "migrations")
    consumers.subscribe(runtime.consumer)

    @asynccontextmanager
    async def unit_of_work():
        async with runtime.db.unit_of_work() as tx:
            yield IntakeUnitOfWork(tx)

    async def enforce_retention() -> None:
        while True:
            try:
                await handlers.purge_expired(
                    retention=timedelta(days=settings.retention_days),
                    start=unit_of_work,
                    events=runtime.events,
                    now=datetime.now(UTC),
                )
            except Exception:
                log.exception("retention check failed; retrying")
            await asyncio.sleep(settings.retention_check_seconds)

    runtime.add_background(enforce_retention)

    async def prepare() -> None:
        await Libraries(runtime.db).seed()
        await Themes(runtime.db).seed()

    app = runtime.http_app(
        title="IDO intake API", api_version=API_VERSION, max_body_bytes=settings.max_body_bytes, on_start=prepare
    )
    app.include_router(
        http.build_router(
            authenticated=runtime.authenticated,
            db=runtime.db,
            events=runtime.events,
        )
    )
    app.include_router(http.desk_router(courses_url=settings.courses_url))
    return app
