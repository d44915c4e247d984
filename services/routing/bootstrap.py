"""Wires routing: settings, database, broker, repository, HTTP routes and subscriptions."""

from fastapi import FastAPI

from services.routing.adapters.repository import CASES, MongoRoutingRepository
from services.routing.entrypoints import consumers, http
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "1.0.0"


class RoutingSettings(ServiceSettings):
    model_config = service_settings("routing")

    service_name: str = "routing"
    port: int = 8002


def build_app(settings: RoutingSettings | None = None) -> FastAPI:
    settings = settings or RoutingSettings()
    runtime = ServiceRuntime(settings, outbox_collections=[CASES])
    repo = MongoRoutingRepository(runtime.db)
    handover_url = settings.public_base_url + http.HANDOVER_PATH
    consumers.subscribe(runtime.consumer, repo, runtime.events, handover_url)
    app = runtime.http_app(title="IDO routing API", api_version=API_VERSION, on_start=repo.prepare)
    app.include_router(http.build_router(authenticated=runtime.authenticated, repo=repo))
    return app
