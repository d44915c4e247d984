"""asyncpg against psycopg 3 (with psycopg_pool), measured side by side on the same PostgreSQL,
doing what a service does per request: a transaction that inserts a help request's row
(jsonb and all) and one outbox row, and a read by primary key. 32 concurrent workers, each
driver with a pool of 10, a scratch database dropped afterwards. Traffic: 127.0.0.1 only.

    .venv/bin/python bench/db_drivers.py [--seconds 8] [--concurrency 32]
"""

import argparse
import asyncio
import json
import time
import uuid

import asyncpg
import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from shared.db import connect
from shared.settings import InfraSettings

SCHEMA = """
CREATE TABLE help_requests (id text PRIMARY KEY, library text NOT NULL, registered_at timestamptz NOT NULL,
                            status text NOT NULL, themes text[] NOT NULL, request jsonb NOT NULL);
CREATE INDEX ON help_requests (library, registered_at DESC, id DESC);
CREATE TABLE outbox (id bigserial PRIMARY KEY, event_id uuid NOT NULL, topic text NOT NULL,
                     key bytea, value bytea NOT NULL);
"""
REQUEST = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag", "note": None}],
    "help_given": ["informed"],
    "referral": {"consent": True, "contact_preference": "phone", "contact": {"name": "J. de Vries"}},
}
EVENT = json.dumps({"specversion": "1.0", "type": "nl.ido.HelpRequested", "data": REQUEST}).encode()
INSERT = "INSERT INTO help_requests VALUES ({}, 'rivierenland', now(), 'received', ARRAY['toeslagen'], {})"
OUTBOX = "INSERT INTO outbox (event_id, topic, key, value) VALUES ({}, 'ido.help-requests.v1', {}, {})"
READ = "SELECT * FROM help_requests WHERE id = {}"


async def run_asyncpg(url: str, passfile: str, seconds: float, concurrency: int) -> int:
    async def init(conn):
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")

    pool = await asyncpg.create_pool(url, passfile=passfile, min_size=10, max_size=10, init=init)

    async def one() -> None:
        rid = str(uuid.uuid4())
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(INSERT.format("$1", "$2"), rid, REQUEST)
            await conn.execute(OUTBOX.format("$1", "$2", "$3"), uuid.uuid4(), rid.encode(), EVENT)
        await pool.fetchrow(READ.format("$1"), rid)

    try:
        return await _loop(one, seconds, concurrency)
    finally:
        await pool.close()


async def run_psycopg(url: str, passfile: str, seconds: float, concurrency: int) -> int:
    pool = AsyncConnectionPool(f"{url}?passfile={passfile}", min_size=10, max_size=10, open=False)
    await pool.open()

    async def one() -> None:
        rid = str(uuid.uuid4())
        async with pool.connection() as conn, conn.transaction():
            await conn.execute(INSERT.format("%s", "%s"), (rid, Jsonb(REQUEST)))
            await conn.execute(OUTBOX.format("%s", "%s", "%s"), (uuid.uuid4(), rid.encode(), EVENT))
        async with pool.connection() as conn:
            await (await conn.execute(READ.format("%s"), (rid,))).fetchone()

    try:
        return await _loop(one, seconds, concurrency)
    finally:
        await pool.close()


async def _loop(one, seconds: float, concurrency: int) -> int:
    done = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            await one()
            done += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done


async def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--seconds", type=float, default=8.0)
    args.add_argument("--concurrency", type=int, default=32)
    args.add_argument("--rounds", type=int, default=2)
    opts = args.parse_args()
    settings = InfraSettings()
    name = f"bench_drivers_{uuid.uuid4().hex[:8]}"
    admin = await connect(settings.pg_admin_url, settings.pgpassfile)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = settings.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        setup = await connect(url, settings.pgpassfile)
        await setup.execute(SCHEMA)
        await setup.close()
        print(f"psycopg {psycopg.__version__}, asyncpg {asyncpg.__version__}; {opts.concurrency} workers, pool 10 each")
        results: dict[str, list[float]] = {"asyncpg": [], "psycopg": []}
        # Alternating rounds, so a busy moment of the machine does not favour one driver.
        for round_ in range(1, opts.rounds + 1):
            for label, run in (("asyncpg", run_asyncpg), ("psycopg", run_psycopg)):
                await run(url, str(settings.pgpassfile), 1.0, opts.concurrency)  # warm-up
                rate = await run(url, str(settings.pgpassfile), opts.seconds, opts.concurrency) / opts.seconds
                results[label].append(rate)
                print(f"  round {round_} {label:8} {rate:8.0f} requests/s (transaction: row + outbox row; read by id)")
        best = {label: max(rates) for label, rates in results.items()}
        print(
            f"best: asyncpg {best['asyncpg']:.0f}/s, psycopg {best['psycopg']:.0f}/s; "
            f"asyncpg / psycopg = {best['asyncpg'] / best['psycopg']:.2f}x"
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
