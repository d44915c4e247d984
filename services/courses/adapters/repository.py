"""Courses' tables (migrations/0001.courses.sql) as repositories: plain SQL on an asyncpg
connection inside a unit of work, or on the pool for the read side. No rules here: the domain
decides, these load and save.

A run is loaded for a change with `Runs.lock`: `SELECT ... FOR UPDATE` on its row, then its
sessions and enrolments. The row lock is held until the transaction ends, so every change to
one run (and the outbox rows of its events) is serial across all instances."""

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import astuple
from datetime import datetime

import asyncpg

from services.courses.domain.model import (
    CourseAdvice,
    CourseRun,
    CourseType,
    Enrolment,
    LibraryReadiness,
    Location,
    Participant,
    Session,
    teacher_busy,
)
from shared.db import Database, Executor
from shared.unit_of_work import UnitOfWork

# An asyncpg connection (in a transaction) or the pool (reads): both fetch and execute.

_TYPE_COLUMNS = (
    "code, name, kind, sessions, session_minutes, max_participants, certified_teacher_required, intake_first,"
    " sessions_to_complete, flexible_sessions"
)


class CourseTypes:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def get(self, code: str) -> CourseType | None:
        row = await self.conn.fetchrow(f"SELECT {_TYPE_COLUMNS} FROM course_types WHERE code = $1", code)
        return CourseType.model_validate(dict(row)) if row else None

    async def all(self) -> list[CourseType]:
        rows = await self.conn.fetch(f"SELECT {_TYPE_COLUMNS} FROM course_types ORDER BY code")
        return [CourseType.model_validate(dict(r)) for r in rows]

    async def put(self, course: CourseType) -> None:
        await self.conn.execute(
            f"INSERT INTO course_types ({_TYPE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (code) DO UPDATE SET name = $2, kind = $3, sessions = $4, session_minutes = $5,"
            " max_participants = $6, certified_teacher_required = $7, intake_first = $8, sessions_to_complete = $9,"
            " flexible_sessions = $10",
            *_type_values(course),
        )

    async def add_missing(self, courses: list[CourseType]) -> None:
        """Seed: add the types that are not there; a type KB staff changed stays as they left it."""
        await self.conn.executemany(
            f"INSERT INTO course_types ({_TYPE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " ON CONFLICT (code) DO NOTHING",
            [_type_values(c) for c in courses],
        )


def _type_values(c: CourseType) -> tuple:
    return (
        c.code,
        c.name,
        c.kind,
        c.sessions,
        c.session_minutes,
        c.max_participants,
        c.certified_teacher_required,
        c.intake_first,
        c.sessions_to_complete,
        c.flexible_sessions,
    )


class Teachers:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def certified(self, teacher: str, course_type: str) -> bool:
        return bool(
            await self.conn.fetchval("SELECT $2 = ANY(certified_for) FROM teachers WHERE id = $1", teacher, course_type)
        )

    async def put(self, teacher: str, name: str, certified_for: list[str]) -> None:
        await self.conn.execute(
            "INSERT INTO teachers (id, name, certified_for) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO UPDATE SET name = $2, certified_for = $3",
            teacher,
            name,
            certified_for,
        )

    async def busy(self, teacher: str) -> list[Session]:
        """The sessions the teacher teaches in scheduled runs, read under a lock on the teacher
        held until the transaction ends: two instances scheduling one teacher at once take turns,
        so the second sees the first's sessions. (The exclusion constraint alone settles it too,
        but two inserts that each wait for the other end in a deadlock instead of a clear 422.)"""
        # The two-key form: a lock space of its own, apart from the relay's one-key lock.
        await self.conn.execute("SELECT pg_advisory_xact_lock(1, hashtext($1))", teacher)
        rows = await self.conn.fetch(
            "SELECT starts_at, ends_at FROM course_sessions WHERE teacher = $1 AND run_scheduled ORDER BY starts_at",
            teacher,
        )
        return [Session(starts_at=r["starts_at"], ends_at=r["ends_at"]) for r in rows]


class Locations:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def put(self, location_id: str, location: Location) -> None:
        await self.conn.execute(
            "INSERT INTO locations (id, library, code, name, postcode, municipality) VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (id) DO UPDATE SET library = $2, code = $3, name = $4, postcode = $5, municipality = $6",
            location_id,
            location.library,
            location.code,
            location.name,
            location.postcode,
            location.municipality,
        )

    async def get(self, library: str, code: str) -> Location | None:
        row = await self.conn.fetchrow(
            "SELECT library, code, name, postcode, municipality FROM locations WHERE library = $1 AND code = $2",
            library,
            code,
        )
        return Location(**dict(row)) if row else None


_RUN_COLUMNS = (
    "id, library, course_type, location, postcode, teacher, capacity, seats_taken, next_position, status,"
    " scheduled_at, attendance_recorded_at, participants_erased_at"
)
_ENROLMENT_COLUMNS = (
    "id, run_id, library, position, status, seat, offered_until, name, phone, email, staff_member, consented_at,"
    " attended, completed_at, personal_data_erased_at"
)


def _enrolment(row: asyncpg.Record) -> Enrolment:
    return Enrolment(
        id=row["id"],
        run_id=row["run_id"],
        library=row["library"],
        position=row["position"],
        status=row["status"],
        participant=Participant(
            name=row["name"], phone=row["phone"], email=row["email"], staff_member=row["staff_member"]
        ),
        consented_at=row["consented_at"],
        seat=row["seat"],
        offered_until=row["offered_until"],
        attended=set(row["attended"]),
        completed_at=row["completed_at"],
        personal_data_erased_at=row["personal_data_erased_at"],
    )


def _enrolment_values(e: Enrolment) -> tuple:
    p = e.participant
    return (
        e.id,
        e.run_id,
        e.library,
        e.position,
        e.status,
        e.seat,
        e.offered_until,
        p.name,
        p.phone,
        p.email,
        p.staff_member,
        e.consented_at,
        sorted(e.attended),
        e.completed_at,
        e.personal_data_erased_at,
    )


def _enrolment_changes(e: Enrolment) -> tuple:
    """What an enrolment may change once added (its run, position, staff id and consent never do)."""
    p = e.participant
    return (
        e.id,
        e.status,
        e.seat,
        e.offered_until,
        p.name,
        p.phone,
        p.email,
        sorted(e.attended),
        e.completed_at,
        e.personal_data_erased_at,
    )


class Runs:
    """Course runs with their sessions and enrolments."""

    def __init__(self, conn: Executor) -> None:
        self.conn = conn
        self._loaded: dict[str, dict[str, tuple]] = {}  # run id -> enrolment id -> values as loaded
        self._status: dict[str, str] = {}  # run id -> status as loaded

    async def add(self, run: CourseRun) -> None:
        try:
            await self.conn.execute(
                "INSERT INTO course_runs (id, library, course_type, location, postcode, teacher, capacity, seats_taken,"
                " next_position, status, first_session_at, last_session_ends_at, scheduled_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                run.id,
                run.library,
                run.course_type,
                run.location,
                run.postcode,
                run.teacher,
                run.capacity,
                run.seats_taken,
                run.next_position,
                run.status,
                run.first_session_at,
                run.last_session_ends_at,
                run.scheduled_at,
            )
            await self.conn.executemany(
                "INSERT INTO course_sessions (run_id, number, starts_at, ends_at, teacher) VALUES ($1, $2, $3, $4, $5)",
                [(run.id, n, s.starts_at, s.ends_at, run.teacher) for n, s in enumerate(run.sessions, 1)],
            )
        except asyncpg.ExclusionViolationError:
            # Another instance scheduled this teacher at an overlapping time a moment before.
            raise teacher_busy() from None
        self._loaded[run.id], self._status[run.id] = {}, run.status

    async def lock(self, run_id: str) -> CourseRun | None:
        """The run and its enrolments, its row locked until the transaction ends."""
        row = await self.conn.fetchrow(f"SELECT {_RUN_COLUMNS} FROM course_runs WHERE id = $1 FOR UPDATE", run_id)
        if row is None:
            return None
        (run,) = await self._with_sessions([row])
        rows = await self.conn.fetch(
            f"SELECT {_ENROLMENT_COLUMNS} FROM enrolments WHERE run_id = $1 ORDER BY position", run_id
        )
        run.enrolments = {r["id"]: _enrolment(r) for r in rows}
        self._loaded[run_id] = {e.id: _enrolment_changes(e) for e in run.enrolments.values()}
        self._status[run_id] = run.status
        return run

    async def save(self, run: CourseRun) -> None:
        """Write what changed since `lock` (or `add`): the run's row and the enrolments that changed."""
        loaded = self._loaded[run.id]
        await self.conn.execute(
            "UPDATE course_runs SET capacity = $2, seats_taken = $3, next_position = $4, status = $5,"
            " attendance_recorded_at = $6, participants_erased_at = $7 WHERE id = $1",
            run.id,
            run.capacity,
            run.seats_taken,
            run.next_position,
            run.status,
            run.attendance_recorded_at,
            run.participants_erased_at,
        )
        if run.status != self._status[run.id]:  # a cancelled run's teacher is free again at its times
            await self.conn.execute(
                "UPDATE course_sessions SET run_scheduled = $2 WHERE run_id = $1", run.id, run.status == "scheduled"
            )
            self._status[run.id] = run.status
        enrolments = run.in_order()
        added = [_enrolment_values(e) for e in enrolments if e.id not in loaded]
        changes = [_enrolment_changes(e) for e in enrolments]
        changed = [c for c in changes if c[0] in loaded and c != loaded[c[0]]]
        if added:
            await self.conn.executemany(
                f"INSERT INTO enrolments ({_ENROLMENT_COLUMNS})"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                added,
            )
        if changed:
            await self.conn.executemany(
                "UPDATE enrolments SET status = $2, seat = $3, offered_until = $4, name = $5, phone = $6,"
                " email = $7, attended = $8, completed_at = $9, personal_data_erased_at = $10 WHERE id = $1",
                changed,
            )
        self._loaded[run.id] = {c[0]: c for c in changes}

    async def run_of_enrolment(self, enrolment_key: str) -> str | None:
        return await self.conn.fetchval("SELECT run_id FROM enrolments WHERE id = $1", enrolment_key)

    async def with_expired_offers(self, now: datetime) -> list[str]:
        rows = await self.conn.fetch(
            "SELECT DISTINCT run_id FROM enrolments WHERE status = 'offered' AND offered_until <= $1", now
        )
        return [r["run_id"] for r in rows]

    async def erase_participants_of_runs_ended_before(self, moment: datetime, now: datetime) -> list[str]:
        """Remove names and contact details from the enrolments of the runs whose last session
        ended before `moment`; staff ids stay for the library's readiness. The runs' rows are
        locked first (in id order), so this waits for any change in progress on them, and a
        concurrent sweep (another instance) re-reads them after us and finds them done."""
        rows = await self.conn.fetch(
            "WITH due AS (SELECT id FROM course_runs WHERE participants_erased_at IS NULL"
            " AND last_session_ends_at < $1 ORDER BY id FOR UPDATE)"  # in one order: no deadlock between sweeps
            " UPDATE course_runs r SET participants_erased_at = $2 FROM due WHERE r.id = due.id RETURNING r.id",
            moment,
            now,
        )
        erased = [r["id"] for r in rows]
        if erased:
            await self.conn.execute(
                "UPDATE enrolments SET name = NULL, phone = NULL, email = NULL, personal_data_erased_at = $2"
                " WHERE run_id = ANY($1::text[])",
                erased,
                now,
            )
        return erased

    # -- the read side (no locks) --------------------------------------------------------------

    async def get(self, run_id: str) -> CourseRun | None:
        """The run without its enrolments (`seats_taken` is the run's own count)."""
        row = await self.conn.fetchrow(f"SELECT {_RUN_COLUMNS} FROM course_runs WHERE id = $1", run_id)
        return (await self._with_sessions([row]))[0] if row else None

    async def enrolment(self, enrolment_key: str) -> Enrolment | None:
        row = await self.conn.fetchrow(f"SELECT {_ENROLMENT_COLUMNS} FROM enrolments WHERE id = $1", enrolment_key)
        return _enrolment(row) if row else None

    async def enrolments_of(self, run_id: str) -> list[Enrolment]:
        rows = await self.conn.fetch(
            f"SELECT {_ENROLMENT_COLUMNS} FROM enrolments WHERE run_id = $1 ORDER BY position", run_id
        )
        return [_enrolment(r) for r in rows]

    async def upcoming_near(
        self, postcode_area: int, now: datetime, *, course_type: str | None, kind: str | None, limit: int
    ) -> list[CourseRun]:
        """Scheduled runs that have not started, nearest postcode area first, then soonest."""
        rows = await self.conn.fetch(
            f"SELECT {_RUN_COLUMNS} FROM course_runs"
            " WHERE status = 'scheduled' AND first_session_at > $2"
            " AND ($3::text IS NULL OR course_type = $3)"
            " AND ($4::text IS NULL OR course_type IN (SELECT code FROM course_types WHERE kind = $4))"
            " ORDER BY abs(postcode_area - $1), first_session_at, scheduled_at, id LIMIT $5",
            postcode_area,
            now,
            course_type,
            kind,
            limit,
        )
        return await self._with_sessions(rows)

    async def upcoming_of(self, library: str, course_types: list[str], now: datetime) -> list[CourseRun]:
        """The library's scheduled runs of these types that have not started, in the order of
        `course_types`, then soonest first."""
        rows = await self.conn.fetch(
            f"SELECT {_RUN_COLUMNS} FROM course_runs"
            " WHERE library = $1 AND status = 'scheduled' AND course_type = ANY($2::text[]) AND first_session_at > $3"
            " ORDER BY array_position($2::text[], course_type), first_session_at, scheduled_at, id",
            library,
            course_types,
            now,
        )
        return await self._with_sessions(rows)

    async def _with_sessions(self, rows: list[asyncpg.Record]) -> list[CourseRun]:
        ids = [r["id"] for r in rows]
        sessions: dict[str, list[Session]] = {i: [] for i in ids}
        for s in await self.conn.fetch(
            "SELECT run_id, starts_at, ends_at FROM course_sessions WHERE run_id = ANY($1::text[])"
            " ORDER BY run_id, number",
            ids,
        ):
            sessions[s["run_id"]].append(Session(starts_at=s["starts_at"], ends_at=s["ends_at"]))
        return [CourseRun(**dict(r), sessions=sessions[r["id"]]) for r in rows]


class Readiness:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn
        self._loaded: dict[str, set[tuple[str, str]]] = {}

    async def lock(self, library: str) -> LibraryReadiness:
        """The library's readiness, its row locked until the transaction ends (created if new)."""
        await self.conn.execute(
            "INSERT INTO library_readiness (library) VALUES ($1) ON CONFLICT (library) DO NOTHING", library
        )
        await self.conn.execute("SELECT 1 FROM library_readiness WHERE library = $1 FOR UPDATE", library)
        readiness = LibraryReadiness(library)
        rows = await self.conn.fetch(
            "SELECT training, staff_member FROM trained_staff WHERE library = $1 ORDER BY training, staff_member",
            library,
        )
        for r in rows:
            readiness.trained.setdefault(r["training"], set()).add(r["staff_member"])
        self._loaded[library] = {(r["training"], r["staff_member"]) for r in rows}
        return readiness

    async def save(self, readiness: LibraryReadiness, at: datetime) -> None:
        trained = {(t, s) for t, staff in readiness.trained.items() for s in staff}
        added = sorted(trained - self._loaded.get(readiness.library, set()))
        if added:
            await self.conn.executemany(
                "INSERT INTO trained_staff (library, training, staff_member, trained_at) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT DO NOTHING",
                [(readiness.library, t, s, at) for t, s in added],
            )
        await self.conn.execute(
            "UPDATE library_readiness SET changed_at = $2 WHERE library = $1", readiness.library, at
        )
        self._loaded[readiness.library] = trained

    async def trained(self, library: str) -> dict[str, list[str]]:
        rows = await self.conn.fetch(
            "SELECT training, staff_member FROM trained_staff WHERE library = $1 ORDER BY training, staff_member",
            library,
        )
        found: dict[str, list[str]] = {}
        for r in rows:
            found.setdefault(r["training"], []).append(r["staff_member"])
        return found


class Advice:
    def __init__(self, conn: Executor) -> None:
        self.conn = conn

    async def add(self, advice: CourseAdvice) -> None:
        """ON CONFLICT DO NOTHING: the same decision delivered again changes nothing."""
        await self.conn.execute(
            "INSERT INTO course_advice (help_request_id, question_index, library, theme, course_types, advised_at)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            *astuple(advice),
        )

    async def for_request(self, help_request_id: str) -> list[CourseAdvice]:
        rows = await self.conn.fetch(
            "SELECT help_request_id, question_index, library, theme, course_types, advised_at FROM course_advice"
            " WHERE help_request_id = $1 ORDER BY question_index",
            help_request_id,
        )
        return [CourseAdvice(**dict(r)) for r in rows]


class CoursesRepositories:
    """Courses' repositories on one connection (a transaction) or on the pool (reads)."""

    def __init__(self, conn: Executor) -> None:
        self.course_types = CourseTypes(conn)
        self.teachers = Teachers(conn)
        self.locations = Locations(conn)
        self.runs = Runs(conn)
        self.readiness = Readiness(conn)
        self.advice = Advice(conn)


class CoursesUnitOfWork(CoursesRepositories):
    """The repositories on one transaction, and the events that commit with it."""

    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow.conn)
        self.emit = uow.emit


def reading(db: Database) -> CoursesRepositories:
    """The repositories on the pool, for the read side (each query its own snapshot)."""
    return CoursesRepositories(db.pool)


def units_of_work(db: Database) -> Callable[[], AbstractAsyncContextManager[CoursesUnitOfWork]]:
    """Opens one courses unit of work per call: for jobs that handle several runs, each in its own."""

    @asynccontextmanager
    async def start() -> AsyncIterator[CoursesUnitOfWork]:
        async with db.unit_of_work() as tx:
            yield CoursesUnitOfWork(tx)

    return start
