"""Reporting's read models in PostgreSQL (migrations/0001.read-models.sql): writing the changes
of events into one version, and the API's queries on the active version.

Writes are one multi-row upsert per table (`INSERT ... SELECT FROM unnest(...) ON CONFLICT`),
whether the changes are those of one live event or of a rebuild batch of thousands; rows go in
key order (domain.projections.Changes), so concurrent writers lock rows in the same order.
Counters add (`n = t.n + excluded.n`); patches keep what a change leaves unset (coalesce); a
referral keeps the status with the highest sequence; a location its first registration."""

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from services.reporting.adapters.versions import ReadModelVersions
from services.reporting.domain.projections import (
    Changes,
    EnrolmentState,
    Increment,
    Location,
    Payment,
    QuestionOutcome,
    QuestionRow,
    Readiness,
    ReferralChange,
    RunChange,
    SchemeCeiling,
    SubsidyChange,
)
from shared.db import Database
from shared.unit_of_work import UnitOfWork

# Every table holding a version's rows (applied_events is the versions' own).
READ_MODEL_TABLES = (
    "question_rows",
    "question_outcomes",
    "visit_counts",
    "question_counts",
    "help_given_counts",
    "outcome_counts",
    "referrals",
    "locations",
    "course_runs",
    "enrolments",
    "readiness",
    "subsidies",
    "subsidy_payments",
    "schemes",
)

# Per counter measure: its table, the dimensions (columns) and the upsert.
COUNTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "visits": (
        ("month", "library", "channel"),
        """INSERT INTO visit_counts AS t (version, month, library, channel, n)
           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[])
           ON CONFLICT (version, month, library, channel) DO UPDATE SET n = t.n + excluded.n""",
    ),
    "questions": (
        ("month", "library", "location", "channel", "category", "theme", "subtheme"),
        """INSERT INTO question_counts AS t (version, month, library, location, channel, category, theme, subtheme, n)
           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                                    $8::text[], $9::bigint[])
           ON CONFLICT (version, month, library, location, channel, category, theme, subtheme)
           DO UPDATE SET n = t.n + excluded.n""",
    ),
    "help_given": (
        ("month", "library", "help"),
        """INSERT INTO help_given_counts AS t (version, month, library, help, n)
           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[])
           ON CONFLICT (version, month, library, help) DO UPDATE SET n = t.n + excluded.n""",
    ),
    "outcomes": (
        ("month", "library", "organisation", "outcome"),
        """INSERT INTO outcome_counts AS t (version, month, library, organisation, outcome, n)
           SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
           ON CONFLICT (version, month, library, organisation, outcome) DO UPDATE SET n = t.n + excluded.n""",
    ),
}

PUT_QUESTION_ROWS = """
INSERT INTO question_rows (version, help_request_id, question, date, library, location, channel, category, theme,
                           subtheme, help_given, duration_minutes)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::date[], $5::text[], $6::text[], $7::text[], $8::text[],
                         $9::text[], $10::text[], $11::text[], $12::int[])
ON CONFLICT (version, help_request_id, question) DO UPDATE SET
    date = excluded.date, library = excluded.library, location = excluded.location, channel = excluded.channel,
    category = excluded.category, theme = excluded.theme, subtheme = excluded.subtheme,
    help_given = excluded.help_given, duration_minutes = excluded.duration_minutes"""

PUT_QUESTION_OUTCOMES = """
INSERT INTO question_outcomes (version, help_request_id, question, outcome, referred_to)
SELECT $1, * FROM unnest($2::text[], $3::int[], $4::text[], $5::text[])
ON CONFLICT (version, help_request_id, question) DO UPDATE SET
    outcome = excluded.outcome, referred_to = excluded.referred_to"""

PATCH_REFERRALS = """
INSERT INTO referrals AS t (version, referral_id, agency, library, theme, sent_at, status, sequence, accepted_at,
                            overdue)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::text[], $8::int[],
                         $9::timestamptz[], $10::boolean[])
ON CONFLICT (version, referral_id) DO UPDATE SET
    agency = coalesce(excluded.agency, t.agency),
    library = coalesce(excluded.library, t.library),
    theme = coalesce(excluded.theme, t.theme),
    sent_at = coalesce(excluded.sent_at, t.sent_at),
    status = CASE WHEN excluded.sequence >= coalesce(t.sequence, 0) THEN excluded.status ELSE t.status END,
    sequence = greatest(t.sequence, excluded.sequence),
    accepted_at = coalesce(excluded.accepted_at, t.accepted_at),
    overdue = t.overdue OR excluded.overdue"""

ADD_LOCATIONS = """
INSERT INTO locations (version, library, code, opened_at)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::timestamptz[])
ON CONFLICT (version, library, code) DO NOTHING"""

PATCH_RUNS = """
INSERT INTO course_runs AS t (version, run_id, library, course_type, capacity, first_session_at, status)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::timestamptz[], $7::text[])
ON CONFLICT (version, run_id) DO UPDATE SET
    library = coalesce(excluded.library, t.library),
    course_type = coalesce(excluded.course_type, t.course_type),
    capacity = coalesce(excluded.capacity, t.capacity),
    first_session_at = coalesce(excluded.first_session_at, t.first_session_at),
    status = coalesce(excluded.status, t.status)"""

PUT_ENROLMENTS = """
INSERT INTO enrolments (version, run_id, enrolment_id, state)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])
ON CONFLICT (version, run_id, enrolment_id) DO UPDATE SET state = excluded.state"""

PUT_READINESS = """
INSERT INTO readiness (version, library, trained)
SELECT $1, * FROM unnest($2::text[], $3::jsonb[])
ON CONFLICT (version, library) DO UPDATE SET trained = excluded.trained"""

PATCH_SUBSIDIES = """
INSERT INTO subsidies AS t (version, application_id, scheme, library, requested_cents, granted_cents,
                            extension_cents, status)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[])
ON CONFLICT (version, application_id) DO UPDATE SET
    scheme = excluded.scheme,
    library = excluded.library,
    requested_cents = coalesce(excluded.requested_cents, t.requested_cents),
    granted_cents = coalesce(excluded.granted_cents, t.granted_cents),
    extension_cents = coalesce(excluded.extension_cents, t.extension_cents),
    status = coalesce(excluded.status, t.status)"""

PUT_PAYMENTS = """
INSERT INTO subsidy_payments (version, application_id, tranche, amount_cents)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])
ON CONFLICT (version, application_id, tranche) DO UPDATE SET amount_cents = excluded.amount_cents"""

PUT_SCHEMES = """
INSERT INTO schemes (version, scheme, name, budget_ceiling_cents)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::bigint[])
ON CONFLICT (version, scheme) DO UPDATE SET
    name = excluded.name, budget_ceiling_cents = excluded.budget_ceiling_cents"""


def _columns(rows: Sequence[Any], *names: str) -> list[list[Any]]:
    """Rows of changes as one list per column, the parameters of an `unnest` upsert."""
    return [[getattr(r, name) for r in rows] for name in names]


class ReadModels:
    """Writes changes into the read models of one version, on a unit of work's connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def apply(self, version: int, changes: Changes) -> None:
        """One upsert per table that has changes, tables always in this order."""
        put = self._put
        await self._counters(version, changes.of(Increment))
        await put(
            PUT_QUESTION_ROWS,
            version,
            changes.of(QuestionRow),
            "help_request_id",
            "question",
            "date",
            "library",
            "location",
            "channel",
            "category",
            "theme",
            "subtheme",
            "help_given",
            "duration_minutes",
        )
        await put(
            PUT_QUESTION_OUTCOMES,
            version,
            changes.of(QuestionOutcome),
            "help_request_id",
            "question",
            "outcome",
            "referred_to",
        )
        await put(
            PATCH_REFERRALS,
            version,
            changes.of(ReferralChange),
            "referral_id",
            "agency",
            "library",
            "theme",
            "sent_at",
            "status",
            "sequence",
            "accepted_at",
            "overdue",
        )
        await put(ADD_LOCATIONS, version, changes.of(Location), "library", "code", "opened_at")
        await put(
            PATCH_RUNS,
            version,
            changes.of(RunChange),
            "run_id",
            "library",
            "course_type",
            "capacity",
            "first_session_at",
            "status",
        )
        await put(PUT_ENROLMENTS, version, changes.of(EnrolmentState), "run_id", "enrolment_id", "state")
        await put(PUT_READINESS, version, changes.of(Readiness), "library", "trained")
        await put(
            PATCH_SUBSIDIES,
            version,
            changes.of(SubsidyChange),
            "application_id",
            "scheme",
            "library",
            "requested_cents",
            "granted_cents",
            "extension_cents",
            "status",
        )
        await put(PUT_PAYMENTS, version, changes.of(Payment), "application_id", "tranche", "amount_cents")
        await put(PUT_SCHEMES, version, changes.of(SchemeCeiling), "scheme", "name", "budget_ceiling_cents")

    async def _put(self, sql: str, version: int, rows: list[Any], *names: str) -> None:
        if rows:
            await self.conn.execute(sql, version, *_columns(rows, *names))

    async def _counters(self, version: int, increments: list[Increment]) -> None:
        for measure, (dimensions, sql) in COUNTERS.items():
            mine = [i for i in increments if i.measure == measure]
            if not mine:
                continue
            values = [dict(i.dimensions) for i in mine]
            columns = [[v[d] for v in values] for d in dimensions]
            await self.conn.execute(sql, version, *columns, [i.amount for i in mine])

    async def drop(self, version: int) -> None:
        """Delete every row of a version (replaced or abandoned), table by table."""
        for table in READ_MODEL_TABLES:
            await self.conn.execute(f"DELETE FROM {table} WHERE version = $1", version)

    async def analyze(self) -> None:
        """Fresh planner statistics after a rebuild wrote a whole version: with the statistics
        of before, the planner takes the new version for empty and joins it row by row."""
        await self.conn.execute(f"ANALYZE {', '.join(READ_MODEL_TABLES)}")


class ReportingUnitOfWork:
    """Reporting's repositories on one transaction: the consumer's unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.versions = ReadModelVersions(uow.conn)
        self.read_models = ReadModels(uow.conn)
        self.emit = uow.emit


# The read side: the API's queries, all on the active version within one snapshot.

QUESTION_TOTALS = """
SELECT CASE $2 WHEN 'month' THEN month WHEN 'library' THEN library
               WHEN 'location' THEN CASE WHEN location = '' THEN '' ELSE library || ':' || location END
               WHEN 'category' THEN category WHEN 'theme' THEN theme WHEN 'subtheme' THEN subtheme
               WHEN 'channel' THEN channel END AS value,
       sum(n)::bigint AS n
FROM question_counts
WHERE version = $1
  AND ($3::text IS NULL OR library = $3)
  AND ($4::text IS NULL OR month >= $4)
  AND ($5::text IS NULL OR month <= $5)
  AND ($6::text[] IS NULL OR theme = ANY($6))
GROUP BY 1"""

OUTCOME_TOTALS = """
SELECT CASE $2 WHEN 'organisation' THEN organisation WHEN 'outcome' THEN outcome WHEN 'month' THEN month
               WHEN 'library' THEN library END AS value,
       sum(n)::bigint AS n
FROM outcome_counts
WHERE version = $1 AND ($3::text IS NULL OR library = $3) AND ($4::text IS NULL OR organisation = $4)
  AND ($5::text IS NULL OR month LIKE $5 || '-__')
GROUP BY 1"""

HELP_GIVEN_TOTALS = """
SELECT help AS value, sum(n)::bigint AS n
FROM help_given_counts
WHERE version = $1 AND ($2::text IS NULL OR library = $2) AND ($3::text IS NULL OR month LIKE $3 || '-__')
GROUP BY 1"""

VISIT_TOTALS = """
SELECT sum(n)::bigint FROM visit_counts WHERE version = $1 AND ($2::text IS NULL OR library = $2)"""

COURSE_FIGURES = """
SELECT r.course_type,
       count(*) AS runs,
       coalesce(sum(r.capacity) FILTER (WHERE r.status = 'scheduled'), 0)::bigint AS seats,
       coalesce(sum(e.enrolled), 0)::bigint AS enrolled,
       coalesce(sum(e.waitlisted), 0)::bigint AS waitlisted,
       coalesce(sum(e.completed), 0)::bigint AS completed
FROM course_runs r
LEFT JOIN (
    SELECT run_id,
           count(*) FILTER (WHERE state IN ('enrolled', 'completed')) AS enrolled,
           count(*) FILTER (WHERE state = 'waitlisted') AS waitlisted,
           count(*) FILTER (WHERE state = 'completed') AS completed
    FROM enrolments WHERE version = $1 GROUP BY run_id
) e USING (run_id)
WHERE r.version = $1 AND r.course_type IS NOT NULL AND ($2::text IS NULL OR r.library = $2)
GROUP BY r.course_type"""

SUBSIDY_FIGURES = """
SELECT s.scheme,
       count(*) AS applications,
       coalesce(sum(s.requested_cents), 0)::bigint AS requested_cents,
       coalesce(sum(coalesce(s.granted_cents, 0) + coalesce(s.extension_cents, 0)), 0)::bigint AS granted_cents,
       coalesce(sum(p.paid), 0)::bigint AS paid_cents
FROM subsidies s
LEFT JOIN (
    SELECT application_id, sum(amount_cents) AS paid FROM subsidy_payments WHERE version = $1 GROUP BY 1
) p USING (application_id)
WHERE s.version = $1
GROUP BY s.scheme"""

QUESTION_ROWS_BETWEEN = """
SELECT r.help_request_id, r.question, r.date, r.library,
       CASE WHEN r.location = '' THEN '' ELSE r.library || ':' || r.location END AS location,
       r.channel, r.category, r.theme, r.subtheme,
       r.help_given, coalesce(o.outcome, '') AS outcome, coalesce(o.referred_to, '') AS referred_to,
       r.duration_minutes
FROM question_rows r
LEFT JOIN question_outcomes o USING (version, help_request_id, question)
WHERE r.version = $1
  AND ($2::date IS NULL OR r.date >= $2)
  AND ($3::date IS NULL OR r.date <= $3)
  AND ($4::text IS NULL OR r.library = $4)
ORDER BY r.date, r.help_request_id COLLATE "C", r.question"""


# The protected universes (see domain/disclosure.py): the counts one year's figures are cut from.

QUESTION_CUBE = """
SELECT library, location, month, channel, category, theme, subtheme, sum(n)::bigint AS n
FROM question_counts
WHERE version = $1 AND month LIKE $2 || '-__' AND ($3::text[] IS NULL OR theme = ANY($3))
GROUP BY 1, 2, 3, 4, 5, 6, 7"""

# How questions were answered, other than by a referral (a referral has its own status).
ANSWER_CUBE = """
SELECT r.library, o.outcome, o.referred_to AS organisation, count(*)::bigint AS n
FROM question_rows r JOIN question_outcomes o USING (version, help_request_id, question)
WHERE r.version = $1 AND r.date >= $2 AND r.date < $3 AND o.outcome <> 'referred'
GROUP BY 1, 2, 3"""

REFERRAL_CUBE = """
SELECT library, agency, coalesce(status, 'sent') AS status, overdue, to_char(sent_at, 'YYYY-MM') AS month,
       count(*)::bigint AS n
FROM referrals
WHERE version = $1 AND sent_at >= $2 AND sent_at < $3 AND ($4::text IS NULL OR agency = $4)
GROUP BY 1, 2, 3, 4, 5"""

REFERRAL_WAITS_IN_YEAR = """
SELECT agency, sent_at, accepted_at
FROM referrals
WHERE version = $1 AND sent_at >= $2 AND sent_at < $3 AND ($4::text IS NULL OR agency = $4)
  AND accepted_at IS NOT NULL"""

HELP_GIVEN_CUBE = """
SELECT library, help, sum(n)::bigint AS n FROM help_given_counts
WHERE version = $1 AND month LIKE $2 || '-__'
GROUP BY 1, 2"""

HELP_GIVEN_IN_THEMES_CUBE = """
SELECT library, h AS help, count(DISTINCT help_request_id)::bigint AS n
FROM question_rows, unnest(string_to_array(help_given, ';')) AS h
WHERE version = $1 AND date >= $2 AND date < $3 AND theme = ANY($4::text[]) AND h <> ''
GROUP BY 1, 2"""


class ActiveReadModels:
    """The queries of the API, on one version, on one connection in one snapshot."""

    def __init__(self, conn: asyncpg.Connection, version: int) -> None:
        self.conn = conn
        self.version = version

    async def question_totals(
        self,
        by: str,
        *,
        library: str | None = None,
        month_from: str | None = None,
        month_to: str | None = None,
        themes: set[str] | None = None,
    ) -> list[tuple[str, int]]:
        rows = await self.conn.fetch(
            QUESTION_TOTALS,
            self.version,
            by,
            library,
            month_from,
            month_to,
            sorted(themes) if themes is not None else None,
        )
        return [(r["value"], r["n"]) for r in rows]

    async def outcome_totals(
        self, by: str, *, library: str | None = None, organisation: str | None = None, year: int | None = None
    ) -> list[tuple[str, int]]:
        rows = await self.conn.fetch(OUTCOME_TOTALS, self.version, by, library, organisation, _text(year))
        return [(r["value"], r["n"]) for r in rows]

    async def help_given_totals(self, *, library: str | None = None, year: int | None = None) -> list[tuple[str, int]]:
        rows = await self.conn.fetch(HELP_GIVEN_TOTALS, self.version, library, _text(year))
        return [(r["value"], r["n"]) for r in rows]

    async def visits(self, *, library: str | None = None) -> int:
        return await self.conn.fetchval(VISIT_TOTALS, self.version, library) or 0

    async def course_figures(self, library: str | None) -> list[asyncpg.Record]:
        return await self.conn.fetch(COURSE_FIGURES, self.version, library)

    async def readiness(self, library: str | None) -> dict[str, dict[str, int]]:
        rows = await self.conn.fetch(
            "SELECT library, trained FROM readiness WHERE version = $1 AND ($2::text IS NULL OR library = $2)",
            self.version,
            library,
        )
        return {r["library"]: r["trained"] for r in rows}

    async def subsidy_figures(self) -> list[asyncpg.Record]:
        return await self.conn.fetch(SUBSIDY_FIGURES, self.version)

    async def scheme_ceilings(self) -> dict[str, int]:
        rows = await self.conn.fetch(
            "SELECT scheme, budget_ceiling_cents FROM schemes WHERE version = $1", self.version
        )
        return {r["scheme"]: r["budget_ceiling_cents"] for r in rows}

    async def locations(self) -> list[tuple[str, datetime]]:
        rows = await self.conn.fetch("SELECT library, opened_at FROM locations WHERE version = $1", self.version)
        return [(r["library"], r["opened_at"]) for r in rows]

    async def rollout_goals(self) -> dict[int, int]:
        rows = await self.conn.fetch("SELECT year, goal FROM rollout_goals")
        return {r["year"]: r["goal"] for r in rows}

    async def question_cube(self, year: int, themes: set[str] | None) -> list[asyncpg.Record]:
        return await self.conn.fetch(QUESTION_CUBE, self.version, f"{year:04d}", _sorted(themes))

    async def answer_cube(self, year: int) -> list[asyncpg.Record]:
        return await self.conn.fetch(ANSWER_CUBE, self.version, *_year(year))

    async def referral_cube(self, year: int, agency: str | None) -> list[asyncpg.Record]:
        start, end = _year(year)
        return await self.conn.fetch(REFERRAL_CUBE, self.version, _moment(start), _moment(end), agency)

    async def referral_waits_in(self, year: int, agency: str | None) -> list[asyncpg.Record]:
        start, end = _year(year)
        return await self.conn.fetch(REFERRAL_WAITS_IN_YEAR, self.version, _moment(start), _moment(end), agency)

    async def help_given_cube(self, year: int, themes: set[str] | None) -> list[asyncpg.Record]:
        if themes is None:
            return await self.conn.fetch(HELP_GIVEN_CUBE, self.version, f"{year:04d}")
        return await self.conn.fetch(HELP_GIVEN_IN_THEMES_CUBE, self.version, *_year(year), sorted(themes))

    async def question_rows(
        self, date_from: date | None, date_to: date | None, library: str | None
    ) -> list[asyncpg.Record]:
        return await self.conn.fetch(QUESTION_ROWS_BETWEEN, self.version, date_from, date_to, library)


def _year(year: int) -> tuple[date, date]:
    return date(year, 1, 1), date(year + 1, 1, 1)


def _moment(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _text(year: int | None) -> str | None:
    return f"{year:04d}" if year is not None else None


def _sorted(themes: set[str] | None) -> list[str] | None:
    return sorted(themes) if themes is not None else None


class ReportingQueries:
    """Opens the active version for reading: a read-only snapshot, so a request's queries see
    one version, complete, even if a rebuild swaps versions meanwhile."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @asynccontextmanager
    async def active(self) -> AsyncIterator[ActiveReadModels]:
        async with self.db.pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            version = await conn.fetchval("SELECT version FROM active_version")
            yield ActiveReadModels(conn, version)

    async def set_rollout_goal(self, year: int, goal: int) -> None:
        """The KB's coverage goal for a year (IDO locations open at its end): set or replaced."""
        async with self.db.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO rollout_goals (year, goal) VALUES ($1, $2)
                   ON CONFLICT (year) DO UPDATE SET goal = excluded.goal, updated_at = now()""",
                year,
                goal,
            )
