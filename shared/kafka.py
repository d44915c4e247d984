"""Kafka plumbing: a broker with the delivery settings this platform promises, topic set-up,
and publishing CloudEvents. FastStream's defaults (acks=1, no idempotence, auto-commit
before processing) are weaker than our guarantees, so every service gets its broker here."""

from contextlib import suppress

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from shared.events.envelope import CONTENT_TYPE, CloudEvent


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


async def publish_event(broker: KafkaBroker, event: CloudEvent, topic: str) -> None:
    """Publish one CloudEvent (structured mode, key = subject) and wait for the broker's ack."""
    await broker.publish(event.to_bytes(), topic=topic, key=event.key, headers={"content-type": CONTENT_TYPE})


async def apply_topics(bootstrap_servers: str, topics: list[str], partitions: int, replication: int = 1) -> list[str]:
    """Create the topics that do not exist yet; return the ones created. Safe to repeat."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="ido-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if missing:
            new = [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing]
            with suppress(TopicAlreadyExistsError):  # created concurrently by another `apply`
                await admin.create_topics(new)
        return missing
    finally:
        await admin.close()
