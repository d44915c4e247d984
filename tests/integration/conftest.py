"""Fixtures on the real broker and database: a private database and topic per test."""

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from shared import migrations
from shared.db import Database, connect
from shared.events.catalog import dlq_topic
from shared.kafka import apply_topics, make_broker
from shared.settings import REPO_ROOT, InfraSettings

pytestmark = pytest.mark.infra


@pytest.fixture
async def database_url(infra: InfraSettings, unique: str) -> AsyncIterator[str]:
    """A private, empty database for one test (dropped afterwards)."""
    name = f"test_{unique}"
    admin = await connect(infra.pg_admin_url, infra.pgpassfile)
    await admin.execute(f'CREATE DATABASE "{name}"')
    yield infra.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture
async def migrated(infra: InfraSettings, database_url: str) -> AsyncIterator[Callable]:
    """Open the private database with a service's migrations applied (kernel tables only for None)."""
    opened: list[Database] = []

    async def open_for(service: str | None = None, pool_size: int = 10) -> Database:
        directory = REPO_ROOT / "services" / service / "migrations" if service else None
        await asyncio.to_thread(migrations.apply, database_url, infra.pgpassfile, directory)
        db = Database(database_url, infra.pgpassfile, pool_size=pool_size)
        await db.connect()
        opened.append(db)
        return db

    yield open_for
    for db in opened:
        await db.close()


@pytest.fixture
async def db(migrated) -> Database:
    """A private database with the kernel's tables (outbox, processed events)."""
    return await migrated(None)


@pytest.fixture
async def topic(infra: InfraSettings, unique: str) -> str:
    name = f"test.{unique}.v1"
    await apply_topics(infra.kafka_bootstrap_servers, [name, dlq_topic(name)], partitions=3)
    return name


@pytest.fixture
async def publisher(infra: InfraSettings) -> AsyncIterator:
    """A started broker with the platform's producer settings, used only to publish."""
    broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests")
    await broker.start()
    yield broker
    await broker.stop()
