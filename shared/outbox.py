"""Transactional outbox on PostgreSQL, and its relay.

A state change and the events it causes commit in one transaction (shared.unit_of_work): the
events are rows of the `outbox` table. The relay publishes them in id order with the
idempotent, acks=all producer, in batches, and deletes them only after the broker
acknowledged. So:
- a crash before the relay published loses nothing: the rows wait in the table;
- a crash after publishing but before the delete re-publishes the same event ids later,
  which idempotent consumers absorb.

Several instances of a service may run. One relay per service publishes at a time: the one
holding a session-level advisory lock (a leader). Publishing by id from one leader keeps each
aggregate's events in commit order (see the kernel migration); when the leader's process or
connection dies, PostgreSQL releases its lock and a standby takes over within
`takeover_seconds`. A commit that wrote outbox rows NOTIFYs the leader, which publishes at
once; the poll is only a safety net.
"""

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.db import connect
from shared.events.catalog import EventData
from shared.events.envelope import CONTENT_TYPE, CloudEvent, new_event, source_urn
from shared.logging import get_logger
from shared.metrics import EVENTS_PRODUCED, OUTBOX_OLDEST_AGE, OUTBOX_PENDING, type_name
from shared.tracing import current_traceparent
from shared.unit_of_work import OUTBOX_CHANNEL

log = get_logger(__name__)


@dataclass(frozen=True)
class PendingEvent:
    event: CloudEvent
    topic: str


class EventFactory:
    """Builds a service's CloudEvents: its source URN, schema URIs and correlation ids."""

    def __init__(self, *, service: str, oin: str, base_url: str) -> None:
        self.source = source_urn(oin, service)
        self.base_url = base_url.rstrip("/")

    def schema_uri(self, event_name: str) -> str:
        return f"{self.base_url}/v1/schemas/{event_name}.json"

    def create(self, data: EventData, *, correlation_id: str | None, dataref: str | None = None) -> PendingEvent:
        event = new_event(
            type_name=data.event_name,
            subject=data.subject(),
            data=data.model_dump(mode="json"),
            source=self.source,
            dataschema=self.schema_uri(data.event_name),
            correlation_id=correlation_id,
            dataref=dataref,
            traceparent=current_traceparent(),  # the trace goes on with whoever consumes it
        )
        return PendingEvent(event, data.topic())


# One advisory lock key per database: each service has its own database, so its own leader.
RELAY_LOCK_KEY = 0x1D0_0B0C
_HEADERS = [("content-type", CONTENT_TYPE.encode())]


class OutboxRelay:
    def __init__(
        self,
        database_url: str,
        passfile: Path,
        producer: AIOKafkaProducer | None,
        *,
        batch_size: int = 500,
        poll_seconds: float = 1.0,
        name: str = "ido outbox relay",
        new_producer: Callable[[], Awaitable[AIOKafkaProducer]] | None = None,
    ) -> None:
        self.database_url = database_url
        self.passfile = passfile
        self.producer = producer
        # A producer the broker refused (an idempotent producer out of sequence after a crash or
        # a rebalance of leaders) stays refused: with this, the relay starts a fresh one instead.
        self.new_producer = new_producer
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.name = name
        self.leading = False
        self.standby_rounds = 0  # tries to take the lead that found another leader
        self.published = 0
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def publish_pending(self, conn: Any) -> int:
        """Publish one batch in id order, wait for every ack, then delete it; return its size."""
        rows = await conn.fetch("SELECT id, topic, key, value FROM outbox ORDER BY id LIMIT $1", self.batch_size)
        if not rows:
            return 0
        # send() queues in order; the idempotent producer keeps that order per partition.
        producer = await self._producer()
        acks = [await producer.send(r["topic"], r["value"], key=r["key"], headers=_HEADERS) for r in rows]
        await asyncio.gather(*acks)
        await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r["id"] for r in rows])
        self.published += len(rows)
        for r in rows:
            EVENTS_PRODUCED.labels(r["topic"], type_name(json.loads(r["value"])["type"])).inc()
        return len(rows)

    async def _lead(self) -> None:
        conn = await connect(self.database_url, self.passfile, application_name=self.name)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                if self._stopping:
                    return  # a standby has nothing to flush: the leader publishes
                self.standby_rounds += 1
                await asyncio.sleep(self.poll_seconds)  # a standby: another instance leads
            self.leading = True
            log.info("outbox relay leading")
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            while True:
                self._wake.clear()
                if await self.publish_pending(conn) == self.batch_size:
                    continue  # more is waiting
                if self._stopping:
                    return  # flushed: what the last transactions committed is on the broker
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
        finally:
            self.leading = False
            with contextlib.suppress(Exception):
                await asyncio.shield(conn.close())  # closing the session releases the lock

    async def run(self) -> None:
        while not self._stopping:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Broker or database unavailable: the rows stay; try again shortly.
                log.warning("outbox relay interrupted; retrying", error=f"{type(exc).__name__}: {exc}")
                if isinstance(exc, KafkaError) and self.new_producer is not None:
                    await self._discard_producer()
                await asyncio.sleep(self.poll_seconds)

    async def _producer(self) -> AIOKafkaProducer:
        if self.producer is None:
            assert self.new_producer is not None, "the relay has a producer or a way to make one"
            self.producer = await self.new_producer()
        return self.producer

    async def _discard_producer(self) -> None:
        """Drop the producer after a broker error; the next round starts a fresh one (a new
        producer id, its sequences from zero). Rows not acknowledged stay in the outbox: a batch
        half sent is sent again, and consumers skip the duplicates."""
        old, self.producer = self.producer, None
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), timeout=5)

    async def measure_backlog(self, db: Any) -> None:
        """The outbox's size and the age of its oldest row, for the metrics (every instance
        reports the same table: a growing age means the relay is stuck)."""
        row = await db.fetchrow("SELECT count(*) AS n, extract(epoch FROM now() - min(created_at)) AS age FROM outbox")
        OUTBOX_PENDING.set(row["n"])
        OUTBOX_OLDEST_AGE.set(float(row["age"] or 0))

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self, flush_seconds: float = 0.0) -> None:
        """Publish what is pending (for up to `flush_seconds`), then stop. Whatever is left
        stays in the outbox for the next leader: stopping early loses nothing."""
        if self._task:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), timeout=flush_seconds)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
