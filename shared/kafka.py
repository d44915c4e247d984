"""Kafka plumbing: a broker with the delivery settings this platform promises, topic set-up,
and publishing CloudEvents. FastStream's defaults (acks=1, no idempotence, auto-commit
before processing) are weaker than our guarantees, so every service gets its broker here."""

from contextlib import suppress

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from shared.events import catalog
from shared.events.envelope import CONTENT_TYPE, CloudEvent
from shared.settings import InfraSettings


def make_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        acks="all",  # a publish returns only once every in-sync replica has the record
        enable_idempotence=True,  # producer retries never duplicate or reorder a record
        # Offsets are committed only after the handler returned; on an exception the
        # record is sought back and read again (our consumer turns failures into DLQ records).
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=15.0,
        logger=None,
    )


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """The outbox relay's producer: same guarantees, and batches sends queued together."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
    )


async def publish_event(broker: KafkaBroker, event: CloudEvent, topic: str) -> None:
    """Publish one CloudEvent (structured mode, key = subject) and wait for the broker's ack."""
    await broker.publish(event.to_bytes(), topic=topic, key=event.key, headers={"content-type": CONTENT_TYPE})


async def apply_topics(
    bootstrap_servers: str,
    topics: list[str],
    partitions: int,
    replication: int = 1,
    configs: dict[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; return the ones created. Safe to repeat."""
    configs = configs or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ido-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            new = [
                NewTopic(t, num_partitions=partitions, replication_factor=replication, topic_configs=configs.get(t))
                for t in missing
            ]
            with suppress(TopicAlreadyExistsError):  # created concurrently by another `apply`
                await admin.create_topics(new)
        return missing
    finally:
        await admin.close()


async def topic_partitions(bootstrap_servers: str, topic: str) -> list[TopicPartition]:
    """All partitions of a topic, asked of the cluster (a consumer only knows its subscriptions)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ido-admin")
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [TopicPartition(topic, p["partition"]) for p in described["partitions"]]


async def apply_platform_topics(settings: InfraSettings) -> list[str]:
    """Every topic of the platform, with the configured partitions, replication and configs."""
    return await apply_topics(
        settings.kafka_bootstrap_servers,
        catalog.all_topics(),
        settings.kafka_topic_partitions,
        settings.kafka_replication_factor,
        catalog.TOPIC_CONFIGS,
    )
