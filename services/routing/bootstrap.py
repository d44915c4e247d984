"""Wires routing: settings, database (migrated at start, reference data seeded), broker, HTTP
routes, subscriptions, the service-level watch and webhooks."""

from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from pydantic import Field

from services.routing.adapters.intake_keys import IntakeKeys
from services.routing.adapters.repository import RoutingUnitOfWork, seed_reference_data
from services.routing.adapters.topics import KafkaReferralTopics
from services.routing.entrypoints import consumers, http, service_levels, webhooks
from shared import credentials
from shared.logging import get_logger
from shared.runtime import ServiceRuntime, utc_now
from shared.settings import ServiceSettings, service_settings

API_VERSION = "1.0.0"
log = get_logger(__name__)


class RoutingSettings(ServiceSettings):
    model_config = service_settings("routing")

    service_name: str = "routing"
    port: int = 8002
    # Response time an organisation has to bring a referral to a final status, unless its own
    # `response_hours` is set in the organisations table. Five days: a working week.
    default_response_hours: int = Field(120, ge=1)
    # How often the service-level watch looks for overdue referrals.
    sla_check_seconds: float = Field(60.0, gt=0)
    # Where routing fetches data keys to open sealed handover details, and with what credential
    # (`ido keys create --service routing`; the local runner issues it once). Left empty (a test
    # run as the administrator), routing issues itself one with the local signing key at start.
    intake_url: str = "http://127.0.0.1:8001"
    service_credential: str = ""


async def _own_service_credential(settings: RoutingSettings) -> str:
    _, token = await credentials.create(settings, "service", "routing", issuer="routing")
    log.warning("no ROUTING_SERVICE_CREDENTIAL set: issued one with the local signing key")
    return token


def build_app(settings: RoutingSettings | None = None, clock: Callable[[], datetime] = utc_now) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime(settings, migrations_dir=Path(__file__).parent / "migrations")
    handover_url = settings.public_base_url + http.HANDOVER_PATH
    consumers.subscribe(
        runtime.consumer,
        runtime.events,
        handover_url,
        KafkaReferralTopics(settings),
        timedelta(hours=settings.default_response_hours),
        clock,
    )

    async def watch_service_levels() -> None:
        await service_levels.watch(runtime.db, runtime.events, clock, settings.sla_check_seconds)

    runtime.add_background(watch_service_levels)
    keys = IntakeKeys(settings.intake_url)

    async def prepare() -> None:
        async with runtime.db.unit_of_work() as tx:
            await seed_reference_data(RoutingUnitOfWork(tx))
        keys.use(settings.service_credential or await _own_service_credential(settings))

    app = runtime.http_app(title="IDO routing API", api_version=API_VERSION, on_start=prepare)
    router = http.build_router(
        authenticated=runtime.authenticated, db=runtime.db, events=runtime.events, keys=keys, clock=clock
    )
    app.include_router(router)
    app.include_router(http.inbox_router())
    webhooks.install(runtime, app, settings)
    return app
