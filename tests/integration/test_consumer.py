"""The idempotent consumer on the real broker and database: duplicates have one effect,
poison records go to the DLQ with their reason, the consumer carries on, failures retry, and
a handler's writes commit together with the processed record or not at all."""

import json

import asyncpg
import pytest

from shared.consuming import EventConsumer, PermanentError
from shared.events.catalog import HelpRequested, QuestionFacts, dlq_topic
from shared.kafka import admin_client, latest_offsets, make_broker, publish_event
from shared.outbox import EventFactory
from tests.kafkatools import TopicReader, eventually

pytestmark = pytest.mark.infra

FACTORY = EventFactory(service="intake", oin="00000001003214345000", base_url="http://127.0.0.1:8001")


def help_requested(help_request_id: str):
    data = HelpRequested(
        help_request_id=help_request_id,
        library="venlo",
        channel="phone",
        questions=[QuestionFacts(index=0, category="digital_government", theme="zorg", subtheme="eigen-bijdrage")],
        registered_at="2026-11-29T10:00:00Z",
    )
    return FACTORY.create(data, correlation_id="corr-1").event


async def count(event, data, uow) -> None:
    await uow.conn.execute(
        "INSERT INTO effects VALUES ($1, 1) ON CONFLICT (key) DO UPDATE SET n = effects.n + 1", data.help_request_id
    )


async def processed(db, consumer: str, event) -> int:
    return await db.fetchval(
        "SELECT count(*) FROM processed_events WHERE consumer = $1 AND event_id = $2", consumer, event.id
    )


class Running:
    """A consumer with its own broker and group, counting effects in the test database."""

    def __init__(self, infra, db, topic, unique, handler=None, **options):
        self.db = db
        self.broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-consumer")
        self.consumer = EventConsumer(self.broker, db, group_id=f"test-{unique}", backoff_seconds=0.01, **options)
        self.consumer.subscribe(topic, {"HelpRequested": handler or count})

    async def effects(self, key: str) -> int:
        return await self.db.fetchval("SELECT coalesce(sum(n), 0) FROM effects WHERE key = $1", key)

    async def __aenter__(self):
        await self.db.pool.execute("CREATE TABLE IF NOT EXISTS effects (key text PRIMARY KEY, n int NOT NULL)")
        await self.broker.start()
        return self

    async def __aexit__(self, *exc):
        await self.broker.stop()


async def test_a_duplicate_delivery_has_one_effect(infra, db, topic, unique, publisher):
    event, later = help_requested("hr-dup"), help_requested("hr-dup")  # same key: same partition, in order
    async with Running(infra, db, topic, unique) as running:
        await publish_event(publisher, event, topic)
        await publish_event(publisher, event, topic)  # re-published, e.g. by a relay that crashed before marking
        await publish_event(publisher, later, topic)
        await eventually(lambda: processed(db, running.consumer.group_id, later))
        assert await running.effects("hr-dup") == 2, "two distinct events, one of them delivered twice"
        assert await processed(db, running.consumer.group_id, event) == 1


async def test_a_poison_record_goes_to_the_dlq_and_the_next_record_is_processed(infra, db, topic, unique, publisher):
    dlq = await TopicReader(infra.kafka_bootstrap_servers, dlq_topic(topic)).start(from_end=False)
    async with Running(infra, db, topic, unique) as running:
        await publisher.publish(b"{not json", topic=topic, key=b"poison", headers={"x-origin": "test"})
        await publish_event(publisher, help_requested("hr-good"), topic)
        await eventually(lambda: running.effects("hr-good"))
    (record,) = await dlq.until(lambda r: r.key == b"poison")
    await dlq.stop()
    headers = {k: v.decode() for k, v in record.headers}
    assert record.value == b"{not json"
    assert headers["ido-dlq-reason"].startswith("not a valid CloudEvent")
    assert headers["ido-dlq-topic"] == topic and headers["x-origin"] == "test"


async def test_event_data_failing_its_schema_is_dead_lettered_without_its_values(infra, db, topic, unique, publisher):
    event = help_requested("hr-bad").model_copy(
        update={"data": {"help_request_id": "hr-bad", "library": "a-value-not-to-repeat"}}
    )
    dlq = await TopicReader(infra.kafka_bootstrap_servers, dlq_topic(topic)).start(from_end=False)
    async with Running(infra, db, topic, unique) as running:
        await publish_event(publisher, event, topic)
        (record,) = await dlq.until(lambda r: r.key == b"hr-bad")
        assert await running.effects("hr-bad") == 0
    await dlq.stop()
    reason = dict(record.headers)["ido-dlq-reason"].decode()
    assert "channel" in reason and "questions" in reason and "a-value-not-to-repeat" not in reason


async def test_an_unknown_event_type_and_a_bsn_in_the_data_are_dead_lettered_at_once(
    infra, db, topic, unique, publisher
):
    valid = help_requested("hr-bsn")
    with_bsn = valid.model_copy(update={"data": {**valid.data, "note": "zijn BSN is 111222333"}})
    unknown = help_requested("hr-unknown").model_copy(update={"type": "nl.ido.NoSuchThing"})
    dlq = await TopicReader(infra.kafka_bootstrap_servers, dlq_topic(topic)).start(from_end=False)
    async with Running(infra, db, topic, unique) as running:
        await publish_event(publisher, with_bsn, topic)
        await publish_event(publisher, unknown, topic)
        parked = await dlq.until(lambda r: r.key in (b"hr-bsn", b"hr-unknown"), count=2)
        assert await running.effects("hr-bsn") == 0
    await dlq.stop()
    reasons = {r.key: dict(r.headers)["ido-dlq-reason"].decode() for r in parked}
    assert reasons[b"hr-unknown"] == "unknown event type nl.ido.NoSuchThing"
    assert "BSN" in reasons[b"hr-bsn"] and "111222333" not in reasons[b"hr-bsn"]


async def test_transient_failures_are_retried_with_backoff(infra, db, topic, unique, publisher):
    attempts = []

    async def flaky(event, data, uow):
        await count(event, data, uow)  # written, then rolled back with the failure
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("database briefly away")

    async with Running(infra, db, topic, unique, handler=flaky, max_attempts=4) as running:
        await publish_event(publisher, help_requested("hr-flaky"), topic)
        await eventually(lambda: running.effects("hr-flaky"))
    assert len(attempts) == 3
    assert await running.effects("hr-flaky") == 1, "the failed attempts' writes were rolled back"


async def test_a_dependency_failure_holds_the_record_past_every_attempt_and_never_dead_letters_it(
    infra, db, topic, unique, publisher
):
    """The database away for longer than all attempts together: the record is not at fault. It
    waits (with the batch) and is applied once the dependency is back, not dead-lettered."""
    failures = [
        ConnectionRefusedError("database down"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.SerializationError("could not serialize access"),
        TimeoutError("no connection from the pool in time"),
    ] * 3  # 12 failures against max_attempts=2

    async def away_for_a_while(event, data, uow):
        await count(event, data, uow)
        if failures:
            raise failures.pop(0)

    dlq = await TopicReader(infra.kafka_bootstrap_servers, dlq_topic(topic)).start(from_end=True)
    async with Running(infra, db, topic, unique, handler=away_for_a_while, max_attempts=2, max_backoff_seconds=0.05):
        await publish_event(publisher, help_requested("hr-held"), topic)
        await publish_event(publisher, help_requested("hr-after"), topic)
        await eventually(lambda: running_effects(db, "hr-after"), timeout=20)
    assert failures == [], "every failure was met"
    assert await running_effects(db, "hr-held") == 1, "applied once, after the dependency came back"
    assert await dlq.until(lambda r: True, timeout=2) == [], "nothing was dead-lettered"
    await dlq.stop()


async def running_effects(db, key: str) -> int:
    return await db.fetchval("SELECT coalesce(sum(n), 0) FROM effects WHERE key = $1", key)


async def test_after_the_last_attempt_the_event_is_dead_lettered_and_the_consumer_carries_on(
    infra, db, topic, unique, publisher
):
    async def broken(event, data, uow):
        await count(event, data, uow)
        if data.help_request_id == "hr-broken":
            raise RuntimeError("cannot do this")

    async def refuses(event, data, uow):
        raise PermanentError("refers to an unknown library")

    dlq = await TopicReader(infra.kafka_bootstrap_servers, dlq_topic(topic)).start(from_end=False)
    async with Running(infra, db, topic, unique, handler=broken, max_attempts=3) as running:
        broken_event = help_requested("hr-broken")
        await publish_event(publisher, broken_event, topic)
        await publish_event(publisher, help_requested("hr-next"), topic)
        await eventually(lambda: running.effects("hr-next"))
    (record,) = await dlq.until(lambda r: r.key == b"hr-broken")
    headers = {k: v.decode() for k, v in record.headers}
    assert headers["ido-dlq-attempts"] == "3"
    assert headers["ido-dlq-reason"] == "failed after 3 attempts: RuntimeError: cannot do this"
    assert json.loads(record.value)["id"] == str(broken_event.id)
    assert await processed(db, f"test-{unique}", broken_event) == 0
    assert await running.effects("hr-broken") == 0, "nothing of a dead-lettered event was applied"

    async with Running(infra, db, topic, f"{unique}-2", handler=refuses, max_attempts=5):
        await publish_event(publisher, help_requested("hr-refused"), topic)
        (refused,) = await dlq.until(lambda r: r.key == b"hr-refused")
    await dlq.stop()
    assert dict(refused.headers)["ido-dlq-attempts"] == b"1"


async def test_records_of_long_processed_events_are_forgotten(infra, db, topic, unique, publisher):
    from datetime import UTC, datetime, timedelta

    async with Running(infra, db, topic, unique) as running:
        event = help_requested("hr-old")
        await publish_event(publisher, event, topic)
        await eventually(lambda: running.effects("hr-old"))
        assert await running.consumer.forget_processed_before(datetime.now(UTC) - timedelta(hours=1)) == 0
        assert await running.consumer.forget_processed_before(datetime.now(UTC) + timedelta(seconds=1)) >= 1
        assert await processed(db, running.consumer.group_id, event) == 0


async def test_two_consumers_of_one_group_apply_each_event_once(infra, db, topic, unique, publisher):
    """Two instances of a service share the group: partitions are split, and the processed
    record (primary key, same transaction) holds even when both see one event."""
    events = [help_requested(f"hr-pair-{i}") for i in range(30)]
    async with Running(infra, db, topic, unique) as first, Running(infra, db, topic, unique):
        for event in events:
            await publish_event(publisher, event, topic)
        await publish_event(publisher, events[0], topic)  # one re-delivery on top
        await eventually(lambda: first.db.fetchval("SELECT count(*) = 30 FROM effects"), timeout=30)
    assert await db.fetchval("SELECT sum(n) FROM effects") == 30


async def test_the_same_event_handled_at_once_by_two_units_of_work_has_one_effect(db):
    """The race of two instances on one event, without Kafka: the second insert of the
    processed record waits for the first transaction and then finds it."""
    import asyncio

    await db.pool.execute("CREATE TABLE effects (key text PRIMARY KEY, n int NOT NULL)")
    event = help_requested("hr-race")
    data = HelpRequested.model_validate(event.data)
    consumer = EventConsumer(None, db, group_id="race")  # type: ignore[arg-type]
    results = await asyncio.gather(*(consumer._handle_once(count, event, data) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await db.fetchval("SELECT n FROM effects WHERE key = 'hr-race'") == 1


async def test_a_folded_batch_counts_each_event_once_and_dead_letters_only_the_poison(
    infra, db, topic, unique, publisher
):
    """subscribe_folded: the new events of a batch in one unit of work; a fold that fails on one
    event falls back to event by event, so only that one reaches the DLQ."""
    await db.pool.execute("CREATE TABLE IF NOT EXISTS effects (key text PRIMARY KEY, n int NOT NULL)")

    async def fold(events, uow) -> None:
        if any(d.help_request_id == "hr-poison" for _, d in events):
            raise RuntimeError("cannot fold this one")
        for event, data in events:
            await count(event, data, uow)

    broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-folded")
    consumer = EventConsumer(broker, db, group_id=f"test-{unique}", backoff_seconds=0.01, max_attempts=2)
    consumer.subscribe_folded({topic: ("HelpRequested",)}, fold)
    dlq = await TopicReader(infra.kafka_bootstrap_servers, dlq_topic(topic)).start(from_end=False)
    events = [help_requested(f"hr-f{i}") for i in range(40)]
    poison = help_requested("hr-poison")
    for event in [*events[:20], poison, events[0], *events[20:], events[5]]:
        await publish_event(publisher, event, topic)
    await broker.start()
    try:
        await eventually(lambda: db.fetchval("SELECT count(*) = 40 FROM effects"), timeout=30)
        (record,) = await dlq.until(lambda r: r.key == b"hr-poison")
    finally:
        await broker.stop()
        await dlq.stop()
    assert await db.fetchval("SELECT sum(n) FROM effects") == 40, "each event once, duplicates included"
    assert dict(record.headers)["ido-dlq-reason"].decode().startswith("failed after 2 attempts")


async def test_a_folded_batch_is_held_while_the_database_is_away(infra, db, topic, unique, publisher):
    await db.pool.execute("CREATE TABLE IF NOT EXISTS effects (key text PRIMARY KEY, n int NOT NULL)")
    failures = [ConnectionResetError("connection lost")] * 6

    async def fold(events, uow) -> None:
        for event, data in events:
            await count(event, data, uow)
        if failures:
            raise failures.pop(0)

    broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-folded")
    consumer = EventConsumer(
        broker, db, group_id=f"test-{unique}", backoff_seconds=0.01, max_attempts=2, max_backoff_seconds=0.05
    )
    consumer.subscribe_folded({topic: ("HelpRequested",)}, fold)
    dlq = await TopicReader(infra.kafka_bootstrap_servers, dlq_topic(topic)).start(from_end=True)
    for i in range(10):
        await publish_event(publisher, help_requested(f"hr-h{i}"), topic)
    await broker.start()
    try:
        await eventually(lambda: db.fetchval("SELECT count(*) = 10 FROM effects WHERE key LIKE 'hr-h%'"), timeout=20)
    finally:
        await broker.stop()
    assert await db.fetchval("SELECT sum(n) FROM effects WHERE key LIKE 'hr-h%'") == 10, "each once"
    assert await dlq.until(lambda r: True, timeout=2) == []
    await dlq.stop()


async def test_an_idle_group_commits_its_last_batches_so_its_committed_lag_reaches_zero(
    infra, db, topic, unique, publisher
):
    """Offsets are committed every `commit_seconds` at most; what was handled after the last
    commit is committed too once the group goes idle (its committed lag is what an autoscaler
    reads), with the batches' own offsets."""
    events = [help_requested(f"hr-idle-{unique}-{n}") for n in range(5)]
    async with Running(infra, db, topic, unique, commit_seconds=5.0) as running:
        for event in events:
            await publish_event(publisher, event, topic)
            await eventually(lambda event=event: processed(db, running.consumer.group_id, event))
        ends = await latest_offsets(infra.kafka_bootstrap_servers, [topic])

        async def committed_to_the_end() -> bool:
            admin = admin_client(infra.kafka_bootstrap_servers)
            await admin.start()
            try:
                committed = await admin.list_consumer_group_offsets(running.consumer.group_id)
            finally:
                await admin.close()
            return all(committed.get(tp) and committed[tp].offset >= end for tp, end in ends.items() if end)

        assert not await committed_to_the_end(), "the first batch committed at once, the later ones wait"
        await eventually(committed_to_the_end, timeout=20)
