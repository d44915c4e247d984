"""Rebuilding the read models from the start of every topic into a new version, inside the
reporting service, while the live consumer keeps the active version up to date.

1. Begin: a new version ('building'). One rebuild at a time across instances: the rebuilding
   instance holds an advisory lock for the whole run (released if it dies, so the next start
   abandons what it left) and the versions table allows one unfinished version.
2. Replay every partition from its beginning to its end offset taken now, in large batches:
   read up to `batch_size` records, decode them the way the live consumer does (skipping what
   it would skip or dead-letter), fold them into one change per row with the pure projections,
   and write each table once per batch (multi-row upserts) together with the batch's marks
   (`applied_events`) and the progress, in one transaction. Decoding the next batch overlaps
   with writing this one. Nothing is written per event.
3. Go live: the live consumer applies events to the new version too; replay on to the end
   offsets taken after that. The marks make each event count once in the new version, whether
   the replay or the live consumer (any instance) got to it first.
4. Swap in one transaction (`active_version`), then drop the replaced version's rows.
Readers only ever query the active version: the old one, complete, until the swap."""

import asyncio
import contextlib
import functools
import gc
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Union

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import Field, TypeAdapter, ValidationError, create_model

from services.reporting.adapters.repository import ReadModels
from services.reporting.adapters.versions import ReadModelVersions
from services.reporting.domain.projections import Changes, changes_of
from shared.db import Database, connect
from shared.events.catalog import data_model
from shared.events.envelope import TYPE_PREFIX, CloudEvent
from shared.kafka import consumer_client, earliest_offsets, topic_partitions
from shared.logging import get_logger

log = get_logger(__name__)

# Session advisory lock held by the instance that rebuilds (one key per database).
REBUILD_LOCK_KEY = 0x1D0_0B0E
# Records decoded between two yields to the event loop, so the writer's round trips go on.
DECODE_CHUNK = 100
# While replaying, the youngest generation is collected after this many allocations rather than
# 700: a replay allocates millions of short-lived objects, and collecting every few hundred of
# them costs a third of the replay's CPU. Restored afterwards.
REPLAY_GC_THRESHOLD = 20_000


class Decoder:
    """A record as the live consumer sees it: (event, data) for an event type it handles on that
    topic, None for what it would skip (another type) or dead-letter (an invalid CloudEvent or
    data failing its type's schema). One validation per record: per topic, a union of envelope
    models whose `type` and `data` are those of the handled event types."""

    def __init__(self, subscriptions: Mapping[str, Iterable[str]]) -> None:
        self.adapters = {topic: _envelopes(tuple(names)) for topic, names in subscriptions.items() if names}

    def __call__(self, topic: str, value: bytes) -> tuple[CloudEvent, Any] | None:
        adapter = self.adapters.get(topic)
        if adapter is None:
            return None
        try:
            event = adapter.validate_json(value)
        except ValidationError:
            return None
        return event, event.data


@functools.cache
def _envelope(name: str) -> type[CloudEvent]:
    # Types made at run time (one Literal per event name): beyond what mypy can check.
    return create_model(
        f"{name}Envelope",
        __base__=CloudEvent,
        type=(Literal[f"{TYPE_PREFIX}{name}"], ...),  # type: ignore[arg-type, misc, maybe-unrecognized-str-typeform]
        data=(data_model(name), ...),
    )


def _envelopes(names: tuple[str, ...]) -> TypeAdapter:
    models = tuple(_envelope(name) for name in dict.fromkeys(names))
    if len(models) == 1:
        return TypeAdapter(models[0])
    return TypeAdapter(Annotated[Union[models], Field(discriminator="type")])  # type: ignore[arg-type]  # noqa: UP007


@dataclass
class Batch:
    """Records read at once: how many, the handled events' ids, times and raw values (each id
    once), and their changes folded. Only bytes, strings and the folded rows are kept, so the
    decoded events are freed chunk by chunk (a rebuild decodes millions)."""

    records: int
    ids: list[str]
    times: list[datetime]
    values: list[tuple[str, bytes]]
    changes: Changes


class Incomplete(Exception):
    """The topics no longer hold every event: a rebuild from them would be wrong."""

    def __init__(self, partitions: list[str]) -> None:
        super().__init__(
            "a rebuild needs every event since the first, and these partitions have lost their first records: "
            + "; ".join(partitions)
        )
        self.partitions = partitions


class Rebuild:
    """Starts rebuilds (one at a time, across instances) and reports their progress."""

    def __init__(
        self,
        db: Database,
        subscriptions: Mapping[str, Iterable[str]] | Callable[[], Awaitable[Mapping[str, Iterable[str]]]],
        bootstrap: str,
        *,
        consumer_group: str,
        retention: timedelta,
        batch_size: int = 5000,
    ) -> None:
        self.db = db
        # Fixed, or asked for at each rebuild (referral topics come with new partners).
        self._current = subscriptions if callable(subscriptions) else None
        self.subscriptions = {} if callable(subscriptions) else self._named(subscriptions)
        self.bootstrap = bootstrap
        self.consumer_group = consumer_group
        self.retention = retention
        self.batch_size = batch_size
        self._task: asyncio.Task[None] | None = None

    async def _locked_connection(self) -> asyncpg.Connection | None:
        conn = await connect(self.db.url, self.db.passfile)
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", REBUILD_LOCK_KEY):
            return conn
        await conn.close()
        return None

    async def recover(self) -> None:
        """At start: abandon what a rebuilding instance that died left (none holds the lock)."""
        conn = await self._locked_connection()
        if conn is not None:
            try:
                await _abandon_unfinished(conn)
            finally:
                await conn.close()

    @staticmethod
    def _named(subscriptions: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
        return {topic: tuple(names) for topic, names in subscriptions.items()}

    async def refresh(self) -> None:
        if self._current is not None:
            self.subscriptions = self._named(await self._current())

    async def begin(self) -> "RebuildRun | None":
        """A rebuild with its new version; None while another one runs (here or elsewhere)."""
        await self.refresh()
        conn = await self._locked_connection()
        if conn is None:
            return None
        try:
            await _abandon_unfinished(conn)
            version = await ReadModelVersions(conn).begin()
        except BaseException:
            await conn.close()
            raise
        if version is None:
            await conn.close()
            return None
        return RebuildRun(self, conn, version)

    async def start(self) -> bool:
        """Begin a rebuild and run it in the background; False if one is running already.
        Refused (`Incomplete`) if a topic no longer holds its first records."""
        await self.check_complete()
        run = await self.begin()
        if run is None:
            return False
        self._task = asyncio.create_task(self._complete(run), name="reporting-rebuild")
        return True

    async def check_complete(self) -> None:
        """A rebuild replays every topic from its first record: a partition whose earliest
        offset is not 0 has lost records (retention or deletion) and would give wrong figures."""
        await self.refresh()
        earliest = await earliest_offsets(self.bootstrap, list(self.subscriptions))
        lost = sorted(f"{tp.topic}[{tp.partition}] starts at offset {at}" for tp, at in earliest.items() if at)
        if lost:
            raise Incomplete(lost)

    @staticmethod
    async def _complete(run: "RebuildRun") -> None:
        with contextlib.suppress(Exception):  # logged, and the state says 'failed'
            await run.complete()

    async def status(self) -> dict[str, Any]:
        async with self.db.pool.acquire() as conn:
            return await ReadModelVersions(conn).status()


async def _abandon_unfinished(conn: asyncpg.Connection) -> None:
    """Under the rebuild lock: what a rebuilding instance that died left is abandoned, and the
    rows of versions replaced or abandoned earlier (if their deletion was interrupted) dropped."""
    versions = ReadModelVersions(conn)
    for version in await versions.unfinished():
        await versions.fail(version)
        log.warning("unfinished rebuild abandoned", version=version)
    await _drop_unused(versions, ReadModels(conn))


async def _drop_unused(versions: ReadModelVersions, read_models: ReadModels) -> None:
    for version in await versions.to_drop():
        await read_models.drop(version)
        await versions.dropped(version)


class RebuildRun:
    """One rebuild on its own connection (holding the rebuild lock): replay, go live, replay the
    rest, swap. `complete()` runs the steps; tests may run them one by one."""

    def __init__(self, rebuild: Rebuild, conn: asyncpg.Connection, version: int) -> None:
        self.rebuild = rebuild
        self.conn = conn
        self.version = version
        self.versions = ReadModelVersions(conn)
        self.read_models = ReadModels(conn)
        self.decode = Decoder(rebuild.subscriptions)
        self.processed = 0
        self.total = 0
        self._consumer: AIOKafkaConsumer | None = None
        self._beginnings: dict[TopicPartition, int] = {}

    async def complete(self) -> None:
        try:
            await self.replay()
            await self.go_live()
            await self.replay()
            await self.swap()
            log.info("read models rebuilt", version=self.version, records=self.processed)
        except BaseException:
            log.exception("rebuild failed; the active read models are unchanged", version=self.version)
            with contextlib.suppress(Exception):
                await self.abandon()
            raise
        finally:
            await self.close()

    async def replay(self) -> None:
        """Replay every partition up to its end offset as of now."""
        consumer = await self._started_consumer()
        partitions = list(self._beginnings)
        ends = await consumer.end_offsets(partitions) if partitions else {}
        self.total = sum(ends[tp] - self._beginnings[tp] for tp in partitions)
        await self._replay_until(ends)

    async def go_live(self) -> None:
        await self.versions.go_live(self.version)

    async def swap(self) -> None:
        await self.read_models.analyze()
        await self.versions.swap(self.version)
        await _drop_unused(self.versions, self.read_models)  # the replaced version
        older_than = datetime.now(UTC) - self.rebuild.retention
        await self.versions.forget_marks(self.version, consumer=self.rebuild.consumer_group, older_than=older_than)

    async def abandon(self) -> None:
        """Give up on the new version and drop its rows (not once it is the active one)."""
        await self.versions.fail(self.version)
        await _drop_unused(self.versions, self.read_models)

    async def close(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        await self.conn.close()  # releases the rebuild lock

    async def _started_consumer(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            bootstrap = self.rebuild.bootstrap
            consumer = consumer_client(
                bootstrap,
                client_id="ido-reporting-rebuild",
                enable_auto_commit=False,
                max_partition_fetch_bytes=4 * 1024 * 1024,
            )
            await consumer.start()
            self._consumer = consumer
            partitions = await topic_partitions(bootstrap, *self.rebuild.subscriptions)
            if partitions:
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                self._beginnings = await consumer.beginning_offsets(partitions)
        return self._consumer

    async def _replay_until(self, ends: dict[TopicPartition, int]) -> None:
        consumer = self._consumer
        assert consumer is not None
        pending = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
        batches: asyncio.Queue[Batch | Exception | None] = asyncio.Queue(maxsize=2)

        async def read() -> None:
            try:
                while pending:
                    records = await consumer.getmany(timeout_ms=500, max_records=self.rebuild.batch_size)
                    await batches.put(await self._batch(records))
                    for tp in list(pending):
                        if await consumer.position(tp) >= ends[tp]:
                            pending.discard(tp)
                await batches.put(None)
            except Exception as exc:  # handed to the writer, which fails the rebuild
                await batches.put(exc)

        thresholds = gc.get_threshold()
        gc.set_threshold(max(REPLAY_GC_THRESHOLD, thresholds[0]), *thresholds[1:])
        reader = asyncio.create_task(read())
        try:
            while (batch := await batches.get()) is not None:
                if isinstance(batch, Exception):
                    raise batch
                await self._write(batch)
        finally:
            gc.set_threshold(*thresholds)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _batch(self, records: dict[TopicPartition, list[Any]]) -> Batch:
        """Decode and fold, a chunk at a time (yielding in between, so the writer goes on)."""
        batch = Batch(0, [], [], [], Changes())
        seen: set[str] = set()
        for partition in records.values():
            for start in range(0, len(partition), DECODE_CHUNK):
                chunk = partition[start : start + DECODE_CHUNK]
                fresh = []
                for record in chunk:
                    decoded = self.decode(record.topic, record.value)
                    if decoded is None or (event_id := str(decoded[0].id)) in seen:
                        continue
                    seen.add(event_id)
                    fresh.append(decoded)
                    batch.ids.append(event_id)
                    batch.times.append(decoded[0].time)
                    batch.values.append((record.topic, record.value))
                changes_of(fresh, into=batch.changes)
                batch.records += len(chunk)
                await asyncio.sleep(0)
        return batch

    async def _write(self, batch: Batch, attempts: int = 3) -> None:
        """The batch's marks, changes and progress in one transaction; the changes of events the
        live consumer applied first are left out."""
        processed = self.processed + batch.records
        total = max(self.total, processed)  # a fetch may bring records past the end offsets taken
        for attempt in range(1, attempts + 1):
            try:
                async with self.conn.transaction():
                    before = await self.versions.applied_before(self.version, batch.ids, batch.times)
                    changes = batch.changes
                    if before:  # rare: decode those records again, without the events applied already
                        fresh = [v for v, i in zip(batch.values, batch.ids, strict=True) if i not in before]
                        changes = changes_of(d for topic, value in fresh if (d := self.decode(topic, value)))
                    await self.read_models.apply(self.version, changes)
                    await self.versions.progress(self.version, processed, total)
                break
            except asyncpg.DeadlockDetectedError:
                if attempt == attempts:
                    raise
                await asyncio.sleep(0.05 * attempt)
        self.processed, self.total = processed, total
