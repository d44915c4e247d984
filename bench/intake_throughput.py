"""Throughput and latency of `POST /v1/help-requests` on the running intake, next to a bare baseline.

Closed loop: N concurrent clients (httpx.AsyncClient, one keep-alive connection each) post the
same help request back to back, for a warm-up and then a measured period. The same load is then
put on a *bare* FastAPI endpoint (a subprocess on an ephemeral 127.0.0.1 port, served by uvicorn
with the same settings as the services) that does only what the database part of intake does:
one `insert_one` of a document of the same shape and size into a scratch database on the same
FerretDB (with the same secondary indexes), without validation, credentials, event, outbox relay
or logging. The scratch database is dropped afterwards. The ratio intake/bare shows what the
platform's own work costs on top of "FastAPI + one FerretDB write" (target: intake >= 0.6x bare).

The load generator is a Python process on the same 2-core machine: it competes for the CPU
with intake, routing, FerretDB and Kafka, so the absolute figures are lower bounds of what the
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

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _common import (
    BODY_BYTES,
    CpuMeter,
    code_version,
    fmt_ms,
    library_tokens,
    platform_state,
    print_cpu,
    summary_ms,
    wait_until_idle,
)

# --------------------------------------------------------------------------------------------
# The bare baseline server (runs in a child process: `intake_throughput.py --serve-bare ...`)
# --------------------------------------------------------------------------------------------

# An outbox entry of the size intake stores (a serialized HelpRequested CloudEvent, ~650 bytes).
_FAKE_EVENT = json.dumps(
    {
        "specversion": "1.0",
        "id": "00000000-0000-4000-8000-000000000000",
        "source": "urn:nld:oin:00000001003214345000:systeem:intake",
        "type": "nl.ido.HelpRequested",
        "subject": "00000000-0000-4000-8000-000000000000",
        "time": "2026-01-01T00:00:00.000000Z",
        "datacontenttype": "application/json",
        "dataschema": "http://127.0.0.1:8001/v1/schemas/HelpRequested.json",
        "data": {
            "help_request_id": "00000000-0000-4000-8000-000000000000",
            "library": "rivierenland",
            "location": None,
            "channel": "walk_in",
            "questions": [{"index": 0, "category": "digital_government", "theme": "toeslagen", "subtheme": "x"}],
            "help_given": [],
            "referral_consent": True,
            "contact_preference": "phone",
            "duration_minutes": None,
            "registered_at": "2026-01-01T00:00:00.000000Z",
        },
        "correlationid": "00000000-0000-4000-8000-000000000000",
    }
)


def serve_bare(mongodb_url: str, database: str) -> None:
    """A FastAPI app with one endpoint doing one insert_one, on an ephemeral port printed on stdout."""
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from shared.mongo import connect

    client = connect(mongodb_url)
    collection = client[database]["help_requests"]
    parent = os.getppid()

    async def orphan_watchdog() -> None:
        # Never outlive the benchmark (it may be killed): exit when the parent is gone or after 5 min.
        deadline = time.monotonic() + 300
        while os.getppid() == parent and time.monotonic() < deadline:
            await asyncio.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        await collection.create_index([("library", 1), ("registered_at", -1)])
        await collection.create_index("outbox_pending")
        watchdog = asyncio.create_task(orphan_watchdog())
        try:
            yield
        finally:
            watchdog.cancel()
            await client.drop_database(database)
            await client.close()

    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/help-requests", status_code=201)
    async def register(request: Request) -> JSONResponse:
        body = await request.json()
        request_id = str(uuid.uuid4())
        doc = {
            "_id": request_id,
            "library": "rivierenland",
            "registered_at": datetime.now(UTC),
            "request": body,
            "status": "received",
            "decisions": [],
            "referrals": [],
            "fingerprint": hashlib.sha256(request_id.encode()).hexdigest(),
            "applied_events": [],
            "outbox": [{"id": request_id, "topic": "ido.help-requests.v1", "value": _FAKE_EVENT}],
            "outbox_pending": True,
        }
        await collection.insert_one(doc)
        return JSONResponse({"id": request_id, "library": "rivierenland", "request": body, "status": "received"}, 201)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(sock.getsockname()[1], flush=True)
    # The same uvicorn settings as shared/runtime.py serve(): uvloop + httptools, no access log.
    config = uvicorn.Config(app, log_config=None, access_log=False, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


class BareServer:
    def __init__(self, mongodb_url: str) -> None:
        self.mongodb_url = mongodb_url
        self.database = f"bench_scratch_{os.getpid()}"
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> str:
        cmd = [sys.executable, __file__, "--serve-bare", "--mongodb-url", self.mongodb_url, "--db", self.database]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline().strip() or 0)
        if not port:
            sys.exit("the bare server did not start")
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self.url
            time.sleep(0.1)
        self.stop()
        sys.exit("the bare server did not become healthy")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # its lifespan drops the scratch database
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.drop_scratch()

    def drop_scratch(self) -> None:
        # In case the child could not: dropping a database that is gone is a no-op.
        from pymongo import MongoClient

        with contextlib.closing(MongoClient(self.mongodb_url, serverSelectionTimeoutMS=3000)) as client:
            client.drop_database(self.database)


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
    base_url: str,
    tokens: list[str],
    *,
    concurrency: int,
    warmup: float,
    duration: float,
    requests: int | None,
    cpu: CpuMeter,
) -> PhaseResult:
    result = PhaseResult(name)
    url = f"{base_url}/v1/help-requests"
    remaining = requests
    loop_start = time.perf_counter()
    measure_from = loop_start + warmup
    stop_at = measure_from + duration if requests is None else float("inf")
    snapshots = {}
    ctx = ssl.create_default_context()  # one for all clients: each would otherwise load the CA bundle

    async def worker(token: str) -> None:
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

    await asyncio.gather(*(worker(tokens[i % len(tokens)]) for i in range(concurrency)))
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
    bare = None if args.skip_bare else BareServer(args.mongodb_url)
    load = dict(concurrency=args.concurrency, warmup=args.warmup, duration=args.duration, requests=args.requests)
    what = f"{args.requests} requests" if args.requests else f"{args.duration:g} s"
    print(
        f"intake throughput: {args.concurrency} concurrent clients, {args.warmup:g} s warm-up + {what} per phase; "
        f"load generator in this process (shares the {os.cpu_count()} cores)"
    )
    print(f"  code {code_version()}, {len(tokens)} credentials (round robin over the clients)")
    print(f"  before: {await platform_state(args.mongodb_url)}")
    results = {}
    try:
        if bare:
            bare_url = bare.start()
            assert bare.proc is not None
            cpu = CpuMeter({"bare server": bare.proc.pid})
            waited, busy = await wait_until_idle(max_wait=args.settle)
            print(
                f"- bare FastAPI + insert_one ({bare_url}, database {bare.database}); "
                f"waited {waited:.1f} s for idle, {busy:.2f} cores busy before the phase"
            )
            results["bare"] = await drive("bare  ", bare_url, tokens, cpu=cpu, **load)
            report(results["bare"])
            bare.stop()
        cpu = CpuMeter()
        waited, busy = await wait_until_idle(max_wait=args.settle)
        print(f"- intake ({args.url}); waited {waited:.1f} s for idle, {busy:.2f} cores busy before the phase")
        results["intake"] = await drive("intake", args.url, tokens, cpu=cpu, **load)
        report(results["intake"])
    finally:
        if bare:
            bare.stop()
    if bare:
        ratios(results["intake"], results["bare"], args.target)
    print(f"  after:  {await platform_state(args.mongodb_url)}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('INTAKE_PORT', 8001)}", help="intake base URL")
    p.add_argument("-c", "--concurrency", type=int, default=32, help="concurrent clients (default 32)")
    p.add_argument("-w", "--warmup", type=float, default=2.0, help="warm-up seconds, not measured (default 2)")
    p.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds per phase (default 10)")
    p.add_argument("-n", "--requests", type=int, default=None, help="measure this many requests instead")
    p.add_argument("--mongodb-url", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017"))
    p.add_argument("--token", help="a library credential (default: made with `ido keys create`)")
    p.add_argument("--library", default="rivierenland")
    p.add_argument(
        "--credentials", type=int, default=12, help="library credentials to spread the load over (default 12)"
    )
    p.add_argument("--skip-bare", action="store_true", help="only drive intake")
    p.add_argument("--settle", type=float, default=5.0, help="max seconds to wait for idle per phase")
    p.add_argument("--target", type=float, default=0.6, help="target ratio intake/bare (default 0.6)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop in the load generator")
    p.add_argument("--serve-bare", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--db", help=argparse.SUPPRESS)
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.serve_bare:
        serve_bare(arguments.mongodb_url, arguments.db)
    else:
        runner = asyncio.run
        if not arguments.no_uvloop:
            with contextlib.suppress(ImportError):
                import uvloop

                runner = uvloop.run
        runner(main(arguments))
