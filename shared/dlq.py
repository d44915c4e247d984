"""What the consumers parked in the dead-letter topics, and putting it back (`ido dlq`).

A dead-letter record is the original record unchanged (value, key, headers) plus `ido-dlq-*`
headers saying why (shared.consuming.EventConsumer.dead_letter). It is named by its place in
its `.dlq` topic: `<partition>-<offset>`. A redrive publishes it again on the topic it came from
(without the `ido-dlq-*` headers, with `ido-redriven-from`) and then appends a marker to the same
`.dlq` topic saying so, which is how a later redrive knows to leave it: each record goes back
once. (A crash between the two may send it twice; consumers skip the second by its event id.)
Listing shows the reason, the event's type and id and where it was; never its data."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.events.catalog import dlq_topic
from shared.kafka import consumer_client, make_producer, topic_partitions

MARKER = "ido-dlq-redriven"  # header of a marker record: the id of the record it redrove
REDRIVEN_FROM = "ido-redriven-from"


@dataclass(frozen=True)
class Parked:
    id: str  # <partition>-<offset> in the .dlq topic
    dlq: str
    topic: str
    reason: str
    consumer: str
    attempts: str
    event_type: str
    event_id: str
    parked_at: datetime
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    redriven_at: str | None = None

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith("ido-dlq-")]


def _described(value: bytes) -> tuple[str, str]:
    """The CloudEvent's type and id, if the value is one."""
    try:
        event = json.loads(value)
        return str(event.get("type", "?")), str(event.get("id", "?"))
    except (ValueError, AttributeError):
        return "(not a CloudEvent)", "-"


async def parked(bootstrap: str, topic: str) -> list[Parked]:
    """Every record parked in `<topic>.dlq`, oldest first, with its redrive if it had one."""
    dlq = dlq_topic(topic)
    consumer = consumer_client(bootstrap, client_id="ido-dlq", enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await topic_partitions(bootstrap, dlq)
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += batch
    finally:
        await consumer.stop()
    markers = {
        _header(r, MARKER): datetime.fromtimestamp(r.timestamp / 1000, UTC) for r in records if _header(r, MARKER)
    }
    found = []
    for r in records:
        if _header(r, MARKER):
            continue
        record_id = f"{r.partition}-{r.offset}"
        event_type, event_id = _described(r.value)
        redriven = markers.get(record_id)
        found.append(
            Parked(
                id=record_id,
                dlq=dlq,
                topic=_header(r, "ido-dlq-topic") or topic,
                reason=_header(r, "ido-dlq-reason") or "",
                consumer=_header(r, "ido-dlq-consumer") or "",
                attempts=_header(r, "ido-dlq-attempts") or "",
                event_type=event_type,
                event_id=event_id,
                parked_at=datetime.fromtimestamp(r.timestamp / 1000, UTC),
                key=r.key,
                value=r.value,
                headers=tuple(r.headers or ()),
                redriven_at=redriven.isoformat(timespec="seconds") if redriven else None,
            )
        )
    return sorted(found, key=lambda p: p.parked_at)


def _header(record: Any, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return (value or b"").decode("utf-8", "replace")
    return None


@dataclass
class Redrive:
    redriven: list[str]
    already: list[str]
    unknown: list[str]


async def redrive(bootstrap: str, topic: str, ids: list[str] | None) -> Redrive:
    """Put parked records (these `ids`, or all when None) back on `topic`, each once."""
    records = {p.id: p for p in await parked(bootstrap, topic)}
    wanted = list(records) if ids is None else ids
    result = Redrive([], [], [i for i in wanted if i not in records])
    producer = make_producer(bootstrap, client_id="ido-dlq-redrive")
    await producer.start()
    try:
        for record_id in wanted:
            record = records.get(record_id)
            if record is None:
                continue
            if record.redriven_at:
                result.already.append(record_id)
                continue
            source = f"{record.dlq}/{record.id}".encode()
            await producer.send_and_wait(
                record.topic,
                record.value,
                key=record.key,
                headers=[*record.original_headers, (REDRIVEN_FROM, source)],
            )
            partition = int(record.id.split("-")[0])
            await producer.send_and_wait(
                record.dlq, None, key=record.key, partition=partition, headers=[(MARKER, record.id.encode())]
            )
            result.redriven.append(record_id)
    finally:
        await producer.stop()
    return result
