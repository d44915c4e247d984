"""Wires intake: settings, database, broker, repository, HTTP routes and subscriptions."""

from fastapi import FastAPI
from pydantic import Field

from services.intake.adapters.repository import (
    COLLECTION,
    LOCATIONS,
    MongoHelpRequestRepository,
    MongoLibraryRepository,
    MongoLocationRepository,
)
from services.intake.entrypoints import consumers, http
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings, service_settings

API_VERSION = "1.0.0"


class IntakeSettings(ServiceSettings):
    model_config = service_settings("intake")

    service_name: str = "intake"
    port: int = 8001
    # Largest accepted request body; a visit with 10 questions of 1000 characters fits easily.
    max_body_bytes: int = Field(64 * 1024, ge=1024)


def build_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()
    runtime = ServiceRuntime(settings, outbox_collections=[COLLECTION, LOCATIONS])
    repo = MongoHelpRequestRepository(runtime.db, runtime.relay)
    libraries = MongoLibraryRepository(runtime.db)
    locations = MongoLocationRepository(runtime.db, runtime.relay)
    consumers.subscribe(runtime.consumer, repo)

    async def prepare() -> None:
        await repo.ensure_indexes()
        await libraries.seed()

    app = runtime.http_app(
        title="IDO intake API", api_version=API_VERSION, max_body_bytes=settings.max_body_bytes, on_start=prepare
    )
    app.include_router(
        http.build_router(
            authenticated=runtime.authenticated,
            repo=repo,
            libraries=libraries,
            locations=locations,
            events=runtime.events,
        )
    )
    return app
