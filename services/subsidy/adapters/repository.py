"""Subsidy's repositories on PostgreSQL (tables in migrations/0001.subsidy.sql): plain SQL that
loads and stores the domain's objects, with the row locks the use cases take; no rules here.

Every use case takes its locks in one order, so two of them never wait for each other in a
circle: a library's conditions row, then application rows (by id), then a scheme's budget row."""

from datetime import date
from typing import Any

import asyncpg

from services.subsidy.domain.model import (
    Application,
    Budget,
    CalculationLine,
    LibraryConditions,
    Payment,
    Renewal,
    Scheme,
    TrailEntry,
)
from shared.db import Database, Executor
from shared.unit_of_work import UnitOfWork

# A connection in a transaction, or the pool (reads): both answer fetch/fetchrow/execute.

_SCHEME_COLUMNS = "code, name, opens, closes, rates, budget_ceiling_cents, advance_percent, conditions, extension"
# Condition name -> its column in library_conditions.
_CONDITION_COLUMNS = {"visitor_registration": "visitor_registration_at", "course_offers": "course_offers_at"}


def _scheme(row: asyncpg.Record) -> Scheme:
    return Scheme.model_validate({k: row[k] for k in _SCHEME_COLUMNS.split(", ") if k != "code"})


class Schemes:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def get(self, code: str) -> Scheme | None:
        row = await self.conn.fetchrow(f"SELECT {_SCHEME_COLUMNS} FROM schemes WHERE code = $1", code)
        return _scheme(row) if row else None

    async def all(self) -> list[tuple[str, Scheme]]:
        rows = await self.conn.fetch(f"SELECT {_SCHEME_COLUMNS} FROM schemes ORDER BY code")
        return [(row["code"], _scheme(row)) for row in rows]

    async def budget_for_update(self, code: str) -> Budget | None:
        """The scheme's budget, its row locked until the transaction ends. NO KEY UPDATE: new
        applications (whose foreign key takes KEY SHARE on this row) are not held up."""
        row = await self.conn.fetchrow(
            "SELECT budget_ceiling_cents, reserved_cents FROM schemes WHERE code = $1 FOR NO KEY UPDATE", code
        )
        return Budget(code, row["budget_ceiling_cents"], row["reserved_cents"]) if row else None

    async def save_budget(self, budget: Budget) -> None:
        await self.conn.execute(
            "UPDATE schemes SET reserved_cents = $2 WHERE code = $1", budget.scheme, budget.reserved_cents
        )

    async def put(self, code: str, scheme: Scheme) -> None:
        """Create or change the scheme's terms; what it reserved stays."""
        terms = scheme.model_dump(mode="json")
        await self.conn.execute(
            f"""INSERT INTO schemes ({_SCHEME_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (code) DO UPDATE SET
                    name = EXCLUDED.name, opens = EXCLUDED.opens, closes = EXCLUDED.closes,
                    rates = EXCLUDED.rates, budget_ceiling_cents = EXCLUDED.budget_ceiling_cents,
                    advance_percent = EXCLUDED.advance_percent, conditions = EXCLUDED.conditions,
                    extension = EXCLUDED.extension""",
            code,
            scheme.name,
            scheme.opens,
            scheme.closes,
            terms["rates"],
            scheme.budget_ceiling_cents,
            scheme.advance_percent,
            list(scheme.conditions),
            terms["extension"],
        )


_APPLICATION_COLUMNS = (
    "id, scheme, library, inhabitants, ido_opening_date, planned_course_offers, contact_person, calculation,"
    " requested_cents, status, granted_cents, decision_reason, applied_at, renewal"
)


def _renewal(value: dict[str, Any] | None) -> Renewal | None:
    if value is None:
        return None
    return Renewal(
        year=value["year"],
        amount_cents=value["amount_cents"],
        signed_by=value["signed_by"],
        signed_on=date.fromisoformat(value["signed_on"]),
    )


async def _applications(conn: Executor, rows: list[asyncpg.Record]) -> list[Application]:
    """Applications from their rows, with their trail and payments (one query each)."""
    ids = [row["id"] for row in rows]
    trails: dict[str, list[TrailEntry]] = {i: [] for i in ids}
    payments: dict[str, list[Payment]] = {i: [] for i in ids}
    if ids:
        for t in await conn.fetch(
            "SELECT application_id, at, actor, action, detail FROM trail WHERE application_id = ANY($1) ORDER BY id",
            ids,
        ):
            trails[t["application_id"]].append(TrailEntry(t["at"], t["actor"], t["action"], t["detail"]))
        for p in await conn.fetch(
            "SELECT application_id, tranche, amount_cents, paid_at FROM payments"
            " WHERE application_id = ANY($1) ORDER BY id",
            ids,
        ):
            payments[p["application_id"]].append(Payment(p["tranche"], p["amount_cents"], p["paid_at"]))
    return [
        Application(
            id=row["id"],
            scheme=row["scheme"],
            library=row["library"],
            inhabitants=row["inhabitants"],
            ido_opening_date=row["ido_opening_date"],
            planned_course_offers=row["planned_course_offers"],
            contact_person=row["contact_person"],
            calculation=[CalculationLine.model_validate(line) for line in row["calculation"]],
            requested_cents=row["requested_cents"],
            applied_at=row["applied_at"],
            status=row["status"],
            granted_cents=row["granted_cents"],
            decision_reason=row["decision_reason"],
            renewal=_renewal(row["renewal"]),
            trail=trails[row["id"]],
            payments=payments[row["id"]],
        )
        for row in rows
    ]


def _renewal_json(renewal: Renewal | None) -> dict[str, Any] | None:
    if renewal is None:
        return None
    return {
        "year": renewal.year,
        "amount_cents": renewal.amount_cents,
        "signed_by": renewal.signed_by,
        "signed_on": renewal.signed_on.isoformat(),
    }


class Applications:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn
        # Per application loaded or added here: how many trail entries and payments are stored.
        self._stored: dict[str, tuple[int, int]] = {}

    async def add(self, application: Application) -> bool:
        """Store a new application; False if the library applied for the scheme before."""
        inserted = await self.conn.fetchval(
            f"""INSERT INTO applications ({_APPLICATION_COLUMNS})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
                ON CONFLICT DO NOTHING RETURNING true""",
            application.id,
            application.scheme,
            application.library,
            application.inhabitants,
            application.ido_opening_date,
            application.planned_course_offers,
            application.contact_person,
            [line.model_dump(mode="json") for line in application.calculation],
            application.requested_cents,
            application.status,
            application.granted_cents,
            application.decision_reason,
            application.applied_at,
            _renewal_json(application.renewal),
        )
        if not inserted:
            return False
        self._stored[application.id] = (0, 0)
        await self._add_children(application)
        return True

    async def library_of(self, application_id: str) -> str | None:
        return await self.conn.fetchval("SELECT library FROM applications WHERE id = $1", application_id)

    async def get_for_update(self, application_id: str) -> Application | None:
        """The application, its row locked until the transaction ends."""
        rows = await self.conn.fetch(
            f"SELECT {_APPLICATION_COLUMNS} FROM applications WHERE id = $1 FOR UPDATE", application_id
        )
        return self._track(await _applications(self.conn, rows))[0] if rows else None

    async def granted_for_update(self, library: str) -> list[Application]:
        """The library's granted applications, their rows locked (in id order)."""
        rows = await self.conn.fetch(
            f"""SELECT {_APPLICATION_COLUMNS} FROM applications
                WHERE library = $1 AND status = 'granted' ORDER BY id FOR UPDATE""",
            library,
        )
        return self._track(await _applications(self.conn, rows))

    async def save(self, application: Application) -> None:
        """Store the application's state and the trail entries and payments added since it was loaded."""
        await self.conn.execute(
            """UPDATE applications SET status = $2, granted_cents = $3, decision_reason = $4, renewal = $5
               WHERE id = $1""",
            application.id,
            application.status,
            application.granted_cents,
            application.decision_reason,
            _renewal_json(application.renewal),
        )
        await self._add_children(application)

    def _track(self, applications: list[Application]) -> list[Application]:
        for a in applications:
            self._stored[a.id] = (len(a.trail), len(a.payments))
        return applications

    async def _add_children(self, application: Application) -> None:
        trail_stored, payments_stored = self._stored[application.id]
        new_trail = application.trail[trail_stored:]
        new_payments = application.payments[payments_stored:]
        if new_trail:
            await self.conn.executemany(
                "INSERT INTO trail (application_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)",
                [(application.id, t.at, t.by, t.action, t.detail) for t in new_trail],
            )
        if new_payments:
            await self.conn.executemany(
                "INSERT INTO payments (application_id, tranche, amount_cents, paid_at) VALUES ($1, $2, $3, $4)",
                [(application.id, p.tranche, p.amount_cents, p.paid_at) for p in new_payments],
            )
        self._track([application])


class Conditions:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def met(self, library: str) -> set[str]:
        """The conditions the library has met, read without a lock (they are never un-met)."""
        row = await self.conn.fetchrow("SELECT * FROM library_conditions WHERE library = $1", library)
        return {name for name, column in _CONDITION_COLUMNS.items() if row and row[column] is not None}

    async def lock(self, library: str) -> LibraryConditions:
        """The library's conditions, its row (created if new) locked until the transaction ends."""
        await self.conn.execute(
            "INSERT INTO library_conditions (library) VALUES ($1) ON CONFLICT (library) DO NOTHING", library
        )
        row = await self.conn.fetchrow("SELECT * FROM library_conditions WHERE library = $1 FOR UPDATE", library)
        assert row is not None, "inserted above"
        return LibraryConditions(
            library, {name: row[column] for name, column in _CONDITION_COLUMNS.items() if row[column] is not None}
        )

    async def save(self, conditions: LibraryConditions) -> None:
        await self.conn.execute(
            "UPDATE library_conditions SET visitor_registration_at = $2, course_offers_at = $3 WHERE library = $1",
            conditions.library,
            conditions.met.get("visitor_registration"),
            conditions.met.get("course_offers"),
        )


class SubsidyUnitOfWork:
    """Subsidy's repositories on one transaction, and where its events go (the outbox)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.schemes = Schemes(uow.conn)
        self.applications = Applications(uow.conn)
        self.conditions = Conditions(uow.conn)
        self.emit = uow.emit


class SubsidyViews:
    """The API's read side, outside any transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def schemes(self) -> list[tuple[str, Scheme]]:
        return await Schemes(self.db).all()

    async def application(self, application_id: str) -> Application | None:
        rows = await self.db.fetch(f"SELECT {_APPLICATION_COLUMNS} FROM applications WHERE id = $1", application_id)
        found = await _applications(self.db, rows)
        return found[0] if found else None

    async def applications_of(self, library: str | None) -> list[Application]:
        """A library's applications (all for None), newest first."""
        args: tuple[str, ...] = ()
        if library is None:
            query = f"SELECT {_APPLICATION_COLUMNS} FROM applications ORDER BY applied_at DESC, id"
        else:
            query = f"SELECT {_APPLICATION_COLUMNS} FROM applications WHERE library = $1 ORDER BY applied_at DESC, id"
            args = (library,)
        return await _applications(self.db, await self.db.fetch(query, *args))

    async def overview(self, code: str) -> dict[str, Any] | None:
        """The scheme's ceiling, reserved and paid amounts, and its applications per status."""
        row = await self.db.fetchrow(
            """SELECT s.budget_ceiling_cents, s.reserved_cents,
                      (SELECT coalesce(sum(p.amount_cents), 0)::bigint FROM payments p
                         JOIN applications a ON a.id = p.application_id WHERE a.scheme = s.code) AS paid_cents,
                      (SELECT coalesce(jsonb_object_agg(status, n), '{}') FROM
                         (SELECT status, count(*) AS n FROM applications WHERE scheme = s.code GROUP BY status) c
                      ) AS applications
               FROM schemes s WHERE s.code = $1""",
            code,
        )
        return dict(row) if row else None
