"""The local broker authenticates every client (issue 11.1, first step): SASL/SCRAM-SHA-512 on
the client listener, KRaft's StandardAuthorizer with nothing allowed that no ACL allows. A
client without credentials, or with a wrong password, gets nothing."""

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError

from shared.events import catalog
from shared.kafka import admin_client, client_security

pytestmark = pytest.mark.infra


@pytest.fixture(autouse=True)
def authenticating_broker(infra) -> None:
    """The local broker authenticates; the testcontainers broker (with Docker) does not yet."""
    if not client_security():
        pytest.skip("a broker without authentication (testcontainers, compose)")


async def test_the_administrator_authenticates_and_sees_the_topics(infra):
    admin = admin_client(infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        assert catalog.HELP_REQUESTS in await admin.list_topics()
    finally:
        await admin.close()


async def test_a_client_without_credentials_is_refused(infra):
    consumer = AIOKafkaConsumer(
        catalog.HELP_REQUESTS, bootstrap_servers=infra.kafka_bootstrap_servers, request_timeout_ms=5000
    )
    with pytest.raises(KafkaError):  # the SASL listener does not speak plain Kafka
        await consumer.start()
    await consumer.stop()


async def test_a_wrong_password_is_refused(infra):
    security = {**client_security(), "sasl_plain_password": "not-the-password"}
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers, request_timeout_ms=5000, **security)
    with pytest.raises((KafkaConnectionError, KafkaError)):
        await admin.start()
        await admin.list_topics()
    await admin.close()
