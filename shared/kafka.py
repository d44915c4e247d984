"""Kafka plumbing: a broker with the delivery settings this platform promises, topic set-up,
and publishing CloudEvents. FastStream's defaults (acks=1, no idempotence, auto-commit
before processing) are weaker than our guarantees, so every service gets its broker here."""

import asyncio
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from faststream.middlewares import AckPolicy

from shared import reference
from shared.events.catalog import organisation_of
from shared.events.envelope import CONTENT_TYPE, CloudEvent
from shared.kafka_security import ClientConfig, read_client_config
from shared.settings import InfraSettings
from shared.topics import TopicSpec, platform_topics


def client_config(path: Path | None = None) -> ClientConfig:
    """How this process's Kafka clients authenticate (and whether over TLS), from the Kafka client
    configuration file `path`, by default KAFKA_CLIENT_CONFIG: the local broker's administrator
    file if there is one, else none (PLAINTEXT). Read when a client is made: the local broker
    writes the file when it first starts."""
    return read_client_config(path or InfraSettings().kafka_client_config)


def client_security(path: Path | None = None) -> dict[str, Any]:
    """The same, as aiokafka's keyword arguments."""
    return client_config(path).aiokafka()


def admin_client(bootstrap_servers: str, client_id: str = "ido-admin") -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id=client_id, **client_security())


def consumer_client(bootstrap_servers: str, **options: Any) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, **client_security(), **options)


def make_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    return KafkaBroker(
        bootstrap_servers,
        client_id=client_id,
        security=client_config().faststream(),
        acks="all",  # a publish returns only once every in-sync replica has the record
        enable_idempotence=True,  # producer retries never duplicate or reorder a record
        # Offsets are committed only after the handler returned; on an exception the
        # record is sought back and read again (our consumer turns failures into DLQ records).
        ack_policy=AckPolicy.NACK_ON_ERROR,
        graceful_timeout=5.0,  # at shutdown, in-flight batches get this long (the whole stop: 10 s)
        metadata_max_age_ms=InfraSettings().kafka_metadata_max_age_ms,
        logger=None,
    )


def make_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    """The outbox relay's producer: same guarantees, and batches sends queued together."""
    return producer_client(bootstrap_servers, client_id=client_id, acks="all", enable_idempotence=True, linger_ms=2)


def producer_client(bootstrap_servers: str, **options: Any) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, **client_security(), **options)


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
    specs = [TopicSpec(t, partitions, replication, (configs or {}).get(t, {})) for t in topics]
    return (await apply_topology(bootstrap_servers, specs)).created


@dataclass
class TopologyReport:
    created: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # what differed before (and, unless fixed, still does)


async def apply_topology(
    bootstrap_servers: str, specs: list[TopicSpec], *, compare: bool = False, fix: bool = True
) -> TopologyReport:
    """Create the missing topics with their configs (unless not `fix`). With `compare`, also
    compare the existing ones with their specifications: report every difference and (if `fix`)
    set the configs that differ; partitions and replication are only reported. Safe to repeat,
    also concurrently."""
    report = TopologyReport()
    admin = admin_client(bootstrap_servers, "ido-topics")
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing and not fix:
            report.drift += [f"{s.name}: missing" for s in missing]
        elif missing:
            new = [NewTopic(s.name, s.partitions, s.replication, topic_configs=s.configs) for s in missing]
            with suppress(TopicAlreadyExistsError):  # created concurrently by another `apply`
                await admin.create_topics(new)
            report.created = [s.name for s in missing]
        if compare:
            present = [s for s in specs if s.name in existing]
            for spec, (partitions, replication, configs) in zip(
                present, await _described(admin, [s.name for s in present]), strict=True
            ):
                if lines := spec.drift(partitions, replication, configs):
                    report.drift += lines
                    if fix and any(configs.get(k) != v for k, v in spec.configs.items()):
                        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, spec.name, spec.configs)])
                        report.altered.append(spec.name)
        return report
    finally:
        await admin.close()


async def _described(admin: AIOKafkaAdminClient, names: list[str]) -> list[tuple[int, int, dict[str, str]]]:
    """Per topic: its partitions, replication factor and configs, as the cluster has them. A
    topic created a moment ago may not be described yet (its metadata is still spreading): asked
    again for up to 10 s."""
    if not names:
        return []
    for _ in range(50):
        topics = {t["topic"]: t["partitions"] for t in await admin.describe_topics(names) if not t["error_code"]}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, None) for name in names]
        configs: dict[str, dict[str, str]] = {}
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                if not resource["error_code"]:
                    entries = resource["config_entries"]
                    configs[resource["resource_name"]] = {e["config_names"]: e["config_value"] for e in entries}
        if all(topics.get(n) and n in configs for n in names):
            return [(len(topics[n]), len(topics[n][0]["replicas"]), configs[n]) for n in names]
        await asyncio.sleep(0.2)
    raise RuntimeError(f"topics not described: {sorted(set(names) - set(topics) - set(configs))}")


async def topic_partitions(bootstrap_servers: str, *topics: str) -> list[TopicPartition]:
    """All partitions of these topics, asked of the cluster once (a consumer only knows its
    subscriptions)."""
    if not topics:  # describing no topics would describe them all
        return []
    admin = admin_client(bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]


async def earliest_offsets(bootstrap_servers: str, topics: list[str]) -> dict[TopicPartition, int]:
    """The first offset each partition of these topics still holds (0 unless records were
    deleted or retention removed them)."""
    return await _offsets(bootstrap_servers, topics, earliest=True)


async def latest_offsets(bootstrap_servers: str, topics: list[str]) -> dict[TopicPartition, int]:
    """The offset the next record of each partition of these topics will get."""
    return await _offsets(bootstrap_servers, topics, earliest=False)


async def _offsets(bootstrap_servers: str, topics: list[str], *, earliest: bool) -> dict[TopicPartition, int]:
    partitions = await topic_partitions(bootstrap_servers, *topics)
    if not partitions:
        return {}
    consumer = consumer_client(bootstrap_servers, client_id="ido-admin", enable_auto_commit=False)
    await consumer.start()
    try:
        if earliest:
            return await consumer.beginning_offsets(partitions)
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


async def apply_platform_topics(settings: InfraSettings, *, compare: bool = False, fix: bool = True) -> TopologyReport:
    """Every topic of the platform (the catalog's, with the policies of shared/events/topics.toml)
    for the agencies and for every local partner whose referral topic exists already."""
    organisations = set(reference.AGENCIES) | await referral_organisations(settings.kafka_bootstrap_servers)
    specs = platform_topics(settings, sorted(organisations))
    return await apply_topology(settings.kafka_bootstrap_servers, specs, compare=compare, fix=fix)


async def referral_organisations(bootstrap_servers: str) -> set[str]:
    """The organisations with a referral topic on the cluster (agencies and partners)."""
    admin = admin_client(bootstrap_servers, "ido-topics")
    await admin.start()
    try:
        names = await admin.list_topics()
    finally:
        await admin.close()
    return {org for name in names if (org := organisation_of(name))}
