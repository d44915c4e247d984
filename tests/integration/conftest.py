"""Fixtures on the real broker and database: a private database and topic per test."""

from collections.abc import AsyncIterator

import pytest

from shared.events.catalog import dlq_topic
from shared.kafka import apply_topics, make_broker
from shared.mongo import connect
from shared.settings import InfraSettings

pytestmark = pytest.mark.infra


@pytest.fixture
async def db(infra: InfraSettings, unique: str):
    client = connect(infra.mongodb_url)
    database = client[f"test_{unique}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


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
