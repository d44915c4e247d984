"""What every service process holds and how it starts: database (migrated at start), broker,
event factory, outbox relay, idempotent consumer, credentials, and the FastAPI app with the
shared conventions. A service's bootstrap builds one ServiceRuntime and adds its own parts."""

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse

from shared import migrations
from shared.auth import KeyStore
from shared.consuming import EventConsumer
from shared.credentials import RevocationList
from shared.db import Database
from shared.events import asyncapi, catalog
from shared.http import ERROR_RESPONSES, Problem, RateLimiter, credential_dependency, health_router, install_conventions
from shared.kafka import make_broker, make_producer
from shared.logging import configure_logging, get_logger
from shared.metrics import RequestMetrics, metrics_router
from shared.outbox import EventFactory, OutboxRelay
from shared.settings import ServiceSettings
from shared.tracing import RequestTracing, configure_tracing

log = get_logger(__name__)


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings, migrations_dir: Path | None = None) -> None:
        self.settings = settings
        self.migrations_dir = migrations_dir
        self.db = Database(
            settings.database_url,
            settings.pgpassfile,
            pool_size=settings.db_pool_size,
            acquire_timeout=settings.db_acquire_timeout_seconds,
        )
        client_id = f"ido-{settings.service_name}"
        self.broker = make_broker(settings.kafka_bootstrap_servers, client_id=client_id)
        self.events = EventFactory(service=settings.service_name, oin=settings.oin, base_url=settings.public_base_url)
        self.relay = OutboxRelay(
            settings.database_url,
            settings.pgpassfile,
            None,  # its producer is made in start(): aiokafka wants the running loop
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_sweep_seconds,
            name=f"ido-{settings.service_name} outbox relay :{settings.port}",
            new_producer=self._outbox_producer,
        )
        self.consumer = EventConsumer(
            self.broker,
            self.db,
            group_id=settings.consumer_group or f"ido-{settings.service_name}",
            max_attempts=settings.consumer_max_attempts,
            backoff_seconds=settings.consumer_backoff_seconds,
            batch_size=settings.consumer_batch_size,
            batch_wait_ms=settings.consumer_batch_wait_ms,
            commit_seconds=settings.consumer_commit_seconds,
            concurrency=min(settings.consumer_concurrency, settings.db_pool_size - 2),
            max_backoff_seconds=settings.consumer_max_backoff_seconds,
        )
        self.draining = False  # SIGTERM received: readiness says so while requests finish
        self.keys = KeyStore(settings.credential_keys_dir)
        self._background: list[Callable[[], Coroutine[Any, Any, None]]] = [self._forget_processed, self._measure]
        self._tasks: list[asyncio.Task[None]] = []
        self.revocations = RevocationList()
        self.revocations.follow(self.broker)
        self.limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.authenticated = credential_dependency(self.keys, self.revocations, self.limiter)

    async def open_database(self) -> None:
        """Apply missing migrations (under yoyo's lock: instances may start together), then pool."""
        applied = await asyncio.to_thread(
            migrations.apply, self.settings.database_url, self.settings.pgpassfile, self.migrations_dir
        )
        if applied:
            log.info("migrations applied", migrations=applied)
        await self.db.connect()
        self.db.watch()

    async def start(self) -> None:
        # The topics are the operator's (`ido topics apply`): a service may not create them.
        await self.revocations.load(self.settings.kafka_bootstrap_servers)
        self.relay.producer = await self._outbox_producer()
        await self.broker.start()
        self.relay.start()
        self._tasks = [asyncio.create_task(run()) for run in self._background]
        log.info("service started", port=self.settings.port)

    async def _outbox_producer(self) -> AIOKafkaProducer:
        producer = make_producer(self.settings.kafka_bootstrap_servers, f"ido-{self.settings.service_name}-outbox")
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # its connections and tasks, not left behind
            raise
        return producer

    async def _forget_processed(self) -> None:
        keep = timedelta(hours=self.settings.processed_retention_hours)
        while True:
            try:
                await self.consumer.forget_processed_before(datetime.now(UTC) - keep)
            except Exception:
                log.exception("forgetting old processed events failed; retrying")
            await asyncio.sleep(min(3600.0, keep.total_seconds() / 4))

    async def _measure(self) -> None:
        """The figures a scrape cannot take itself (they need the database): every few seconds."""
        while True:
            try:
                await self.relay.measure_backlog(self.db)
            except Exception as exc:
                log.warning("measuring the outbox failed", error=type(exc).__name__)
            await asyncio.sleep(self.settings.metrics_seconds)

    def add_background(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """A long-running loop (a scheduler, a delivery worker) started and stopped with the service."""
        self._background.append(run)

    async def stop(self) -> None:
        """After the last HTTP request: finish the batches in hand and commit their offsets, stop
        consuming, publish what the outbox still holds, close. Whatever a hard stop cuts short is
        kept: uncommitted records are read again (and skipped as duplicates), outbox rows wait."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.consumer.close()
        await self.broker.stop()
        await self.relay.stop(flush_seconds=2.0)
        if self.relay.producer is not None:
            await self.relay.producer.stop()
        await self.db.close()
        log.info("service stopped")

    async def accepting(self) -> bool:
        return not self.draining

    async def revocations_ready(self) -> bool:
        return self.revocations.loaded

    async def database_ready(self) -> bool:
        return await self.db.ready()

    async def broker_ready(self) -> bool:
        return await self.broker.ping(timeout=2.0)

    def http_app(
        self, *, title: str, api_version: str = "1.0.0", max_body_bytes: int = 64 * 1024, on_start=None
    ) -> FastAPI:
        """The service's FastAPI app; its lifespan starts and stops the whole runtime."""

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            await self.open_database()
            if on_start is not None:
                await on_start()  # the service's own preparation (seed data) before events flow
            await self.start()
            try:
                yield
            finally:
                await self.stop()

        app = FastAPI(
            title=title,
            version=api_version,
            lifespan=lifespan,
            openapi_url="/v1/openapi.json",
            responses=ERROR_RESPONSES,
            docs_url="/v1/docs",
            redoc_url=None,
        )
        app.state.runtime = self  # serve() marks it draining on SIGTERM
        install_conventions(app, api_version, max_body_bytes)
        checks = {
            "accepting": self.accepting,  # false from SIGTERM on: take this instance out of rotation
            "database": self.database_ready,
            "broker": self.broker_ready,
            "revocations": self.revocations_ready,
        }
        app.include_router(health_router(checks))
        app.include_router(metrics_router())
        if origins := self.settings.cors_allow_list:
            # Only the origins listed, only with a bearer credential (no cookies): a page there
            # (the desk) may call this API; any other origin's page gets no CORS answer.
            app.add_middleware(
                CORSMiddleware,
                allow_origins=origins,
                allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "X-Correlation-Id"],
                expose_headers=["Location", "Retry-After", "API-Version"],
                allow_credentials=False,
                max_age=600,
            )
        app.add_middleware(RequestTracing)  # the request's span: what is logged and emitted within carries it
        app.add_middleware(RequestMetrics)  # outermost: times what every other layer does

        @app.get("/v1/schemas/{name}.json", tags=["events"], summary="JSON Schema of an event type's data")
        async def event_schema(name: str) -> JSONResponse:
            schemas = catalog.json_schemas()
            if name not in schemas:
                raise Problem(404, "Unknown event type")
            return JSONResponse(schemas[name], media_type="application/schema+json")

        @app.get("/v1/asyncapi.json", tags=["events"], summary="AsyncAPI document of the platform's topics")
        async def asyncapi_document() -> JSONResponse:
            return JSONResponse(asyncapi.document())

        return app


def utc_now() -> datetime:
    """The services' clock; their bootstraps take another one for tests."""
    return datetime.now(UTC)


class DrainingServer(uvicorn.Server):
    """uvicorn, with a drain before it stops: on SIGTERM (or SIGINT) readiness answers 503 for
    `drain_seconds` while requests are still served, then uvicorn stops taking connections,
    finishes the requests in flight and runs the lifespan's shutdown (ServiceRuntime.stop). A
    second signal, or `shutdown_seconds` passing, ends it at once: nothing is lost that way
    either (see ServiceRuntime.stop)."""

    def __init__(self, config: uvicorn.Config, runtime: "ServiceRuntime | None", settings: ServiceSettings) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.drain_seconds = settings.shutdown_drain_seconds
        self.shutdown_seconds = settings.shutdown_seconds
        self._signalled = False

    def handle_exit(self, sig: int, frame: Any) -> None:
        loop = asyncio.get_event_loop()
        if self._signalled:
            log.warning("second stop signal: stopping now")
            self.force_exit = True
            self.should_exit = True
            return
        self._signalled = True
        log.info("stop signal: draining", drain_seconds=self.drain_seconds)
        if self.runtime is not None:
            self.runtime.draining = True
        loop.call_later(self.drain_seconds, self._stop)
        loop.call_later(self.shutdown_seconds, self._force)

    def _stop(self) -> None:
        self.should_exit = True

    def _force(self) -> None:
        log.warning("shutdown took too long: stopping now", shutdown_seconds=self.shutdown_seconds)
        self.force_exit = True
        self.should_exit = True
        # uvicorn's force_exit does not cut a lifespan shutdown short: if that is what hangs (a
        # commit waiting on a rebalance), the process ends here. Nothing is lost: uncommitted
        # records are read again and skipped, outbox rows wait for the next relay.
        asyncio.get_event_loop().call_later(1.0, os._exit, 1)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    configure_tracing(settings.service_name)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=max(1, int(settings.shutdown_seconds) - 7),  # requests in flight
    )
    asyncio.run(DrainingServer(config, getattr(app.state, "runtime", None), settings).serve())
