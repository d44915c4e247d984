"""The idempotent consumer: every subscription of every service goes through here.

For each record:
1. parse the CloudEvent and validate its data against the event type's model; a record that
   cannot be parsed goes straight to `<topic>.dlq` with the reason;
2. in one unit of work (transaction): record (consumer group, CloudEvent id) in
   `processed_events` and run the handler; if the id was recorded before (a re-delivery, or
   another instance of the group got there first) nothing more happens. The record and the
   handler's writes and events commit together, so an event is applied exactly once;
3. a failing handler rolls back. If a dependency failed (database or broker unavailable, a lost
   serialization race: shared.failures), the record is not at fault: it is held, and the batch
   with it (its partitions fetch nothing meanwhile), and tried again with backoff until the
   dependency is back, however long that takes. Any other failure is retried a few times with
   exponential backoff, then the record is dead-lettered with the reason;
4. records arrive in batches; one entity's (one key's) records are handled in order, other
   keys side by side; offsets are committed only once a batch was handled, at most every
   IDO_CONSUMER_COMMIT_SECONDS (what was handled since is skipped as a duplicate if read again).
"""

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from aiokafka import TopicPartition
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy
from pydantic import ValidationError

from shared.db import Database
from shared.events.catalog import EVENT_TYPES, EventData, data_model, dlq_topic
from shared.events.envelope import CloudEvent, InvalidEvent, parse_event
from shared.failures import is_transient
from shared.logging import bound_context, get_logger
from shared.metrics import CONSUMER_LAG, EVENTS_CONSUMED, EVENTS_DEAD_LETTERED, EVENTS_RETRIED, type_name
from shared.privacy import contains_bsn
from shared.tracing import consuming, folding
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

V = TypeVar("V")
# A handler gets the event, its validated data and the unit of work it runs in.
Handler = Callable[[CloudEvent, Any, UnitOfWork], Awaitable[None]]
# A fold gets a batch's new events, in order, and one unit of work for all of them.
Fold = Callable[[list[tuple[CloudEvent, Any]], UnitOfWork], Awaitable[None]]


class PermanentError(Exception):
    """The event can never be processed (e.g. it refers to something that cannot exist):
    retrying is pointless, so it goes to the DLQ at once."""


_IDENTIFIER = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _holds_bsn(value: Any, key: str = "") -> bool:
    """Any text in the event's data with a BSN. Not its identifiers (a UUID's digit groups can
    pass the elfproef) nor its sealed part (ciphertext): those are not text anyone typed."""
    if isinstance(value, str):
        identifier = key == "id" or key.endswith("_id") or _IDENTIFIER.fullmatch(value)
        return not identifier and contains_bsn(value)
    if isinstance(value, dict):
        return any(_holds_bsn(v, k) for k, v in value.items() if k != "sealed")
    if isinstance(value, list):
        return any(_holds_bsn(v, key) for v in value)
    return False


class TopicMap(dict[str, V]):
    """What to do with each topic's records (handlers, or the event types a fold takes): the
    topics named, and for any other topic of a pattern subscription `for_other(topic)`, made
    when its first record comes."""

    def __init__(self, named: dict[str, V], for_other: Callable[[str], V]) -> None:
        super().__init__(named)
        self.for_other = for_other

    def __missing__(self, topic: str) -> V:
        self[topic] = value = self.for_other(topic)
        return value


async def _raw_records(msg: Any) -> tuple[Any, ...]:
    # Keep the records as they came: decoding is ours, so an unparseable one reaches the DLQ.
    return msg.raw_message


class EventConsumer:
    def __init__(
        self,
        broker: KafkaBroker,
        db: Database,
        *,
        group_id: str,
        max_attempts: int = 4,
        backoff_seconds: float = 0.2,
        batch_size: int = 200,
        batch_wait_ms: int = 10,
        commit_seconds: float = 1.0,
        concurrency: int = 8,
        max_backoff_seconds: float = 5.0,
        on_handled: Callable[[], None] = lambda: None,
    ) -> None:
        self.broker = broker
        self.db = db
        self.group_id = group_id
        self.max_attempts = max_attempts
        self.backoff_seconds = backoff_seconds
        self.batch_size = batch_size
        self.batch_wait_ms = batch_wait_ms
        self.commit_seconds = commit_seconds
        self._committed_at: dict[int, float] = {}  # per Kafka consumer (one per subscriber)
        self.concurrency = concurrency
        self.max_backoff_seconds = max_backoff_seconds
        self.on_handled = on_handled
        self.closing = False  # set at shutdown: every batch handled from then on is committed
        # Per Kafka consumer: the next offset of every partition handled since its last commit.
        self._uncommitted: dict[int, tuple[Any, dict[TopicPartition, int]]] = {}
        self._flushes: dict[int, asyncio.Task[None]] = {}
        self._busy: set[int] = set()  # Kafka consumers with a batch in hand

    def subscribe(self, topic: str, handlers: dict[str, Handler]) -> None:
        """Route the event types named in `handlers` on `topic`; other types are skipped."""
        self.subscribe_many({topic: handlers})

    def subscribe_many(self, handlers_by_topic: dict[str, dict[str, Handler]]) -> None:
        """One Kafka subscriber (one group member) for several topics: a member per topic would
        make every start wait for a rebalance per member. Records come in batches; the offsets
        of a batch are committed once all of it was processed."""

        @self._batches_of(*handlers_by_topic)
        async def consume(records: Any, msg: KafkaMessage) -> None:
            await self._then_commit(msg, self.process_batch(msg.raw_message, handlers_by_topic))

    def subscribe_pattern(self, pattern: str, handlers_by_topic: "TopicMap[dict[str, Handler]]") -> None:
        """One subscriber for every topic whose name matches `pattern` (a regular expression),
        also topics created later (seen within KAFKA_METADATA_MAX_AGE_MS, and read from their
        start)."""

        @self._batches_of(pattern=pattern)
        async def consume(records: Any, msg: KafkaMessage) -> None:
            await self._then_commit(msg, self.process_batch(msg.raw_message, handlers_by_topic))

    def _batches_of(self, *topics: str, pattern: str | None = None) -> Any:
        """A subscriber of this consumer's group reading `topics` (or those matching `pattern`)
        in batches of raw records."""
        return self.broker.subscriber(
            *topics,
            pattern=pattern,
            group_id=self.group_id,
            auto_offset_reset="earliest",
            batch=True,
            max_records=self.batch_size,
            # FastStream sleeps this long again after an empty poll: short, or every hop waits.
            batch_timeout_ms=self.batch_wait_ms,
            decoder=_raw_records,
            ack_policy=AckPolicy.MANUAL,  # _then_commit commits
        )

    async def process_batch(self, records: Any, handlers_by_topic: dict[str, dict[str, Handler]]) -> None:
        """Records of one key (one entity) in order, different keys side by side (each event is
        its own transaction, so this hides the round trips). If a record could not even be
        dead-lettered, the exception propagates: the batch's offsets are not committed and it is
        read again; what was processed meanwhile is skipped then as a duplicate."""
        by_key: dict[Any, list[Any]] = {}
        for record in records:
            by_key.setdefault(record.key, []).append(record)
        slots = asyncio.Semaphore(self.concurrency)

        async def in_order(same_key: list[Any]) -> None:
            async with slots:
                for r in same_key:
                    await self.process(r.topic, r.value, r, handlers_by_topic[r.topic])

        results = await asyncio.gather(*(in_order(rs) for rs in by_key.values()), return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    def subscribe_folded(
        self, types_by_topic: dict[str, tuple[str, ...]], fold: Fold, *, pattern: str | None = None
    ) -> None:
        """For read models that sum events up: a whole batch in ONE unit of work (its new events
        folded together, their processed records inserted at once), instead of a transaction
        per event that would queue on the same counter rows. A batch that keeps failing is
        handled event by event, so only a poison event reaches the DLQ. With `pattern`, the
        topics matching it (`types_by_topic` a TopicMap that knows each)."""

        @self._batches_of(*([] if pattern else types_by_topic), pattern=pattern)
        async def consume(records: Any, msg: KafkaMessage) -> None:
            await self._then_commit(msg, self.process_folded(msg.raw_message, types_by_topic, fold))

    async def _then_commit(self, msg: KafkaMessage, processing: Awaitable[None]) -> None:
        """Process the batch, then commit the group's offsets: every `commit_seconds` at most.
        Records processed but not yet committed are read again after a crash or a rebalance and
        skipped as duplicates (their processed records), so committing less often loses nothing
        and saves the broker a request per batch. A batch that failed rewinds its partitions."""
        consumer = id(msg.consumer)
        self._busy.add(consumer)
        try:
            await processing
        except BaseException:
            await msg.nack()
            raise
        finally:
            self._busy.discard(consumer)
        handled: dict[TopicPartition, int] = {}  # the next offset of each partition of the batch
        for record in msg.raw_message:
            tp = TopicPartition(record.topic, record.partition)
            handled[tp] = max(handled.get(tp, 0), record.offset + 1)
        CONSUMER_LAG.handled(msg.consumer, handled)
        uncommitted = self._uncommitted.setdefault(consumer, (msg.consumer, {}))[1]
        for tp, offset in handled.items():
            uncommitted[tp] = max(uncommitted.get(tp, 0), offset)
        now = asyncio.get_running_loop().time()
        if self.closing or now - self._committed_at.get(consumer, float("-inf")) >= self.commit_seconds:
            await self._commit(consumer)
        elif consumer not in self._flushes:
            self._flushes[consumer] = asyncio.create_task(self._commit_later(consumer))

    async def _commit(self, consumer: int) -> None:
        """Commit the offsets of what this consumer handled: explicit offsets, never its position,
        which may already be past records fetched and not yet handled."""
        kafka, offsets = self._uncommitted.pop(consumer, (None, {}))
        if offsets:
            self._committed_at[consumer] = asyncio.get_running_loop().time()
            await kafka.commit(offsets)

    async def _commit_later(self, consumer: int) -> None:
        """A group that goes idle commits its last batches too: otherwise its committed lag,
        which an autoscaler reads, would never come down to zero."""
        try:
            await asyncio.sleep(self.commit_seconds)
            if consumer not in self._busy:  # else the batch in hand commits when done
                await self._commit(consumer)
        except Exception as exc:
            # Revoked meanwhile, or the broker away: the records are read again and skipped.
            log.info("deferred commit failed", error=type(exc).__name__)
        finally:
            self._flushes.pop(consumer, None)

    async def close(self) -> None:
        """At shutdown, before the broker stops: commit what was handled and not yet committed
        (a batch still in hand commits itself when done), so a restart re-reads nothing."""
        self.closing = True
        for task in list(self._flushes.values()):
            task.cancel()
        for consumer in list(self._uncommitted):
            if consumer not in self._busy:
                # Not committed (a rebalance, a broker away): re-read after the restart and skipped.
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._commit(consumer), timeout=2)

    async def process_folded(self, records: Any, types_by_topic: dict[str, tuple[str, ...]], fold: Fold) -> None:
        valid: list[tuple[Any, CloudEvent, Any]] = []
        for record in records:
            decoded = await self._decode(record.topic, record.value, record, types_by_topic[record.topic])
            if decoded is not None:
                valid.append((record, *decoded))
        if not valid:
            return

        async def fold_all() -> list[tuple[Any, CloudEvent, Any]]:
            async with self.db.unit_of_work() as uow:
                new = await uow.first_deliveries(self.group_id, [event.id for _, event, _ in valid])
                batch, seen = [], set()
                for record, event, data in valid:
                    if event.id in new and event.id not in seen:
                        seen.add(event.id)
                        batch.append((record, event, data))
                if batch:
                    await fold([(event, data) for _, event, data in batch], uow)
                return batch

        attempt, held = 0, 0
        while attempt < self.max_attempts:
            try:
                with folding([event for _, event, _ in valid], valid[0][0].topic):
                    folded = await fold_all()
                log.info("events folded", events=len(folded), duplicates=len(valid) - len(folded), attempts=attempt + 1)
                new = {event.id for _, event, _ in folded}
                for record, event, _ in valid:
                    _consumed(record.topic, event, "handled" if event.id in new else "duplicate")
                for _ in folded:
                    self.on_handled()
                return
            except Exception as exc:
                if is_transient(exc) and not isinstance(exc, PermanentError):
                    held += 1
                    EVENTS_RETRIED.labels("batch", "dependency").inc()
                    await self._hold(exc, held)
                    continue
                attempt += 1
                EVENTS_RETRIED.labels("batch", "error").inc()
                log.warning("batch failed; retrying", attempt=attempt, error=type(exc).__name__)
                if isinstance(exc, PermanentError) or attempt == self.max_attempts:
                    break
                await asyncio.sleep(self.backoff_seconds * 2 ** (attempt - 1))

        async def one(event: CloudEvent, data: Any, uow: UnitOfWork) -> None:
            await fold([(event, data)], uow)

        for record, event, data in valid:  # one by one: the poison one is dead-lettered alone
            with (
                consuming(event, record.topic),
                bound_context(event_id=str(event.id), event_type=event.type, correlation_id=event.correlationid),
            ):
                if await self._handle_with_retries(record.topic, record.value, record, one, event, data):
                    self.on_handled()

    async def _decode(self, topic: str, body: bytes, record: Any, types: Any) -> tuple[CloudEvent, Any] | None:
        """The event and its validated data; None for another consumer's type, or after a record
        that can never be processed went to the DLQ."""
        try:
            event = parse_event(body)
        except InvalidEvent as exc:
            await self.dead_letter(topic, body, record, str(exc), attempts=0)
            return None
        if event.name not in EVENT_TYPES:
            await self.dead_letter(topic, body, record, f"unknown event type {event.type[:100]}", attempts=0)
            return None
        if event.name not in types:
            return None  # another consumer's event type on a shared topic
        if _holds_bsn(event.data):
            reason = "data holds what looks like a BSN; the IDO may not process one (not read further)"
            await self.dead_letter(topic, body, record, reason, attempts=0)
            return None
        try:
            return event, data_model(event.name).model_validate(event.data)
        except ValidationError as exc:
            with bound_context(event_id=str(event.id), event_type=event.type):
                await self.dead_letter(topic, body, record, _fields_reason(exc), attempts=0)
            return None

    async def process(self, topic: str, body: bytes, record: Any, handlers: dict[str, Handler]) -> None:
        decoded = await self._decode(topic, body, record, handlers)
        if decoded is None:
            return  # dead-lettered, or another consumer's event type on a shared topic
        event, data = decoded
        with (
            consuming(event, topic),
            bound_context(event_id=str(event.id), event_type=event.type, correlation_id=event.correlationid),
        ):
            if await self._handle_with_retries(topic, body, record, handlers[event.name], event, data):
                self.on_handled()

    async def _handle_with_retries(
        self, topic: str, body: bytes, record: Any, handler: Handler, event: CloudEvent, data: EventData
    ) -> bool:
        attempt, held = 0, 0
        while True:
            try:
                if await self._handle_once(handler, event, data):
                    log.info("event handled", attempts=attempt + 1, held=held)
                    _consumed(topic, event, "handled")
                else:
                    log.info("duplicate event skipped")
                    _consumed(topic, event, "duplicate")
                return True
            except PermanentError as exc:
                await self.dead_letter(topic, body, record, f"permanent: {exc}", attempts=attempt + 1)
                return False
            except Exception as exc:
                if is_transient(exc):
                    held += 1
                    EVENTS_RETRIED.labels(event.name, "dependency").inc()
                    await self._hold(exc, held)
                    continue
                attempt += 1
                if attempt < self.max_attempts:
                    EVENTS_RETRIED.labels(event.name, "error").inc()
                if attempt == self.max_attempts:
                    reason = f"failed after {attempt} attempts: {type(exc).__name__}: {exc}"
                    await self.dead_letter(topic, body, record, reason, attempts=attempt)
                    return False
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                log.warning("event handling failed; retrying", attempt=attempt, delay=delay, error=type(exc).__name__)
                await asyncio.sleep(delay)

    async def _hold(self, exc: BaseException, held: int) -> None:
        """A dependency is unavailable: wait (backing off up to `max_backoff_seconds`) and let the
        caller try the same work again. The record is not at fault and is never dead-lettered."""
        delay = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** min(held - 1, 16))
        log.warning("dependency unavailable; holding the batch", error=type(exc).__name__, tries=held, retry_in=delay)
        await asyncio.sleep(delay)

    async def _handle_once(self, handler: Handler, event: CloudEvent, data: EventData) -> bool:
        """One transaction: the processed record, the handler's writes and its events."""
        async with self.db.unit_of_work() as uow:
            if not await uow.first_delivery(self.group_id, event.id):
                return False
            await handler(event, data, uow)
        return True

    async def forget_processed_before(self, moment: datetime) -> int:
        """Drop records of events processed before `moment` (older than any re-delivery)."""
        result = await self.db.pool.execute("DELETE FROM processed_events WHERE processed_at < $1", moment)
        return int(result.split()[-1])

    async def dead_letter(self, topic: str, body: bytes, record: Any, reason: str, *, attempts: int) -> None:
        """Write the record unchanged, with its headers and the reason, to `<topic>.dlq`.
        If that fails the exception propagates: the offset is not committed and the record
        is read again, so nothing is lost."""
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (getattr(record, "headers", None) or [])}
        headers.update(
            {
                "ido-dlq-reason": reason[:1000],
                "ido-dlq-topic": topic,
                "ido-dlq-partition": str(getattr(record, "partition", "")),
                "ido-dlq-offset": str(getattr(record, "offset", "")),
                "ido-dlq-consumer": self.group_id,
                "ido-dlq-attempts": str(attempts),
            }
        )
        await self.broker.publish(body, topic=dlq_topic(topic), key=getattr(record, "key", None), headers=headers)
        EVENTS_DEAD_LETTERED.labels(topic, type_name(_type_of(body))).inc()
        log.error("event dead-lettered", topic=topic, reason=reason[:200])


def _consumed(topic: str, event: CloudEvent, outcome: str) -> None:
    EVENTS_CONSUMED.labels(topic, event.name, outcome).inc()


def _type_of(body: bytes) -> str | None:
    """The CloudEvent type of a record about to be dead-lettered, if it has a known one: the
    metric's label is then bounded by the catalog, whatever a broken record says."""
    with contextlib.suppress(ValueError, AttributeError):
        kind = json.loads(body).get("type")
        if isinstance(kind, str) and type_name(kind) in EVENT_TYPES:
            return kind
    return None


def _fields_reason(exc: ValidationError) -> str:
    # Field locations only: the values may be personal data and must not reach logs or headers.
    fields = sorted({".".join(map(str, e["loc"])) for e in exc.errors()})
    return "invalid event data: " + ", ".join(fields)
