"""Rebuilding the read models from the start of every topic, inside the reporting service so the
live consumer can write to the fresh version meanwhile (see adapters/versions.py)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer

from services.reporting.adapters.versions import ReadModelVersions
from shared.events.catalog import data_model
from shared.events.envelope import CloudEvent, InvalidEvent, parse_event
from shared.kafka import topic_partitions
from shared.logging import get_logger

log = get_logger(__name__)
Projection = Callable[..., Awaitable[None]]


async def project(
    versions: ReadModelVersions, projection: Projection, event: CloudEvent, data: Any, targets=None
) -> None:
    """Apply one event to every given version (default: the active one and a pending rebuild),
    at most once per version."""
    for repo in targets if targets is not None else versions.targets():
        if await versions.first_time(repo, str(event.id)):
            try:
                await projection(event, data, repo=repo)
            except Exception:
                await versions.forget(repo, str(event.id))
                raise


class Rebuild:
    def __init__(
        self, versions: ReadModelVersions, projections: dict[str, dict[str, Projection]], bootstrap: str
    ) -> None:
        self.versions, self.projections, self.bootstrap = versions, projections, bootstrap
        self.state, self.processed, self.total, self.database = "idle", 0, 0, None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> bool:
        if self.state == "running":
            return False
        self.database = self.versions.begin()  # from now on the live consumer writes here too
        self.state, self.processed, self.total = "running", 0, 0
        self._task = asyncio.create_task(self._run(), name="reporting-rebuild")
        return True

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "processed": self.processed,
            "total": self.total,
            "database": self.database,
            "active": self.versions.active_name,
        }

    async def _run(self) -> None:
        try:
            await self._replay()
            await self.versions.complete()
            self.state = "done"
            log.info("read models rebuilt", database=self.database, events=self.processed)
        except Exception:
            self.versions.abandon()
            self.state = "failed"
            log.exception("rebuild failed; the active read models are unchanged")

    async def _replay(self) -> None:
        partitions = [tp for topic in self.projections for tp in await topic_partitions(self.bootstrap, topic)]
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)  # the live consumer covers what comes later
            self.total = sum(ends.values())
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for tp, records in (await consumer.getmany(timeout_ms=500, max_records=500)).items():
                    for record in records:
                        if record.offset < ends[tp]:
                            await self._apply(record.topic, record.value)
                        self.processed += 1
        finally:
            await consumer.stop()

    async def _apply(self, topic: str, value: bytes) -> None:
        try:
            event = parse_event(value)
            projection = self.projections[topic].get(event.name)
            if projection is None:
                return
            data = data_model(event.name).model_validate(event.data)
        except (InvalidEvent, ValueError):
            return  # the live consumer sent it to the DLQ; a rebuild skips it the same way
        await project(self.versions, projection, event, data, targets=[self.versions.pending])
