"""Versions of the read models (tables `read_model_versions`, `active_version`, `applied_events`).

Readers use the version named by the one `active_version` row. A rebuild inserts a new version
('building': at most one, a partial unique index), replays every topic into it, then makes it
'live': from then on the live consumer applies each event to it as well. Each event is applied
to a version at most once: applying it to a rebuild's version inserts its mark into
`applied_events` (primary key), whoever comes first, the replay or the live consumer on any
instance; the other finds the mark and skips. The swap updates `active_version` in one
transaction; the live consumer reads that row FOR SHARE, so the swap waits for the units of work
in flight and every later one sees the new version. After the swap the live consumer consumes
the marks of the new active version: an event the replay got to first is not applied twice."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg


class ReadModelVersions:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def targets_of(self, event_ids: list[UUID], event_times: list[datetime]) -> dict[int, list[int]]:
        """Per version, the positions of the events this unit of work applies to it: the active
        version all but those a rebuild replayed into it already; a caught-up rebuild's version
        those that neither the replay nor another instance applied there first."""
        active = await self.conn.fetchval("SELECT version FROM active_version FOR SHARE")
        live = await self.conn.fetch("SELECT version FROM read_model_versions WHERE state = 'live'")
        replayed = await self.conn.fetch(
            "DELETE FROM applied_events WHERE version = $1 AND event_id = ANY($2::uuid[]) RETURNING event_id",
            active,
            event_ids,
        )
        skip = {r["event_id"] for r in replayed}
        targets = {active: [i for i, e in enumerate(event_ids) if e not in skip]}
        for row in live:
            before = await self.applied_before(row["version"], event_ids, event_times)
            targets[row["version"]] = [i for i, e in enumerate(event_ids) if str(e) not in before]
        return {version: positions for version, positions in targets.items() if positions}

    async def applied_before(
        self, version: int, event_ids: Sequence[UUID | str], event_times: Sequence[datetime]
    ) -> set[str]:
        """Mark these events as applied to `version`; return (as strings) those marked before.
        A mark being inserted by another transaction makes this one wait for its outcome."""
        rows = await self.conn.fetch(
            """WITH marked AS (
                   INSERT INTO applied_events (version, event_id, event_time)
                   SELECT $1, * FROM unnest($2::uuid[], $3::timestamptz[])
                   ON CONFLICT DO NOTHING
                   RETURNING event_id)
               SELECT e.id FROM unnest($2::uuid[]) AS e(id) WHERE e.id NOT IN (SELECT event_id FROM marked)""",
            version,
            event_ids,
            event_times,
        )
        return {str(r["id"]) for r in rows}

    # A rebuild's steps (on the rebuilding instance's own connection).

    async def begin(self) -> int | None:
        """A new version to rebuild into; None while another rebuild is under way."""
        try:
            return await self.conn.fetchval(
                "INSERT INTO read_model_versions (state) VALUES ('building') RETURNING version"
            )
        except asyncpg.UniqueViolationError:
            return None

    async def unfinished(self) -> list[int]:
        rows = await self.conn.fetch("SELECT version FROM read_model_versions WHERE state IN ('building', 'live')")
        return [r["version"] for r in rows]

    async def progress(self, version: int, processed: int, total: int) -> None:
        await self.conn.execute(
            "UPDATE read_model_versions SET processed = $2, total = $3 WHERE version = $1", version, processed, total
        )

    async def go_live(self, version: int) -> None:
        """The replay has caught up: from now on the live consumer applies events to it too."""
        result = await self.conn.execute(
            "UPDATE read_model_versions SET state = 'live' WHERE version = $1 AND state = 'building'", version
        )
        if result != "UPDATE 1":
            raise RuntimeError(f"version {version} is no longer being built")

    async def swap(self, version: int) -> int:
        """Make `version` the active one, in one transaction; return the version it replaces."""
        async with self.conn.transaction():
            replaced = await self.conn.fetchval("SELECT version FROM active_version FOR UPDATE")
            await self.conn.execute("UPDATE active_version SET version = $1", version)
            await self.conn.execute(
                "UPDATE read_model_versions SET state = 'retired', finished_at = now() WHERE version = $1", replaced
            )
            result = await self.conn.execute(
                "UPDATE read_model_versions SET state = 'active', finished_at = now() "
                "WHERE version = $1 AND state = 'live'",
                version,
            )
            if result != "UPDATE 1":
                raise RuntimeError(f"version {version} has not caught up")
        return replaced

    async def fail(self, version: int) -> bool:
        """Abandon a rebuild's version (False if it is not unfinished, e.g. active already).
        Waits for the live units of work in flight (which may be writing to it), so none writes
        to it afterwards."""
        async with self.conn.transaction():
            await self.conn.execute("SELECT version FROM active_version FOR UPDATE")
            result = await self.conn.execute(
                "UPDATE read_model_versions SET state = 'failed', finished_at = now() "
                "WHERE version = $1 AND state IN ('building', 'live')",
                version,
            )
        return result == "UPDATE 1"

    async def forget_marks(self, version: int, *, consumer: str, older_than: datetime) -> int:
        """After the swap: drop the marks the live consumer can no longer need, those of events it
        has processed (it never handles them again) and those older than its processed-events
        retention. What remains are events it has yet to meet; it consumes those marks then."""
        processed = await self.conn.execute(
            """DELETE FROM applied_events m USING processed_events p
               WHERE m.version = $1 AND p.consumer = $2 AND p.event_id = m.event_id""",
            version,
            consumer,
        )
        old = await self.conn.execute(
            "DELETE FROM applied_events WHERE version = $1 AND event_time < $2", version, older_than
        )
        return int(processed.split()[-1]) + int(old.split()[-1])

    async def to_drop(self) -> list[int]:
        """Replaced or abandoned versions whose rows are still there."""
        rows = await self.conn.fetch(
            "SELECT version FROM read_model_versions WHERE state IN ('retired', 'failed') AND NOT dropped"
        )
        return [r["version"] for r in rows]

    async def dropped(self, version: int) -> None:
        """Its rows are gone: delete its marks too and say so."""
        await self.conn.execute("DELETE FROM applied_events WHERE version = $1", version)
        await self.conn.execute("UPDATE read_model_versions SET dropped = true WHERE version = $1", version)

    async def status(self) -> dict[str, Any]:
        """The last rebuild (if any) and the active version."""
        row = await self.conn.fetchrow(
            """SELECT a.version AS active, v.version, v.state, v.processed, v.total
               FROM active_version a
               LEFT JOIN LATERAL (SELECT * FROM read_model_versions WHERE rebuilt ORDER BY version DESC LIMIT 1) v
               ON true"""
        )
        assert row is not None
        state = {"building": "running", "live": "running", "active": "done", "retired": "done", "failed": "failed"}
        return {
            "state": state.get(row["state"], "idle"),
            "processed": row["processed"] or 0,
            "total": row["total"] or 0,
            "database": version_name(row["version"]) if row["version"] else None,
            "active": version_name(row["active"]),
        }


def version_name(version: int) -> str:
    return f"reporting_v{version}"
