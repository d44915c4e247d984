"""End-to-end latency: `POST /v1/help-requests` -> `nl.ido.ReferredToAgency` on the agency's topic.

Open loop: requests are sent on a fixed schedule (default 500/s for 10 s after a 1 s warm-up at
the same rate), each as its own task, so a slow system does not lower the offered rate (no
coordinated omission). Per request it measures the moment the POST is sent and the moment a
plain aiokafka consumer (assigned to every partition of `ido.referrals.belastingdienst.v1`,
positioned at the end before the first request) receives the record whose
`data.help_request_id` is the id intake answered with. A record that has not arrived within
--timeout seconds of its POST counts as missing (and as an infinite latency in the percentiles).

With --breakdown (default on) the same consumer also reads `ido.help-requests.v1`, and the
records' Kafka timestamps (CreateTime, set by the producing relay, millisecond resolution)
split the end-to-end time into: intake (POST -> HelpRequested produced), routing
(HelpRequested produced -> ReferredToAgency produced) and delivery (produced -> received here).

The load generator shares the machine's 2 cores with the services, FerretDB and Kafka.

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
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

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


class Receiver:
    """A plain aiokafka consumer on all partitions of the topics, from their current end."""

    def __init__(self, bootstrap: str, topics: list[str], fetch_max_wait_ms: int) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=fetch_max_wait_ms
        )
        self.arrived: dict[str, float] = {}  # help_request_id -> perf_counter at receipt
        self.produced_ms: dict[tuple[str, str], int] = {}  # (topic, help_request_id) -> record timestamp
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics(self.topics)
        finally:
            await admin.close()
        tps = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
        if not tps:
            sys.exit(f"topics {self.topics} not found; run `make up`")
        self.consumer.assign(tps)
        await self.consumer.seek_to_end(*tps)
        for tp in tps:  # resolve the end offsets now, before anything is sent
            await self.consumer.position(tp)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for tp, records in batches.items():
                for record in records:
                    try:
                        hr_id = json.loads(record.value)["data"]["help_request_id"]
                    except (ValueError, KeyError, TypeError):
                        continue
                    self.produced_ms[(tp.topic, hr_id)] = record.timestamp
                    if tp.topic == REFERRALS and hr_id not in self.arrived:
                        self.arrived[hr_id] = now
                        self.count += 1

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.consumer.stop()


async def run(args: argparse.Namespace) -> None:
    seconds = args.warmup + args.duration
    count = args.credentials or credentials_needed(args.rate * seconds, seconds, headroom=1.25)
    tokens = [args.token] if args.token else library_tokens(count, args.library)
    url = f"{args.url}/v1/help-requests"
    try:
        healthy = httpx.get(f"{args.url}/healthz", timeout=3).status_code == 200
    except httpx.HTTPError:
        healthy = False
    if not healthy:
        sys.exit(f"intake at {args.url} is not healthy; run `make up`")

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
    print(
        f"e2e latency: {args.rate:g} requests/s open loop, {args.warmup:g} s warm-up + {args.duration:g} s measured "
        f"({total - warmup_n} requests), POST {args.url} -> {REFERRALS}; "
        f"load generator in this process (shares the {os.cpu_count()} cores)"
    )
    print(f"  code {code_version()}, {len(tokens)} credentials (round robin over the requests)")
    print(f"  before: {await platform_state(args.mongodb_url)}")
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

    # Wait for the answers and the records: until everything arrived or the timeout passed.
    deadline = last_send + args.timeout
    while time.perf_counter() < deadline:
        ids = [s.help_request_id for s in sent if s.help_request_id]
        if not tasks and all(i in receiver.arrived for i in ids):
            break
        await asyncio.sleep(0.05)
    drained_at = time.perf_counter()
    cpu_end = cpu.snapshot()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await receiver.stop()
    await pool.close()

    report(args, sent, receiver, last_send, drained_at)
    if cpu_start:
        print("CPU while sending:")
        print_cpu(CpuMeter.cores_used(cpu_start, cpu_send_end), indent="  ")
        if cpu_end.at - cpu_send_end.at > 0.2:
            print(f"CPU after the last send (draining, {cpu_end.at - cpu_send_end.at:.1f} s):")
            print_cpu(CpuMeter.cores_used(cpu_send_end, cpu_end), indent="  ")
    print(f"after: {await platform_state(args.mongodb_url)}")


def _fmt_latencies(values_ms: list[float], missing: int) -> str:
    """Percentiles in ms where a missing record counts as infinitely late."""
    values = sorted(values_ms) + [float("inf")] * missing
    return "  ".join(f"{p} {percentile(values, q):7.2f}" for p, q in (("p50", 50), ("p95", 95), ("p99", 99))) + (
        f"  max {values[-1]:7.2f}" if values else ""
    )


def report(args: argparse.Namespace, sent: list[Sent], receiver: Receiver, last_send: float, drained: float) -> None:
    measured = [s for s in sent if s.measured]
    if not measured:
        print("nothing measured")
        return
    span = measured[-1].sent - measured[0].sent
    achieved = (len(measured) - 1) / span if span > 0 else float("nan")
    lag = summary_ms([s.sent - s.scheduled for s in measured])
    ok = [s for s in measured if s.help_request_id]
    failed: dict[str, int] = {}
    for s in measured:
        if not s.help_request_id:
            failed[str(s.status or "no answer in time")] = failed.get(str(s.status or "no answer in time"), 0) + 1
    post = summary_ms([s.done - s.sent for s in ok])

    e2e, missing = [], 0
    for s in ok:
        arrived = receiver.arrived.get(s.help_request_id or "")
        if arrived is not None and arrived - s.sent <= args.timeout:
            e2e.append((arrived - s.sent) * 1000)
        else:
            missing += 1
    values = sorted(e2e) + [float("inf")] * missing
    p50, p99 = percentile(values, 50), percentile(values, 99)

    print(f"offered {args.rate:g}/s, achieved send rate {achieved:.1f}/s over {span:.2f} s ({len(measured)} requests)")
    print(f"  schedule lag of the sends (ms): {fmt_ms(lag)}")
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(failed.items())) or "none"
    print(f"POST latency (ms), {len(ok)} answered 2xx, errors {len(measured) - len(ok)} ({errors}):")
    print(f"  {fmt_ms(post)}")
    arrived_n = len(e2e)
    print(
        f"end-to-end latency POST sent -> ReferredToAgency received (ms), {arrived_n} arrived, "
        f"{missing} missing after {args.timeout:g} s:"
    )
    print(f"  {_fmt_latencies(e2e, missing)}")
    if e2e:
        first_arrival = min(receiver.arrived[s.help_request_id] for s in ok if s.help_request_id in receiver.arrived)
        last_arrival = max(receiver.arrived[s.help_request_id] for s in ok if s.help_request_id in receiver.arrived)
        if last_arrival > first_arrival:
            print(
                f"  delivery rate {arrived_n / (last_arrival - first_arrival):.1f} records/s; last record arrived "
                f"{last_arrival - last_send:+.2f} s after the last send"
            )
    # What the system delivered, not what was offered: 2xx answers per second over the run.
    answered_rate = len(ok) / (max(s.done for s in ok) - measured[0].sent) if ok else 0.0
    rate_ok = answered_rate >= 0.98 * TARGET_RATE
    print(
        f"targets at {TARGET_RATE:g} requests/s: p50 <= {TARGET_P50_MS:g} ms: "
        f"{'meets' if p50 <= TARGET_P50_MS else 'MISSES'} ({p50:.2f}),  p99 <= {TARGET_P99_MS:g} ms: "
        f"{'meets' if p99 <= TARGET_P99_MS else 'MISSES'} ({p99:.2f}),  rate: "
        f"{'meets' if rate_ok else 'MISSES'} ({answered_rate:.1f} answered 2xx/s)"
    )

    if args.breakdown:
        # Each stage over the requests for which both of its ends were seen (counts differ).
        stage: dict[str, list[float]] = {"intake": [], "routing": [], "delivery": []}
        for s in ok:
            hr_ms = receiver.produced_ms.get((HELP_REQUESTS, s.help_request_id or ""))
            ref_ms = receiver.produced_ms.get((REFERRALS, s.help_request_id or ""))
            arrived = receiver.arrived.get(s.help_request_id or "")
            if hr_ms is not None:
                stage["intake"].append(hr_ms / 1000 - s.sent_wall)
            if hr_ms is not None and ref_ms is not None:
                stage["routing"].append((ref_ms - hr_ms) / 1000)
            if ref_ms is not None and arrived is not None:
                stage["delivery"].append(s.sent_wall + (arrived - s.sent) - ref_ms / 1000)
        print("where the time goes (from Kafka CreateTime, 1 ms resolution), ms:")
        names = {
            "intake": "intake   POST sent -> HelpRequested produced      ",
            "routing": "routing  HelpRequested -> ReferredToAgency produced",
            "delivery": "delivery ReferredToAgency produced -> received    ",
        }
        for key, label in names.items():
            values = stage[key]
            print(f"  {label} {fmt_ms(summary_ms(values))}  (n={len(values)})")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('INTAKE_PORT', 8001)}", help="intake base URL")
    p.add_argument("--mongodb-url", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017"))
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("-r", "--rate", type=float, default=500.0, help="requests per second (default 500)")
    p.add_argument("-d", "--duration", type=float, default=10.0, help="measured seconds (default 10)")
    p.add_argument("-w", "--warmup", type=float, default=1.0, help="warm-up seconds at the same rate (default 1)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds a record may take before it is missing")
    p.add_argument("--max-connections", type=int, default=512, help="most POSTs in flight (default 512)")
    p.add_argument("--fetch-max-wait-ms", type=int, default=500, help="consumer fetch_max_wait_ms (default 500)")
    p.add_argument("--no-breakdown", dest="breakdown", action="store_false", help="do not read ido.help-requests.v1")
    p.add_argument("--token", help="a library credential (default: made with `ido keys create`)")
    p.add_argument("--library", default="rivierenland")
    p.add_argument("--credentials", type=int, help="credentials to spread the requests over (default: enough)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop in the load generator")
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    runner = asyncio.run
    if not arguments.no_uvloop:
        with contextlib.suppress(ImportError):
            import uvloop

            runner = uvloop.run
    runner(run(arguments))
