"""The unit of work: one PostgreSQL transaction in which a command or an event is handled.

Repositories work on `uow.conn`; the events a change causes are handed to `uow.emit` and
written as outbox rows at the end of the same transaction (after the state change, so under
the aggregate's row lock); a consumer records the event id with `uow.first_delivery`. The
commit stores all of it or nothing, and its NOTIFY wakes the outbox relay."""

from typing import TYPE_CHECKING
from uuid import UUID

import asyncpg

if TYPE_CHECKING:
    from shared.outbox import PendingEvent

OUTBOX_CHANNEL = "ido_outbox"


class UnitOfWork:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self._events: list[PendingEvent] = []

    def emit(self, *events: "PendingEvent") -> None:
        self._events.extend(events)

    @property
    def emitted(self) -> list["PendingEvent"]:
        return list(self._events)

    async def first_delivery(self, consumer: str, event_id: UUID) -> bool:
        """Record that `consumer` processed this event; False if it was recorded before (a
        re-delivery, or another instance got there first: its row lock makes us wait)."""
        inserted = await self.conn.fetchval(
            "INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING true",
            consumer,
            event_id,
        )
        return bool(inserted)

    async def first_deliveries(self, consumer: str, event_ids: list[UUID]) -> set[UUID]:
        """first_delivery for a batch in one statement: the ids recorded now (not before)."""
        rows = await self.conn.fetch(
            """INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])
               ON CONFLICT DO NOTHING RETURNING event_id""",
            consumer,
            list(dict.fromkeys(event_ids)),
        )
        return {r["event_id"] for r in rows}

    async def flush(self) -> None:
        if not self._events:
            return
        # One round trip: the rows in emit order (ids ascending), and the NOTIFY that wakes the
        # relay, delivered at commit.
        await self.conn.execute(
            f"""WITH stored AS (
                    INSERT INTO outbox (event_id, topic, key, value)
                    SELECT e, t, k, v FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[])
                                           WITH ORDINALITY AS rows(e, t, k, v, n)
                    ORDER BY n)
                SELECT pg_notify('{OUTBOX_CHANNEL}', '')""",
            [e.event.id for e in self._events],
            [e.topic for e in self._events],
            [e.event.key for e in self._events],
            [e.event.to_bytes() for e in self._events],
        )
        self._events.clear()
