"""Routing's tables in PostgreSQL (migrations/0001.routing.sql): organisations and routing
rules (reference data), routing cases, referrals and the audit trail of handover reads.

Repositories run plain SQL on an asyncpg connection (a unit of work's, for writes) or on the
pool (`Database`, for reads of the API). No business rules here: those are in `domain/`."""

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from services.routing.domain.model import RoutingRules
from services.routing.domain.referral import Listing, Referral, StatusChange
from shared import reference
from shared.events.catalog import HelpRequestRouted
from shared.unit_of_work import UnitOfWork


class Queries(Protocol):
    """What the repositories need: an asyncpg connection, a pool, or the service's Database."""

    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]: ...
    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None: ...
    async def fetchval(self, query: str, *args: Any) -> Any: ...


def default_rules() -> list[dict[str, Any]]:
    """The contract's default theme -> organisation table, as national routing rules."""
    rules = []
    for theme in reference.THEMES.values():
        rules.append({"theme": theme.code, "subtheme": None, "organisation": theme.default_organisation})
        rules += [{"theme": theme.code, "subtheme": sub, "organisation": org} for sub, org in theme.subthemes.items()]
    return rules


def default_organisations() -> list[dict[str, Any]]:
    return [{"code": code, "name": name, "kind": "agency"} for code, name in reference.AGENCIES.items()]


class Organisations:
    def __init__(self, db: Queries) -> None:
        self.db = db

    async def add_missing(self, organisations: Iterable[dict[str, Any]]) -> None:
        """Seed: what exists (perhaps edited since) is left as it is."""
        rows = list(organisations)
        await self.db.fetch(
            """INSERT INTO organisations (code, name, kind)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT (code) DO NOTHING""",
            [o["code"] for o in rows],
            [o["name"] for o in rows],
            [o["kind"] for o in rows],
        )

    async def put(self, code: str, fields: dict[str, Any]) -> None:
        await self.db.fetch(
            """INSERT INTO organisations (code, name, kind, municipality, response_hours)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                   municipality = excluded.municipality, response_hours = excluded.response_hours""",
            code,
            fields["name"],
            fields["kind"],
            fields.get("municipality"),
            fields.get("response_hours"),
        )

    async def all(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT code, name, kind, municipality, response_hours FROM organisations ORDER BY code"
        )
        return [dict(r) for r in rows]

    async def known(self, codes: Iterable[str]) -> frozenset[str]:
        rows = await self.db.fetch("SELECT code FROM organisations WHERE code = ANY($1::text[])", list(codes))
        return frozenset(r["code"] for r in rows)

    async def response_hours(self, codes: Iterable[str]) -> dict[str, int | None]:
        rows = await self.db.fetch(
            "SELECT code, response_hours FROM organisations WHERE code = ANY($1::text[])", list(codes)
        )
        return {r["code"]: r["response_hours"] for r in rows}


class Rules:
    def __init__(self, db: Queries) -> None:
        self.db = db

    async def add_missing(self, rules: Iterable[dict[str, Any]]) -> None:
        """Seed: a rule that exists (perhaps edited since) is left as it is."""
        rows = list(rules)
        await self.db.fetch(
            """INSERT INTO routing_rules (theme, subtheme, municipality, organisation)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])
               ON CONFLICT ON CONSTRAINT routing_rules_key DO NOTHING""",
            [r["theme"] for r in rows],
            [r.get("subtheme") for r in rows],
            [r.get("municipality") for r in rows],
            [r["organisation"] for r in rows],
        )

    async def put(self, rule: dict[str, Any]) -> None:
        await self.db.fetch(
            """INSERT INTO routing_rules (theme, subtheme, municipality, organisation) VALUES ($1, $2, $3, $4)
               ON CONFLICT ON CONSTRAINT routing_rules_key DO UPDATE SET organisation = excluded.organisation""",
            rule["theme"],
            rule.get("subtheme"),
            rule.get("municipality"),
            rule["organisation"],
        )

    async def matching(self, themes: Iterable[str], municipality: str | None, targets: Iterable[str]) -> RoutingRules:
        """The rules that can decide questions of these themes in this municipality, and which of
        the organisations staff named (targets) exist."""
        rows = await self.db.fetch(
            """SELECT theme, subtheme, municipality, organisation FROM routing_rules
               WHERE theme = ANY($1::text[]) AND (municipality IS NULL OR municipality = $2)""",
            list(themes),
            municipality,
        )
        national = {(r["theme"], r["subtheme"]): r["organisation"] for r in rows if r["municipality"] is None}
        local = {
            (r["municipality"], r["theme"], r["subtheme"]): r["organisation"]
            for r in rows
            if r["municipality"] is not None
        }
        return RoutingRules(national, local, await Organisations(self.db).known(targets))


class Cases:
    def __init__(self, db: Queries) -> None:
        self.db = db

    async def add(self, routed: HelpRequestRouted, *, sealed: str | None, at: datetime) -> bool:
        """Insert the case; False if the help request was routed before (its row exists; a
        concurrent insert waits for the other transaction and then finds it)."""
        inserted = await self.db.fetchval(
            """INSERT INTO routing_cases (help_request_id, library, decisions, routed_at, sealed)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT (help_request_id) DO NOTHING RETURNING true""",
            routed.help_request_id,
            routed.library,
            [d.model_dump(mode="json") for d in routed.decisions],
            at,
            sealed,
        )
        return bool(inserted)

    async def sealed(self, help_request_id: str) -> str | None:
        return await self.db.fetchval("SELECT sealed FROM routing_cases WHERE help_request_id = $1", help_request_id)

    async def forget_sealed(self, help_request_id: str, at: datetime) -> None:
        await self.db.fetch(
            "UPDATE routing_cases SET sealed = NULL, erased_at = $2 WHERE help_request_id = $1",
            help_request_id,
            at,
        )


_REFERRAL_COLUMNS = (
    "referral_id, help_request_id, question_index, agency, library, theme, subtheme, contact_preference, "
    "sent_at, status, version, due_at, paused_at, overdue_notified, history"
)


def _history(referral: Referral) -> list[dict[str, Any]]:
    return [{"status": h.status, "reason": h.reason, "at": h.at.isoformat(), "by": h.by} for h in referral.history]


def _referral(row: asyncpg.Record) -> Referral:
    fields = {k: row[k] for k in Referral.__dataclass_fields__ if k != "history"}
    history = tuple(
        StatusChange(status=h["status"], reason=h["reason"], at=datetime.fromisoformat(h["at"]), by=h["by"])
        for h in row["history"]
    )
    return Referral(**fields, history=history)


class Referrals:
    def __init__(self, db: Queries) -> None:
        self.db = db

    async def add(self, referrals: Iterable[Referral]) -> None:
        for r in referrals:
            await self.db.fetch(
                f"""INSERT INTO referrals ({_REFERRAL_COLUMNS})
                    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)""",
                r.referral_id,
                r.help_request_id,
                r.question_index,
                r.agency,
                r.library,
                r.theme,
                r.subtheme,
                r.contact_preference,
                r.sent_at,
                r.status,
                r.version,
                r.due_at,
                r.paused_at,
                r.overdue_notified,
                _history(r),
            )

    async def get(self, referral_id: str, *, for_update: bool = False) -> Referral | None:
        """The referral; with `for_update` its row stays locked until the transaction ends, so
        changes to one referral are made one after the other."""
        lock = " FOR UPDATE" if for_update else ""
        row = await self.db.fetchrow(
            f"SELECT {_REFERRAL_COLUMNS} FROM referrals WHERE referral_id = $1{lock}", referral_id
        )
        return _referral(row) if row else None

    async def save(self, referral: Referral) -> None:
        """Store the referral's state; the caller holds its row lock (get(for_update=True))."""
        await self.db.fetch(
            """UPDATE referrals SET status = $2, version = $3, due_at = $4, paused_at = $5,
                   overdue_notified = $6, history = $7
               WHERE referral_id = $1""",
            referral.referral_id,
            referral.status,
            referral.version,
            referral.due_at,
            referral.paused_at,
            referral.overdue_notified,
            _history(referral),
        )

    async def of_organisation(self, agency: str, listing: Listing) -> list[Referral]:
        """The organisation's referrals, newest first (index referrals_agency_sent_at);
        `listing.after` is the (sent_at, referral_id) of the last item seen."""
        where, args = ["agency = $1"], [agency]

        def arg(value: Any) -> str:
            args.append(value)
            return f"${len(args)}"

        if listing.statuses:
            where.append(f"status = ANY({arg(list(listing.statuses))}::text[])")
        if listing.after:
            at, last_id = listing.after
            where.append(f"(sent_at, referral_id) < ({arg(at)}, {arg(last_id)})")
        rows = await self.db.fetch(
            f"""SELECT {_REFERRAL_COLUMNS} FROM referrals WHERE {" AND ".join(where)}
                ORDER BY sent_at DESC, referral_id DESC LIMIT {arg(listing.limit)}""",
            *args,
        )
        return [_referral(r) for r in rows]

    async def record_read(self, referral_id: str, *, at: datetime, organisation: str, credential_id: str) -> None:
        await self.db.fetch(
            "INSERT INTO referral_reads (referral_id, read_at, organisation, credential_id) VALUES ($1, $2, $3, $4)",
            referral_id,
            at,
            organisation,
            credential_id,
        )

    async def lock_due(self, now: datetime, limit: int) -> list[Referral]:
        """Referrals past their deadline and not yet reported overdue, locked for this
        transaction. Rows another transaction holds are skipped (SKIP LOCKED): instances
        scanning at once take disjoint sets, and a row changed meanwhile is re-checked."""
        rows = await self.db.fetch(
            f"""SELECT {_REFERRAL_COLUMNS} FROM referrals
                WHERE due_at <= $1 AND due_at IS NOT NULL AND paused_at IS NULL AND NOT overdue_notified
                ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now,
            limit,
        )
        return [_referral(r) for r in rows]


class RoutingUnitOfWork:
    """Routing's repositories on one transaction, and where its events go."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.cases = Cases(uow.conn)
        self.referrals = Referrals(uow.conn)
        self.rules = Rules(uow.conn)
        self.organisations = Organisations(uow.conn)
        self.emit = uow.emit


async def seed_reference_data(uow: RoutingUnitOfWork) -> None:
    """The agencies and the contract's default rules, once; later edits are kept."""
    await uow.organisations.add_missing(default_organisations())
    await uow.rules.add_missing(default_rules())
