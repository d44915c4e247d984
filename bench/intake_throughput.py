"""Throughput and latency of `POST /v1/help-requests` on the running intake, next to a bare baseline.

Closed loop: N concurrent clients (httpx.AsyncClient, one keep-alive connection each) post the
same help request back to back, for a warm-up and then a measured period. The same load is then
put on a *bare* FastAPI endpoint (a subprocess on an ephemeral 127.0.0.1 port, served by uvicorn
the way the services are) that does only what the database part of intake does: ONE INSERT of
the same row (id, library, time, status, themes, the request as jsonb, a fingerprint and a data
key) into a `help_requests` table made by intake's own migrations, with the same indexes, in a
scratch database on the same PostgreSQL, through an asyncpg pool like the services' (shared.db:
same pool size and JSON codecs); no validation, credential, rate limit, transaction, outbox
row, event, relay or logging. The administrator creates the scratch database before and drops it
afterwards. The ratio intake/bare shows what the platform's own work costs on top of "FastAPI +
one INSERT" (target: intake >= 0.6x bare).

The load generator is a Python process on the same 2-core machine: it competes for the CPU
with intake, routing, PostgreSQL and Kafka, so the absolute figures are lower bounds of what the
service could do with a separate client machine. The CPU line per phase shows who used what.

    make up
    .venv/bin/python bench/intake_throughput.py                  # 32 clients, 2 s warm-up, 10 s per phase
    .venv/bin/python bench/intake_throughput.py -c 8 -d 5        # other concurrency / duration
    .venv/bin/python bench/intake_throughput.py --requests 5000  # a request count instead of a duration
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _common import (
    BODY_BYTES,
    REPO_ROOT,
    CpuMeter,
    code_version,
    fmt_ms,
    library_tokens,
    platform_state,
    print_cpu,
    summary_ms,
    wait_until_idle,
)

INTAKE_MIGRATIONS = REPO_ROOT / "services" / "intake" / "migrations"

# --------------------------------------------------------------------------------------------
# The bare baseline server (runs in a child process: `intake_throughput.py --serve-bare URL`)
# --------------------------------------------------------------------------------------------

# intake's statement (services/intake/adapters/repository.py HelpRequests.add).
INSERT = """INSERT INTO help_requests (id, library, registered_at, status, themes, request, fingerprint, data_key)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING RETURNING true"""


def serve_bare(database_url: str) -> None:
    """A FastAPI app with one endpoint doing one INSERT, on an ephemeral port printed on stdout."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from shared.db import Database
    from shared.settings import InfraSettings

    settings = InfraSettings()
    pool_size = int(os.environ.get("IDO_DB_POOL_SIZE", 10))  # the services' setting and default
    db = Database(database_url, settings.pgpassfile, pool_size=pool_size)
    parent = os.getppid()

    async def orphan_watchdog() -> None:
        # Never outlive the benchmark (it may be killed): exit when the parent is gone or after 5 min.
        deadline = time.monotonic() + 300
        while os.getppid() == parent and time.monotonic() < deadline:
            await asyncio.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await db.connect()
        watchdog = asyncio.create_task(orphan_watchdog())
        try:
            yield
        finally:
            watchdog.cancel()
            await db.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/help-requests", status_code=201)
    async def register(request: Request) -> JSONResponse:
        raw = await request.body()
        body = json.loads(raw)
        request_id = str(uuid.uuid4())
        themes = sorted({q["theme"] for q in body.get("questions", [])})
        fingerprint = hashlib.sha256(raw).hexdigest()  # intake hashes the validated command
        await db.fetchval(
            INSERT,
            request_id,
            "rivierenland",
            datetime.now(UTC),
            "received",
            themes,
            body,
            fingerprint,
            os.urandom(32),  # the size of intake's data key
        )
        return JSONResponse({"id": request_id, "library": "rivierenland", "request": body, "status": "received"}, 201)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP (as
    # those uvicorn binds itself for the services); without it Nagle + delayed ACK add ~40 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    # As shared/runtime.py serve(): no log config, no access log, asyncio.run of Server.serve().
    config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


def scratch_url(admin_url: str, database: str) -> str:
    """The administrator's URL with another database."""
    parts = urlsplit(admin_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


class BareServer:
    """The scratch database (created and dropped as the administrator) and the server on it."""

    def __init__(self) -> None:
        from shared.settings import InfraSettings

        self.settings = InfraSettings()
        self.database = f"bench_scratch_{os.getpid()}"
        self.database_url = scratch_url(self.settings.pg_admin_url, self.database)
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    async def create_database(self) -> None:
        from shared import migrations
        from shared.db import connect

        admin = await connect(self.settings.pg_admin_url, self.settings.pgpassfile)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await admin.close()
        # intake's own migrations: the same table, columns and indexes as the service's.
        await asyncio.to_thread(migrations.apply, self.database_url, self.settings.pgpassfile, INTAKE_MIGRATIONS)

    async def drop_database(self) -> None:
        from shared.db import connect

        admin = await connect(self.settings.pg_admin_url, self.settings.pgpassfile)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await admin.close()

    async def rows(self) -> int:
        from shared.db import connect

        conn = await connect(self.database_url, self.settings.pgpassfile)
        try:
            return await conn.fetchval("SELECT count(*) FROM help_requests")
        finally:
            await conn.close()

    async def start(self) -> str:
        await self.create_database()
        cmd = [sys.executable, __file__, "--serve-bare", self.database_url]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
        assert self.proc.stdout is not None
        port = int(await asyncio.to_thread(self.proc.stdout.readline) or 0)
        if not port:
            await self.stop()
            sys.exit("the bare server did not start")
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient(timeout=1) as client:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return self.url
                await asyncio.sleep(0.1)
        await self.stop()
        sys.exit("the bare server did not become healthy")

    async def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.proc.wait, 15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        await self.drop_database()


# --------------------------------------------------------------------------------------------
# The load generator
# --------------------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    name: str
    latencies: list[float] = field(default_factory=list)  # seconds, successful measured requests
    errors: dict[str, int] = field(default_factory=dict)
    started: int = 0
    elapsed: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


async def drive(
    name: str,
    base_url: str | list[str],
    tokens: list[str],
    *,
    concurrency: int,
    warmup: float,
    duration: float,
    requests: int | None,
    cpu: CpuMeter,
) -> PhaseResult:
    result = PhaseResult(name)
    # Several instances: the clients are spread over them, as a load balancer would.
    urls = [f"{base}/v1/help-requests" for base in ([base_url] if isinstance(base_url, str) else base_url)]
    remaining = requests
    loop_start = time.perf_counter()
    measure_from = loop_start + warmup
    stop_at = measure_from + duration if requests is None else float("inf")
    snapshots = {}
    ctx = ssl.create_default_context()  # one for all clients: each would otherwise load the CA bundle

    async def worker(token: str, url: str) -> None:
        # One client (one keep-alive connection) per worker: a shared httpx pool scans all its
        # connections for every request, which costs the load generator more CPU than the server.
        nonlocal remaining
        base_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=10.0, verify=ctx) as client:
            while True:
                t0 = time.perf_counter()
                measured = t0 >= measure_from
                if measured:
                    if "start" not in snapshots:
                        snapshots["start"] = (time.perf_counter(), cpu.snapshot())
                    if t0 >= stop_at:
                        return
                    if remaining is not None:
                        if remaining <= 0:
                            return
                        remaining -= 1
                    result.started += 1
                # A fresh Idempotency-Key per request, as a library system sends it.
                headers = {**base_headers, "Idempotency-Key": str(uuid.uuid4())}
                try:
                    response = await client.post(url, content=BODY_BYTES, headers=headers)
                    error = None if response.status_code in (200, 201) else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    error = type(exc).__name__
                t1 = time.perf_counter()
                if measured:
                    if error is None:
                        result.latencies.append(t1 - t0)
                    else:
                        result.errors[error] = result.errors.get(error, 0) + 1

    await asyncio.gather(*(worker(tokens[i % len(tokens)], urls[i % len(urls)]) for i in range(concurrency)))
    end = time.perf_counter(), cpu.snapshot()
    if "start" in snapshots:
        (t_start, cpu_start), (t_end, cpu_end) = snapshots["start"], end
        result.elapsed = t_end - t_start
        result.cpu = CpuMeter.cores_used(cpu_start, cpu_end)
    return result


def report(r: PhaseResult) -> None:
    s = summary_ms(r.latencies)
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items())) or "none"
    print(f"  {r.name}: {r.ok} ok in {r.elapsed:.1f} s = {r.throughput:8.1f} req/s   latency ms: {fmt_ms(s)}")
    hint = "  <- per-credential rate limit: raise --credentials" if "HTTP 429" in r.errors else ""
    print(f"  {' ' * len(r.name)}  errors: {r.error_count} ({errors}){hint}")
    print_cpu(r.cpu, indent="  " + " " * len(r.name) + "  ")


def ratios(intake: PhaseResult, bare: PhaseResult, target: float) -> None:
    si, sb = summary_ms(intake.latencies), summary_ms(bare.latencies)
    tput = intake.throughput / bare.throughput if bare.throughput else float("nan")
    verdict = "meets" if tput >= target else "MISSES"
    print(f"  throughput intake/bare: {tput:.2f}x   (target >= {target:.2f}x: {verdict})")
    # For latency "intake >= 0.6x bare" means bare/intake >= 0.6, i.e. intake/bare <= 1/0.6.
    parts = []
    for p in ("p50", "p95", "p99"):
        ratio = si[p] / sb[p] if sb[p] else float("nan")
        parts.append(f"{p} {ratio:.2f}x ({'meets' if ratio <= 1 / target else 'MISSES'})")
    print(f"  latency intake/bare:    {',  '.join(parts)}   (target <= {1 / target:.2f}x)")


async def main(args: argparse.Namespace) -> None:
    tokens = [args.token] if args.token else library_tokens(args.credentials, args.library)
    try:
        healthy = httpx.get(f"{args.url}/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        sys.exit(f"intake at {args.url} is not healthy; run `make up`")
    bare = None if args.skip_bare else BareServer()
    load = dict(concurrency=args.concurrency, warmup=args.warmup, duration=args.duration, requests=args.requests)
    what = f"{args.requests} requests" if args.requests else f"{args.duration:g} s"
    print(
        f"intake throughput: {args.concurrency} concurrent clients, {args.warmup:g} s warm-up + {what} per phase; "
        f"load generator in this process (shares the {os.cpu_count()} cores)"
    )
    print(f"  code {code_version()}, {len(tokens)} credentials (round robin over the clients)")
    print(f"  before: {await platform_state()}")
    results = {}
    try:
        if bare:
            bare_url = await bare.start()
            assert bare.proc is not None
            cpu = CpuMeter({"bare server": bare.proc.pid})
            waited, busy = await wait_until_idle(max_wait=args.settle)
            print(
                f"- bare FastAPI + one INSERT ({bare_url}, scratch database {bare.database}); "
                f"waited {waited:.1f} s for idle, {busy:.2f} cores busy before the phase"
            )
            results["bare"] = await drive("bare  ", bare_url, tokens, cpu=cpu, **load)
            report(results["bare"])
            print(f"  {' ' * 6}  rows in the scratch table: {await bare.rows()}")
            await bare.stop()
        cpu = CpuMeter()
        waited, busy = await wait_until_idle(max_wait=args.settle)
        print(f"- intake ({args.url}); waited {waited:.1f} s for idle, {busy:.2f} cores busy before the phase")
        results["intake"] = await drive("intake", args.url, tokens, cpu=cpu, **load)
        report(results["intake"])
    finally:
        if bare:
            await bare.stop()
    if bare:
        ratios(results["intake"], results["bare"], args.target)
    print(f"  after:  {await platform_state()}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('INTAKE_PORT', 8001)}", help="intake base URL")
    p.add_argument("-c", "--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("-w", "--warmup", type=float, default=2.0, help="warm-up seconds, not measured (default 2)")
    p.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds per phase (default 10)")
    p.add_argument("-n", "--requests", type=int, default=None, help="measure this many requests instead")
    p.add_argument("--token", help="a library credential (default: made with `ido keys create`)")
    p.add_argument("--library", default="rivierenland")
    p.add_argument(
        "--credentials", type=int, default=12, help="library credentials to spread the load over (default 12)"
    )
    p.add_argument("--skip-bare", action="store_true", help="only drive intake")
    p.add_argument("--settle", type=float, default=5.0, help="max seconds to wait for idle per phase")
    p.add_argument("--target", type=float, default=0.6, help="target ratio intake/bare (default 0.6)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop in the load generator")
    p.add_argument("--serve-bare", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_bare:
        serve_bare(arguments.serve_bare)
    else:
        runner = asyncio.run
        if not arguments.no_uvloop:
            with contextlib.suppress(ImportError):
                import uvloop

                runner = uvloop.run
        runner(main(arguments))
