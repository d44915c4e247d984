"""Test helpers that read Kafka the way an outside consumer would: a plain aiokafka client."""

import asyncio
import time
from collections.abc import Callable

from aiokafka import ConsumerRecord

from shared.kafka import consumer_client, topic_partitions


class TopicReader:
    """Reads a topic from a chosen point on; `until` collects records matching a predicate."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.bootstrap = bootstrap
        self.consumer = consumer_client(bootstrap, enable_auto_commit=False)

    async def start(self, *, from_end: bool) -> "TopicReader":
        await self.consumer.start()
        tps = await topic_partitions(self.bootstrap, self.topic)
        assert tps, f"topic {self.topic} has no partitions"
        self.consumer.assign(tps)
        if from_end:
            await self.consumer.seek_to_end(*tps)
            for tp in tps:  # resolve the end positions now, before anything is produced
                await self.consumer.position(tp)
        else:
            await self.consumer.seek_to_beginning(*tps)
        return self

    async def until(
        self, predicate: Callable[[ConsumerRecord], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[ConsumerRecord]:
        found: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while len(found) < count and time.monotonic() < deadline:
            batches = await self.consumer.getmany(timeout_ms=200)
            found += [r for records in batches.values() for r in records if predicate(r)]
        return found

    async def stop(self) -> None:
        await self.consumer.stop()


async def eventually(check: Callable, *, timeout: float = 20.0, interval: float = 0.1):
    """Await `check()` until it returns something truthy, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last result: {result!r})")
        await asyncio.sleep(interval)
