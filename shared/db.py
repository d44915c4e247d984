"""PostgreSQL through asyncpg: a connection pool per service process, its own database and
login role, JSON columns decoded to Python, and the administrator's one task (`ido db setup`):
create each service's role and database, which no other service's role may connect to."""

import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeAlias
from uuid import UUID

import asyncpg

from shared.metrics import DB_POOL_IDLE, DB_POOL_IN_USE, DB_POOL_WAITING
from shared.settings import SERVICES, InfraSettings
from shared.unit_of_work import UnitOfWork


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> str:
    return json.dumps(value, default=_json_default, separators=(",", ":"))


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=dumps, decoder=json.loads, schema="pg_catalog")


async def _no_session_state(conn: asyncpg.Connection) -> None:
    """Pool connections never keep session state (no SET, LISTEN or session lock: those live on
    the relay's own connection), so returning one to the pool needs no reset query: asyncpg's
    default costs a round trip and server work on every release."""


async def connect(url: str, passfile: Path, application_name: str | None = None) -> asyncpg.Connection:
    """One connection outside the pool (the relay's listener and lock holder, the admin). The
    application name shows in pg_stat_activity (which instance relays, for an operator)."""
    settings = {"application_name": application_name} if application_name else None
    conn = await asyncpg.connect(url, passfile=str(passfile), server_settings=settings)
    await _init_connection(conn)
    return conn


class Database:
    def __init__(self, url: str, passfile: Path, *, pool_size: int = 10, acquire_timeout: float = 10.0) -> None:
        self.url = url
        self.passfile = passfile
        self.pool_size = pool_size
        # A request or a handler waits this long for a connection, then fails (TimeoutError, a
        # dependency failure: 503 to a caller, a held batch for a consumer) instead of hanging.
        self.acquire_timeout = acquire_timeout
        self._pool: asyncpg.Pool | None = None
        self.waiting = 0

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("database not connected")
        return self._pool

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection from the pool, counted while waited for (the pool's pressure, as a metric)."""
        self.waiting += 1
        try:
            conn = await self.pool.acquire(timeout=self.acquire_timeout)
        finally:
            self.waiting -= 1
        try:
            yield conn
        finally:
            await self.pool.release(conn)

    def watch(self) -> None:
        """Report this pool in the metrics (a process serves one service: one pool)."""
        DB_POOL_WAITING.set_function(lambda: self.waiting)
        DB_POOL_IN_USE.set_function(lambda: self._pool.get_size() - self._pool.get_idle_size() if self._pool else 0)
        DB_POOL_IDLE.set_function(lambda: self._pool.get_idle_size() if self._pool else 0)

    async def connect(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.url,
            passfile=str(self.passfile),
            min_size=2,
            max_size=self.pool_size,
            init=_init_connection,
            reset=_no_session_state,
            command_timeout=30,
        )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def ready(self) -> bool:
        try:
            async with self.pool.acquire(timeout=2) as conn:
                return bool(await conn.fetchval("SELECT true", timeout=2))
        except Exception:
            return False

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[UnitOfWork]:
        """One transaction: what the block writes, the events it emits (outbox rows) and, for a
        consumer, the processed-event record commit together or not at all."""
        async with self._acquire() as conn, conn.transaction():
            uow = UnitOfWork(conn)
            yield uow
            await uow.flush()

    # Statements outside any unit of work (the API's reads, seeding): a repository can take
    # the Database where it would take a transaction's connection.
    async def fetch(self, query: str, *args: Any) -> list[asyncpg.Record]:
        async with self._acquire() as conn:
            return await conn.fetch(query, *args)

    async def fetchrow(self, query: str, *args: Any) -> asyncpg.Record | None:
        async with self._acquire() as conn:
            return await conn.fetchrow(query, *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self._acquire() as conn:
            return await conn.fetchval(query, *args)

    async def execute(self, query: str, *args: Any) -> str:
        async with self._acquire() as conn:
            return await conn.execute(query, *args)

    async def executemany(self, query: str, args: Any) -> None:
        async with self._acquire() as conn:
            await conn.executemany(query, args)


# What a repository runs its statements on: a unit of work's connection, or the Database (its
# pool) for reads outside one. Both have fetch, fetchrow, fetchval, execute and executemany.
Executor: TypeAlias = "asyncpg.Connection | asyncpg.Pool | Database"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _passwords(passfile: Path) -> dict[str, str]:
    if not passfile.exists():
        return {}
    entries = {}
    for line in passfile.read_text().splitlines():
        *_, user, password = line.split(":", 4)
        entries[user] = password
    return entries


def _password_for(passfile: Path, role: str) -> str:
    """The role's password from the password file, generated and added on first use."""
    known = _passwords(passfile)
    if role in known:
        return known[role]
    password = secrets.token_hex(24)
    passfile.parent.mkdir(parents=True, exist_ok=True)
    with passfile.open("a") as f:
        f.write(f"*:*:*:{role}:{password}\n")
    passfile.chmod(0o600)
    return password


async def setup_service_databases(settings: InfraSettings, services: tuple[str, ...] = SERVICES) -> list[str]:
    """Create each service's login role and database (owned by that role, closed to every other
    role). Idempotent; returns what it created."""
    created = []
    admin = await connect(settings.pg_admin_url, settings.pgpassfile)
    try:
        for service in services:
            role = database = f"ido_{service}"
            password = _password_for(settings.pgpassfile, role)
            if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
                await admin.execute(f"CREATE ROLE {_quote_ident(role)} LOGIN")
                created.append(f"role {role}")
            # PASSWORD takes no parameters: the literal is quoted by PostgreSQL itself.
            literal = await admin.fetchval("SELECT quote_literal($1)", password)
            await admin.execute(f"ALTER ROLE {_quote_ident(role)} WITH LOGIN PASSWORD {literal}")
            if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
                await admin.execute(f"CREATE DATABASE {_quote_ident(database)} OWNER {_quote_ident(role)}")
                created.append(f"database {database}")
            await admin.execute(f"REVOKE ALL ON DATABASE {_quote_ident(database)} FROM PUBLIC")
    finally:
        await admin.close()
    return created
