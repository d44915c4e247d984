"""Intake's tables in its own PostgreSQL database (migrations/). Repositories work on the
connection of a unit of work (or on the pool, for reads); they hold no business rules."""

from datetime import datetime
from typing import Any

import asyncpg

from services.intake.domain.location import RegisteredLocation
from services.intake.domain.model import HelpRequest, Listing
from services.intake.domain.taxonomy import SEED, Theme
from shared import reference
from shared.db import Executor
from shared.unit_of_work import UnitOfWork

_COLUMNS = "id, library, registered_at, status, request, decisions, referrals, personal_data_erased_at"


def _help_request(row: asyncpg.Record) -> HelpRequest:
    return HelpRequest.model_validate({k: row[k] for k in _COLUMNS.split(", ")})


def _json(model_or_list: Any) -> Any:
    """Pydantic models (or lists of them) as JSON values for jsonb columns."""
    if isinstance(model_or_list, list):
        return [m.model_dump(mode="json") for m in model_or_list]
    return model_or_list.model_dump(mode="json")


class HelpRequests:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def add(self, hr: HelpRequest, *, fingerprint: str, data_key: bytes) -> bool:
        """Insert the visit; False if one with this id exists (an Idempotency-Key retried)."""
        inserted = await self.conn.fetchval(
            """INSERT INTO help_requests (id, library, registered_at, status, themes, request, fingerprint, data_key)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING true""",
            hr.id,
            hr.library,
            hr.registered_at,
            hr.status,
            sorted({q.theme for q in hr.request.questions}),
            _json(hr.request),
            fingerprint,
            data_key,
        )
        return bool(inserted)

    async def get(self, request_id: str, library: str, *, for_update: bool = False) -> HelpRequest | None:
        """The visit if it is this library's (another library's id is as good as unknown)."""
        lock = " FOR UPDATE" if for_update else ""
        row = await self.conn.fetchrow(
            f"SELECT {_COLUMNS} FROM help_requests WHERE id = $1 AND library = $2{lock}", request_id, library
        )
        return _help_request(row) if row else None

    async def get_any(self, request_id: str, *, for_update: bool = False) -> HelpRequest | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self.conn.fetchrow(f"SELECT {_COLUMNS} FROM help_requests WHERE id = $1{lock}", request_id)
        return _help_request(row) if row else None

    async def fingerprint(self, request_id: str, library: str) -> str | None:
        return await self.conn.fetchval(
            "SELECT fingerprint FROM help_requests WHERE id = $1 AND library = $2", request_id, library
        )

    async def data_key(self, request_id: str) -> bytes | None:
        return await self.conn.fetchval("SELECT data_key FROM help_requests WHERE id = $1", request_id)

    async def erase(self, erased: HelpRequest) -> None:
        """Contact details and notes gone, the data key destroyed, in the caller's transaction."""
        await self.conn.execute(
            "UPDATE help_requests SET request = $2, personal_data_erased_at = $3, data_key = NULL WHERE id = $1",
            erased.id,
            _json(erased.request),
            erased.personal_data_erased_at,
        )

    async def with_personal_data_before(self, moment: datetime, limit: int = 1000) -> list[str]:
        rows = await self.conn.fetch(
            """SELECT id FROM help_requests WHERE personal_data_erased_at IS NULL AND registered_at < $1
               ORDER BY registered_at LIMIT $2""",
            moment,
            limit,
        )
        return [r["id"] for r in rows]

    async def list(self, library: str, listing: Listing) -> list[HelpRequest]:
        """Newest first; `listing.after` is the (registered_at, id) of the last item seen."""
        where, args = ["library = $1"], [library]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if listing.status:
            where.append(f"status = {arg(listing.status)}")
        if listing.theme:
            where.append(f"{arg(listing.theme)} = ANY(themes)")
        if listing.registered_from:
            where.append(f"registered_at >= {arg(listing.registered_from)}")
        if listing.registered_to:
            where.append(f"registered_at < {arg(listing.registered_to)}")
        if listing.after:
            at, last_id = listing.after
            where.append(f"(registered_at, id) < ({arg(at)}, {arg(last_id)})")
        rows = await self.conn.fetch(
            f"""SELECT {_COLUMNS} FROM help_requests WHERE {" AND ".join(where)}
                ORDER BY registered_at DESC, id DESC LIMIT {arg(listing.limit)}""",
            *args,
        )
        return [_help_request(r) for r in rows]

    async def save_progress(self, hr: HelpRequest) -> None:
        """Store routing's progress (the caller holds the row lock)."""
        await self.conn.execute(
            "UPDATE help_requests SET status = $2, decisions = $3, referrals = $4 WHERE id = $1",
            hr.id,
            hr.status,
            _json(hr.decisions),
            _json(hr.referrals),
        )


class Libraries:
    """The libraries that run an IDO. The pilots are seeded on first start; more are added as data."""

    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def seed(self) -> None:
        await self.conn.executemany(
            "INSERT INTO libraries (code, name, pilot) VALUES ($1, $2, true) ON CONFLICT (code) DO NOTHING",
            list(reference.PILOT_LIBRARIES.items()),
        )

    async def all(self) -> list[dict[str, Any]]:
        return [dict(r) for r in await self.conn.fetch("SELECT code, name FROM libraries ORDER BY code")]


class Locations:
    """A library's IDO locations, keyed by (library, code)."""

    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def put(self, registered: RegisteredLocation) -> None:
        await self.conn.execute(
            """INSERT INTO locations (library, code, location, registered_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (library, code) DO UPDATE SET location = excluded.location,
                                                        registered_at = excluded.registered_at""",
            registered.library,
            registered.code,
            _json(registered.location),
            registered.registered_at,
        )

    async def get(self, library: str, code: str) -> RegisteredLocation | None:
        row = await self.conn.fetchrow(
            "SELECT library, code, location, registered_at FROM locations WHERE library = $1 AND code = $2",
            library,
            code,
        )
        return RegisteredLocation.model_validate(dict(row)) if row else None

    async def all(self, library: str) -> list[RegisteredLocation]:
        rows = await self.conn.fetch(
            "SELECT library, code, location, registered_at FROM locations WHERE library = $1 ORDER BY code", library
        )
        return [RegisteredLocation.model_validate(dict(r)) for r in rows]


class Themes:
    """The question taxonomy, kept by the KB. Seeded on every start without overwriting its edits."""

    _COLUMNS = "category, code, label, subthemes, default_organisation, retired"

    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def seed(self) -> None:
        await self.conn.executemany(
            f"""INSERT INTO themes ({self._COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (category, code) DO NOTHING""",
            [self._values(t) for t in SEED],
        )

    @staticmethod
    def _values(t: Theme) -> tuple:
        return (t.category, t.code, t.label, t.subthemes, t.default_organisation, t.retired)

    async def put(self, theme: Theme) -> None:
        await self.conn.execute(
            f"""INSERT INTO themes ({self._COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (category, code) DO UPDATE SET label = excluded.label, subthemes = excluded.subthemes,
                    default_organisation = excluded.default_organisation, retired = excluded.retired""",
            *self._values(theme),
        )

    async def of(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Theme]:
        """The themes named by (category, code), in one query: a visit's questions at once."""
        rows = await self.conn.fetch(
            f"""SELECT {self._COLUMNS} FROM themes
                WHERE (category, code) IN (SELECT * FROM unnest($1::text[], $2::text[]))""",
            [category for category, _ in keys],
            [code for _, code in keys],
        )
        return {(r["category"], r["code"]): Theme.model_validate(dict(r)) for r in rows}

    async def all(self) -> list[Theme]:
        # digital_government first (the order of the form), then the library's own and other.
        rows = await self.conn.fetch(
            f"""SELECT {self._COLUMNS} FROM themes ORDER BY
                array_position(ARRAY['digital_government', 'library_services', 'other'], category), code"""
        )
        return [Theme.model_validate(dict(r)) for r in rows]


class IntakeUnitOfWork:
    """Intake's repositories on one transaction, and where its events go."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.help_requests = HelpRequests(uow.conn)
        self.locations = Locations(uow.conn)
        self.themes = Themes(uow.conn)
        self.emit = uow.emit
