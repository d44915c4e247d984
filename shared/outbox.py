"""Transactional outbox without multi-document transactions.

A state change and the events it causes are written in ONE single-document write: the
aggregate document carries its unpublished events in `outbox` and their number in
`outbox_pending` (kept by $inc, so no write needs a condition besides `_id`: FerretDB answers
any other filter of an update by scanning the whole collection).
The relay publishes them in order (acks=all, idempotent producer) and only after the broker
acknowledged removes them from the document. So:
- a crash before the relay published loses nothing: the events wait in the document;
- a crash after publishing but before removal re-publishes the same event ids later,
  which idempotent consumers absorb.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection

from shared.events.catalog import EventData
from shared.events.envelope import CloudEvent, new_event, parse_event, source_urn
from shared.logging import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class PendingEvent:
    event: CloudEvent
    topic: str

    def to_document(self) -> dict[str, Any]:
        # The serialized envelope is stored as-is, so what is published is exactly what was stored.
        return {"id": str(self.event.id), "topic": self.topic, "value": self.event.to_bytes().decode()}


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
        )
        return PendingEvent(event, data.topic())


def with_outbox(document: dict[str, Any], events: Iterable[PendingEvent]) -> dict[str, Any]:
    """A new aggregate document together with the events its creation causes."""
    entries = [e.to_document() for e in events]
    return {**document, "outbox": entries, "outbox_pending": len(entries)}


def outbox_update(events: Iterable[PendingEvent]) -> dict[str, Any]:
    """Update operators that append events to an existing document's outbox. Merge them into
    the same update_one as the state change (they use $push and $inc, never $set)."""
    entries = [e.to_document() for e in events]
    return {"$push": {"outbox": {"$each": entries}}, "$inc": {"outbox_pending": len(entries)}}


Publish = Callable[[CloudEvent, str], Awaitable[None]]


class OutboxNotifier(Protocol):
    """What a repository tells the relay after a write that stored events, and the lock it
    holds around every update of an outbox document."""

    def written(self, collection: str, document_id: Any) -> None: ...

    def lock(self, collection: str, document_id: Any) -> "contextlib.AbstractAsyncContextManager[None]": ...


class DocumentLocks:
    """One asyncio lock per document, so this process never runs two updates of one document at
    once. FerretDB 1.x applies concurrent updates of a document by read-modify-write without
    isolation (measured: 50 concurrent guarded $inc lost updates), so an event pushed while the
    relay pulls another could be lost. One instance per service is assumed (see README)."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, Any], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, collection: str, document_id: Any) -> AsyncIterator[None]:
        key = (collection, document_id)
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]  # nobody else holds or waits for it
            else:
                self._locks[key] = (lock, users - 1)


class OutboxRelay:
    """Publishes pending outbox events. Hot path: a repository reports each write with events
    (`written`), and the relay reads that one document by `_id` and publishes at once. Safety
    net: at start and every `sweep_seconds` it scans for documents still pending (left by a
    crash, or by a failed publish). Scans are kept rare because FerretDB filters outside its
    indexes by reading every document."""

    def __init__(self, collections: list[AsyncCollection], publish: Publish, sweep_seconds: float = 30.0) -> None:
        self.collections = {c.name: c for c in collections}
        self.publish = publish
        self.sweep_seconds = sweep_seconds
        self._written: list[tuple[str, Any]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.lock = DocumentLocks()

    async def ensure_indexes(self) -> None:
        for coll in self.collections.values():
            await coll.create_index("outbox_pending")

    def written(self, collection: str, document_id: Any) -> None:
        self._written.append((collection, document_id))
        self._wake.set()

    async def publish_written(self) -> int:
        """Publish the events of the documents reported as written; return how many."""
        published = 0
        while self._written:
            name, document_id = self._written.pop(0)
            coll = self.collections[name]
            doc = await coll.find_one({"_id": document_id}, {"outbox": 1})
            if doc:
                published += await self._publish_document(coll, doc)
        return published

    async def drain(self) -> int:
        """Publish everything pending now (a full scan); return how many events were published."""
        published = 0
        for coll in self.collections.values():
            # Ids first, in one pass: a long-lived cursor interleaved with writes is slow on FerretDB.
            pending = [doc["_id"] async for doc in coll.find({"outbox_pending": {"$gt": 0}}, {"_id": 1})]
            for document_id in pending:
                doc = await coll.find_one({"_id": document_id}, {"outbox": 1})
                if doc:
                    published += await self._publish_document(coll, doc)
        return published

    async def _publish_document(self, coll: AsyncCollection, doc: dict[str, Any]) -> int:
        entries = doc.get("outbox") or []
        for entry in entries:
            await self.publish(parse_event(entry["value"].encode()), entry["topic"])
        # $pullAll with the exact entries (FerretDB has no $pull by condition) and $inc by their
        # number, in one write: events appended meanwhile stay pending and counted.
        if entries:
            async with self.lock(coll.name, doc["_id"]):
                await coll.update_one(
                    {"_id": doc["_id"]}, {"$pullAll": {"outbox": entries}, "$inc": {"outbox_pending": -len(entries)}}
                )
        return len(entries)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = loop.time()  # sweep at start: whatever a crash left behind
        while True:
            try:
                await self.publish_written()
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + self.sweep_seconds
                    await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:
                # Broker or database unavailable: the events stay pending; sweep again soon.
                log.exception("outbox relay failed; retrying")
                next_sweep = min(next_sweep, loop.time() + 2.0)
            if not self._written:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, next_sweep - loop.time()))

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="outbox-relay")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
