"""End-to-end latency: `POST /v1/help-requests` -> `nl.ido.ReferredToAgency` on the agency's topic.

Open loop: requests are sent on a fixed schedule (default 500/s for 10 s after a 1 s warm-up at
the same rate), each as its own task, so a slow system does not lower the offered rate (no
coordinated omission). Per request it measures the moment the POST is sent and the moment a
plain aiokafka consumer (assigned to every partition of `ido.referrals.belastingdienst.v1`,
positioned at the end before the first request) receives the `ReferredToAgency` record whose
`data.help_request_id` is the id intake answered with. A record that has not arrived within
--timeout seconds of its POST counts as lost (and as an infinite latency in the percentiles).
Every record is counted: a referral id received more than once is a duplicate (the same
CloudEvent id again: a re-published record; another id: the help request was routed twice),
and so is a help request that got more than one referral id (the request has one question).

With --breakdown (default on) the same consumer also reads `ido.help-requests.v1`, and the
records' Kafka timestamps (CreateTime, set by the producing relay, millisecond resolution)
split the end-to-end time into: intake (POST -> HelpRequested produced), routing
(HelpRequested produced -> ReferredToAgency produced) and delivery (produced -> received here).

The load generator shares the machine's 2 cores with the services, PostgreSQL and Kafka.
bench/data_size.py imports this module and runs `measure` and `report` twice.

    make up
    .venv/bin/python bench/e2e_latency.py                    # 500 requests/s for 10 s
    .venv/bin/python bench/e2e_latency.py --rate 100 -d 5    # another rate / duration
"""

import argparse
import asyncio
import contextlib
import json
import os
import ssl
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import TopicPartition

from shared.kafka import admin_client, consumer_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _common import (
    BODY_BYTES,
    CpuMeter,
    code_version,
    credentials_needed,
    fmt_ms,
    library_tokens,
    percentile,
    platform_state,
    print_cpu,
    summary_ms,
    wait_until_idle,
)

REFERRALS = "ido.referrals.belastingdienst.v1"
HELP_REQUESTS = "ido.help-requests.v1"
REFERRED_TYPE = "nl.ido.ReferredToAgency"
HELP_REQUESTED_TYPE = "nl.ido.HelpRequested"
TARGET_P50_MS = 5.0
TARGET_P99_MS = 25.0
TARGET_RATE = 500.0


@dataclass
class Sent:
    index: int
    measured: bool
    scheduled: float  # perf_counter
    sent: float  # perf_counter when the POST was handed to the client
    sent_wall: float  # time.time() at the same moment (to compare with Kafka timestamps)
    done: float = 0.0
    status: int | str = 0
    help_request_id: str | None = None


class ClientPool:
    """One httpx client (one connection) per request in flight, reused LIFO: httpx's own pool
    scans every connection per request, which would make the load generator the bottleneck."""

    def __init__(self, max_connections: int, timeout: float, prewarm: int = 64) -> None:
        self.idle: list[httpx.AsyncClient] = []
        self.clients: list[httpx.AsyncClient] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.timeout = timeout
        # Every httpx client builds its own SSL context unless given one (~0.1 s of CPU each,
        # even for http:// URLs): share one, and make the first clients before the clock starts.
        self.ssl = ssl.create_default_context()
        self.idle = [self._new() for _ in range(min(prewarm, max_connections))]

    def _new(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=1), timeout=self.timeout, verify=self.ssl)
        self.clients.append(client)
        return client

    @contextlib.asynccontextmanager
    async def client(self):
        async with self.slots:
            client = self.idle.pop() if self.idle else self._new()
            try:
                yield client
            finally:
                self.idle.append(client)

    async def close(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients))


@dataclass
class Seen:
    """What the plain consumer received, keyed by help request id (records of every producer
    on these topics arrive; the report looks only at the ids intake answered this run)."""

    arrived: dict[str, float] = field(default_factory=dict)  # help_request_id -> perf_counter of the first referral
    produced_ms: dict[tuple[str, str], int] = field(default_factory=dict)  # (topic, help_request_id) -> CreateTime
    # referral_id -> [(CloudEvent id, help_request_id)] of every ReferredToAgency record received
    referrals: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    referral_ids: dict[str, set[str]] = field(default_factory=dict)  # help_request_id -> referral ids
    help_requested: Counter[str] = field(default_factory=Counter)  # help_request_id -> HelpRequested records


class Receiver:
    """A plain aiokafka consumer (no group) on all partitions of the topics, from their current end."""

    def __init__(self, bootstrap: str, topics: list[str], fetch_max_wait_ms: int) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.consumer = consumer_client(bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_max_wait_ms)
        self.seen = Seen()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        admin = admin_client(self.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(self.topics)
        finally:
            await admin.close()
        tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        if not tps:
            await self.consumer.stop()
            sys.exit(f"topics {self.topics} not found; run `make up`")
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything is sent
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        seen = self.seen
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, records in batches.items():
                for record in records:
                    try:
                        event = json.loads(record.value)
                        event_type, data = event["type"], event["data"]
                        hr_id = data["help_request_id"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    if tp.topic == HELP_REQUESTS and event_type == HELP_REQUESTED_TYPE:
                        seen.help_requested[hr_id] += 1
                        seen.produced_ms.setdefault((tp.topic, hr_id), record.timestamp)
                    elif tp.topic == REFERRALS and event_type == REFERRED_TYPE:
                        referral_id = data.get("referral_id", "")
                        seen.referrals.setdefault(referral_id, []).append((str(event.get("id")), hr_id))
                        seen.referral_ids.setdefault(hr_id, set()).add(referral_id)
                        seen.produced_ms.setdefault((tp.topic, hr_id), record.timestamp)
                        seen.arrived.setdefault(hr_id, now)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


@dataclass
class Measurement:
    """One open-loop run: what was sent, what was received, and the CPU while it ran."""

    rate: float
    warmup: float
    duration: float
    timeout: float
    breakdown: bool
    sent: list[Sent]
    seen: Seen
    last_send: float
    drained_at: float
    cpu_sending: dict[str, float] | None = None
    cpu_draining: dict[str, float] | None = None
    draining_seconds: float = 0.0


@dataclass
class Summary:
    """The figures of a Measurement (milliseconds; a lost record counts as infinitely late)."""

    measured: int
    span: float  # seconds from the first to the last measured send
    accepted: int
    errors: dict[str, int]
    achieved_send_rate: float
    answered_rate: float
    schedule_lag: dict[str, float]
    post: dict[str, float]
    e2e: list[float]  # ms, of the records that arrived in time
    lost: int  # accepted requests whose ReferredToAgency did not arrive within the timeout
    p50: float
    p95: float
    p99: float
    max: float
    duplicate_records: int  # ReferredToAgency records beyond the first per referral id
    republished: int  # ... of which with a CloudEvent id seen before (the relay published it again)
    rerouted: int  # ... of which with a new CloudEvent id (the help request was handled again)
    extra_referral_ids: int  # referral ids beyond the one expected per help request
    duplicate_help_requested: int  # HelpRequested records beyond the first per help request
    stages: dict[str, list[float]]  # seconds per stage (breakdown)

    @property
    def meets_latency(self) -> bool:
        return self.p50 <= TARGET_P50_MS and self.p99 <= TARGET_P99_MS


def add_options(p: argparse.ArgumentParser, *, rate: float = 500.0, duration: float = 10.0) -> None:
    """The options of an open-loop run (shared with bench/data_size.py)."""
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('INTAKE_PORT', 8001)}", help="intake base URL")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("-r", "--rate", type=float, default=rate, help=f"requests per second (default {rate:g})")
    p.add_argument("-d", "--duration", type=float, default=duration, help=f"measured seconds (default {duration:g})")
    p.add_argument("-w", "--warmup", type=float, default=1.0, help="warm-up seconds at the same rate (default 1)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds a record may take before it is lost")
    p.add_argument(
        "--grace", type=float, default=1.0, help="seconds to keep reading after the last record, for duplicates"
    )
    p.add_argument("--max-connections", type=int, default=512, help="most POSTs in flight (default 512)")
    p.add_argument("--fetch-max-wait-ms", type=int, default=500, help="consumer fetch_max_wait_ms (default 500)")
    p.add_argument("--no-breakdown", dest="breakdown", action="store_false", help="do not read ido.help-requests.v1")
    p.add_argument("--token", help="a library credential (default: made with `ido keys create`)")
    p.add_argument("--library", default="rivierenland")
    p.add_argument("--credentials", type=int, help="credentials to spread the requests over (default: enough)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop in the load generator")


def make_tokens(args: argparse.Namespace) -> list[str]:
    """Enough library credentials that the per-credential rate limit does not cap a run."""
    if args.token:
        return [args.token]
    seconds = args.warmup + args.duration
    count = args.credentials or credentials_needed(args.rate * seconds, seconds, headroom=1.25)
    return library_tokens(count, args.library)


async def check_intake(url: str) -> None:
    try:
        async with httpx.AsyncClient(timeout=3) as client:
            healthy = (await client.get(f"{url}/healthz")).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        sys.exit(f"intake at {url} is not healthy; run `make up`")


async def measure(args: argparse.Namespace, tokens: list[str]) -> Measurement:
    """One open-loop run against the running system (prints one line before it starts)."""
    url = f"{args.url}/v1/help-requests"
    topics = [REFERRALS, HELP_REQUESTS] if args.breakdown else [REFERRALS]
    receiver = Receiver(args.bootstrap, topics, args.fetch_max_wait_ms)
    await receiver.start()
    pool = ClientPool(args.max_connections, timeout=args.timeout)
    sent: list[Sent] = []
    tasks: set[asyncio.Task[None]] = set()

    async def post(s: Sent) -> None:
        try:
            async with pool.client() as client:
                h = {
                    "Authorization": f"Bearer {tokens[s.index % len(tokens)]}",
                    "Content-Type": "application/json",
                    "Idempotency-Key": str(uuid.uuid4()),
                }
                response = await client.post(url, content=BODY_BYTES, headers=h)
            s.status = response.status_code
            if response.status_code in (200, 201):
                s.help_request_id = response.json()["id"]
        except httpx.HTTPError as exc:
            s.status = type(exc).__name__
        s.done = time.perf_counter()

    warmup_n = int(args.warmup * args.rate)
    total = warmup_n + int(args.duration * args.rate)
    _, busy = await wait_until_idle(max_wait=0)
    print(f"  {busy:.2f} cores busy just before the first request (other work on the machine)")
    cpu = CpuMeter()
    cpu_start = None
    start = time.perf_counter() + 0.05
    for i in range(total):
        at = start + i / args.rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if i == warmup_n:
            cpu_start = cpu.snapshot()
        s = Sent(i, i >= warmup_n, at, time.perf_counter(), time.time())
        sent.append(s)
        task = asyncio.create_task(post(s))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    last_send = time.perf_counter()
    cpu_send_end = cpu.snapshot()

    # Wait for the answers and the records: until everything arrived or the timeout passed,
    # then a little longer for duplicates that may follow.
    deadline = last_send + args.timeout
    while time.perf_counter() < deadline:
        ids = [s.help_request_id for s in sent if s.help_request_id]
        if not tasks and all(i in receiver.seen.arrived for i in ids):
            break
        await asyncio.sleep(0.05)
    drained_at = time.perf_counter()
    cpu_end = cpu.snapshot()
    await asyncio.sleep(args.grace)
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await receiver.stop()
    await pool.close()
    return Measurement(
        rate=args.rate,
        warmup=args.warmup,
        duration=args.duration,
        timeout=args.timeout,
        breakdown=args.breakdown,
        sent=sent,
        seen=receiver.seen,
        last_send=last_send,
        drained_at=drained_at,
        cpu_sending=CpuMeter.cores_used(cpu_start, cpu_send_end) if cpu_start else None,
        cpu_draining=CpuMeter.cores_used(cpu_send_end, cpu_end) if cpu_end.at - cpu_send_end.at > 0.2 else None,
        draining_seconds=cpu_end.at - cpu_send_end.at,
    )


def summarise(m: Measurement) -> Summary:
    measured = [s for s in m.sent if s.measured]
    span = measured[-1].sent - measured[0].sent if len(measured) > 1 else 0.0
    ok = [s for s in measured if s.help_request_id]
    errors: dict[str, int] = {}
    for s in measured:
        if not s.help_request_id:
            reason = str(s.status or "no answer in time")
            errors[reason] = errors.get(reason, 0) + 1

    e2e, lost = [], 0
    for s in ok:
        arrived = m.seen.arrived.get(s.help_request_id or "")
        if arrived is not None and arrived - s.sent <= m.timeout:
            e2e.append((arrived - s.sent) * 1000)
        else:
            lost += 1
    values = sorted(e2e) + [float("inf")] * lost

    # Duplicates among the records of this run's help requests (warm-up included: a duplicate is one whenever).
    ours = {s.help_request_id for s in m.sent if s.help_request_id}
    duplicate_records = republished = rerouted = 0
    for records in m.seen.referrals.values():
        mine = [event_id for event_id, hr_id in records if hr_id in ours]
        if len(mine) > 1:
            duplicate_records += len(mine) - 1
            distinct = len(set(mine))
            rerouted += distinct - 1
            republished += len(mine) - distinct
    extra_ids = sum(len(ids) - 1 for hr_id, ids in m.seen.referral_ids.items() if hr_id in ours and len(ids) > 1)
    duplicate_hr = sum(n - 1 for hr_id, n in m.seen.help_requested.items() if hr_id in ours and n > 1)

    stages: dict[str, list[float]] = {"intake": [], "routing": [], "delivery": []}
    if m.breakdown:
        # Each stage over the requests for which both of its ends were seen (counts differ).
        for s in ok:
            hr_ms = m.seen.produced_ms.get((HELP_REQUESTS, s.help_request_id or ""))
            ref_ms = m.seen.produced_ms.get((REFERRALS, s.help_request_id or ""))
            arrived = m.seen.arrived.get(s.help_request_id or "")
            if hr_ms is not None:
                stages["intake"].append(hr_ms / 1000 - s.sent_wall)
            if hr_ms is not None and ref_ms is not None:
                stages["routing"].append((ref_ms - hr_ms) / 1000)
            if ref_ms is not None and arrived is not None:
                stages["delivery"].append(s.sent_wall + (arrived - s.sent) - ref_ms / 1000)

    return Summary(
        measured=len(measured),
        span=span,
        accepted=len(ok),
        errors=errors,
        achieved_send_rate=(len(measured) - 1) / span if span > 0 else float("nan"),
        # What the system delivered, not what was offered: 2xx answers per second over the run.
        answered_rate=len(ok) / (max(s.done for s in ok) - measured[0].sent) if ok else 0.0,
        schedule_lag=summary_ms([s.sent - s.scheduled for s in measured]),
        post=summary_ms([s.done - s.sent for s in ok]),
        e2e=e2e,
        lost=lost,
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        max=values[-1] if values else float("nan"),
        duplicate_records=duplicate_records,
        republished=republished,
        rerouted=rerouted,
        extra_referral_ids=extra_ids,
        duplicate_help_requested=duplicate_hr,
        stages=stages,
    )


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def report(m: Measurement, target_rate: float = TARGET_RATE) -> Summary:
    """Print the figures of a run; return them."""
    if not any(s.measured for s in m.sent):
        sys.exit("nothing measured: give a longer --duration or a higher --rate")
    r = summarise(m)
    print(
        f"offered {m.rate:g}/s, achieved send rate {r.achieved_send_rate:.1f}/s over {r.span:.2f} s "
        f"({r.measured} requests)"
    )
    print(f"  schedule lag of the sends (ms): {fmt_ms(r.schedule_lag)}")
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.errors.items())) or "none"
    print(f"POST latency (ms), {r.accepted} answered 2xx, errors {r.measured - r.accepted} ({errors}):")
    print(f"  {fmt_ms(r.post)}")
    print(
        f"end-to-end latency POST sent -> ReferredToAgency received (ms), {len(r.e2e)} arrived, "
        f"{r.lost} lost (not there {m.timeout:g} s after the POST):"
    )
    print(f"  p50 {r.p50:7.2f}  p95 {r.p95:7.2f}  p99 {r.p99:7.2f}  max {r.max:7.2f}")
    arrivals = [m.seen.arrived[s.help_request_id] for s in m.sent if s.measured and s.help_request_id in m.seen.arrived]
    if len(arrivals) > 1 and max(arrivals) > min(arrivals):
        print(
            f"  delivery rate {len(arrivals) / (max(arrivals) - min(arrivals)):.1f} records/s; last record arrived "
            f"{max(arrivals) - m.last_send:+.2f} s after the last send"
        )
    print(
        f"delivery: lost {r.lost} ({_verdict(r.lost == 0)}: 0), duplicate ReferredToAgency records "
        f"{r.duplicate_records} (same CloudEvent id again {r.republished}, new id {r.rerouted}), help requests "
        f"with more than one referral id {r.extra_referral_ids}"
        + (f", duplicate HelpRequested records {r.duplicate_help_requested}" if m.breakdown else "")
        + f" ({_verdict(r.duplicate_records + r.extra_referral_ids == 0)}: 0)"
    )
    rate_ok = r.answered_rate >= 0.98 * target_rate
    print(
        f"targets at {target_rate:g} requests/s: p50 <= {TARGET_P50_MS:g} ms: {_verdict(r.p50 <= TARGET_P50_MS)} "
        f"({r.p50:.2f}),  p99 <= {TARGET_P99_MS:g} ms: {_verdict(r.p99 <= TARGET_P99_MS)} ({r.p99:.2f}),  "
        f"rate: {_verdict(rate_ok)} ({r.answered_rate:.1f} answered 2xx/s)"
    )
    if m.breakdown:
        print("where the time goes (from Kafka CreateTime, 1 ms resolution), ms:")
        names = {
            "intake": "intake   POST sent -> HelpRequested produced      ",
            "routing": "routing  HelpRequested -> ReferredToAgency produced",
            "delivery": "delivery ReferredToAgency produced -> received    ",
        }
        for key, label in names.items():
            values = r.stages[key]
            print(f"  {label} {fmt_ms(summary_ms(values))}  (n={len(values)})")
    if m.cpu_sending:
        print("CPU while sending:")
        print_cpu(m.cpu_sending, indent="  ")
    if m.cpu_draining:
        print(f"CPU after the last send (draining, {m.draining_seconds:.1f} s):")
        print_cpu(m.cpu_draining, indent="  ")
    return r


def describe(args: argparse.Namespace, tokens: list[str]) -> None:
    total = int(args.duration * args.rate)
    print(
        f"e2e latency: {args.rate:g} requests/s open loop, {args.warmup:g} s warm-up + {args.duration:g} s measured "
        f"({total} requests), POST {args.url} -> {REFERRALS}; "
        f"load generator in this process (shares the {os.cpu_count()} cores)"
    )
    print(f"  code {code_version()}, {len(tokens)} credentials (round robin over the requests)")


async def run(args: argparse.Namespace) -> None:
    await check_intake(args.url)
    tokens = make_tokens(args)
    describe(args, tokens)
    print(f"  before: {await platform_state()}")
    measurement = await measure(args, tokens)
    report(measurement)
    print(f"after: {await platform_state()}")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_options(p)
    return p.parse_args()


def run_loop(main: Coroutine[Any, Any, None], *, uvloop_if_installed: bool = True) -> None:
    """uvloop for the load generator when it is installed (and not --no-uvloop), else asyncio."""
    runner: Callable[[Coroutine[Any, Any, None]], None] = asyncio.run
    if uvloop_if_installed:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    runner(main)


if __name__ == "__main__":
    arguments = parse_args()
    run_loop(run(arguments), uvloop_if_installed=not arguments.no_uvloop)
