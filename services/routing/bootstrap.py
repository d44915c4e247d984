"""Wires routing: settings, database, broker, repository, HTTP routes, subscriptions and the
service-level watch."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from pydantic import Field

from services.routing import handlers
from services.routing.adapters.repository import CASES, REFERRALS, MongoRoutingRepository
from services.routing.entrypoints import consumers, http, webhooks
from shared.logging import get_logger
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "1.0.0"
log = get_logger(__name__)


class RoutingSettings(ServiceSettings):
    model_config = service_settings("routing")

    service_name: str = "routing"
    port: int = 8002
    # Response time an organisation has to bring a referral to a final status, unless its own
    # `response_hours` is set in the organisations collection. Five days: a working week.
    default_response_hours: int = Field(120, ge=1)
    # How often the service-level watch looks for overdue referrals.
    sla_check_seconds: float = Field(60.0, gt=0)


def utc_now() -> datetime:
    return datetime.now(UTC)


def build_app(settings: RoutingSettings | None = None, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime(settings, outbox_collections=[CASES, REFERRALS])
    repo = MongoRoutingRepository(runtime.db, timedelta(hours=settings.default_response_hours), runtime.relay)
    handover_url = settings.public_base_url + http.HANDOVER_PATH
    consumers.subscribe(runtime.consumer, repo, runtime.events, handover_url, clock)

    async def watch_service_levels() -> None:
        while True:
            try:
                await handlers.notify_overdue(repo=repo, events=runtime.events, now=clock())
            except Exception:
                log.exception("service-level check failed; retrying")
            await asyncio.sleep(settings.sla_check_seconds)

    runtime.add_background(watch_service_levels)
    app = runtime.http_app(title="IDO routing API", api_version=API_VERSION, on_start=repo.prepare)
    app.include_router(
        http.build_router(authenticated=runtime.authenticated, repo=repo, events=runtime.events, clock=clock)
    )
    webhooks.install(runtime, app, settings)
    return app
