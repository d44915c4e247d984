"""The fault suite's tools: the running system (deploy/local, as `make up` runs it), a steady load
of help requests, faults (SIGKILL, stopping Kafka or PostgreSQL), and the verdict: what was
offered, accepted, stored, delivered, duplicated and lost, read from the services' own
databases and the agency's topic."""

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from services.routing.entrypoints.webhooks import WEBHOOKS_GROUP_SUFFIX
from shared.db import connect
from shared.events import catalog
from shared.kafka import admin_client, consumer_client, latest_offsets, topic_partitions
from shared.settings import REPO_ROOT, InfraSettings

LOCAL = REPO_ROOT / "deploy" / "local"
RUN = REPO_ROOT / ".local" / "run"
SERVICES = ("intake", "routing", "courses", "subsidy", "reporting")
PORTS = {"intake": 8001, "routing": 8002, "courses": 8003, "subsidy": 8004, "reporting": 8005}
AGENCY_TOPIC = catalog.referral_topic("belastingdienst")
VISIT = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag"}],
    "referral": {"consent": True, "contact_preference": "phone", "contact": {"name": "T. Est", "phone": "0612345678"}},
}


def scaled(name: str, default: int) -> int:
    """A count of the suite, smaller in CI when IDO_FAULT_<NAME> says so."""
    return int(os.environ.get(f"IDO_FAULT_{name}", default))


def base(service: str, instance: int = 0) -> str:
    return f"http://127.0.0.1:{PORTS[service] + 100 * instance}"


def instance_name(service: str, k: int) -> str:
    return service if k == 0 else f"{service}-{k}"


def local(script: str, action: str, **env: str) -> None:
    result = subprocess.run(
        [str(LOCAL / f"{script}.sh"), action], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )
    assert result.returncode == 0, f"{script}.sh {action}: {result.stderr[-2000:]}"


def kill(service: str, k: int) -> None:
    """SIGKILL one instance: no shutdown, no flush, no commit."""
    pid = int((RUN / f"{instance_name(service, k)}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if not _alive(pid):
            return
        time.sleep(0.05)


def running() -> set[str]:
    """The service instances whose process is alive."""
    alive = set()
    for pidfile in RUN.glob("*.pid"):
        name = pidfile.stem
        if name.split("-")[0] not in SERVICES:
            continue
        try:
            os.kill(int(pidfile.read_text()), 0)
            alive.add(name)
        except (ProcessLookupError, ValueError):
            pass
    return alive


def stop(instances: set[str]) -> None:
    """SIGTERM these instances (a graceful stop) and wait for them."""
    pids = [int((RUN / f"{name}.pid").read_text()) for name in instances]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def restart(instances: int) -> None:
    """Start every instance that is not running (services.sh start waits until they are healthy)."""
    local("services", "start", INSTANCES=str(instances))


@dataclass
class Load:
    """POST a visit `count` times at `rate` per second, round robin over intake's instances.
    Each answer is recorded: 201 accepted; anything else (or no answer) refused, by kind."""

    tokens: list[str]  # several libraries' credentials: the per-credential rate limit is not the test
    location: str
    count: int
    rate: float
    instances: int = 2
    accepted: list[str] = field(default_factory=list)
    accepted_at: dict[str, float] = field(default_factory=dict)  # id: wall-clock time of the 201
    refused: Counter = field(default_factory=Counter)
    unavailable: list[tuple[float, dict[str, str]]] = field(default_factory=list)  # 503s: seconds, headers
    # A request no instance answered goes to the next, as a load balancer does, and a 503 is tried
    # again shortly, as a client does with Retry-After; always with the same Idempotency-Key.
    failover: bool = False
    retried: int = 0

    def _answered(self, answer: httpx.Response, sent: float) -> None:
        if answer.status_code in (200, 201):  # 200: a failover's retry of a request already stored
            self.accepted.append(answer.json()["id"])
            self.accepted_at[answer.json()["id"]] = time.time()
            return
        self.refused[answer.status_code] += 1
        if answer.status_code == 503:
            self.unavailable.append((time.monotonic() - sent, dict(answer.headers)))

    async def run(self) -> None:
        visit = {**VISIT, "location": self.location}
        started = time.monotonic()
        slots = asyncio.Semaphore(64)
        # Idle connections are dropped before uvicorn closes them (5 s), so no request races a close.
        limits = httpx.Limits(max_connections=64, keepalive_expiry=2)
        async with httpx.AsyncClient(timeout=10, limits=limits) as client:

            async def one(i: int) -> None:
                async with slots:
                    headers = {
                        "Authorization": f"Bearer {self.tokens[i % len(self.tokens)]}",
                        "Idempotency-Key": uuid.uuid4().hex,  # the same on a failover: one visit at most
                    }
                    tries = self.instances + 1 if self.failover else 1
                    for attempt in range(tries):
                        url = f"{base('intake', (i + attempt) % self.instances)}/v1/help-requests"
                        sent = time.monotonic()
                        try:
                            answer = await client.post(url, json=visit, headers=headers)
                        except httpx.HTTPError as exc:
                            if attempt + 1 < tries:
                                self.retried += 1
                                continue  # as a load balancer: the next instance
                            self.refused[type(exc).__name__] += 1
                            return
                        if answer.status_code == 503 and attempt + 1 < tries:
                            self.retried += 1  # as a client does with Retry-After (shortened here)
                            await asyncio.sleep(min(1.0, float(answer.headers.get("retry-after", 1))))
                            continue
                        self._answered(answer, sent)
                        return

            tasks = []
            for i in range(self.count):
                await asyncio.sleep(max(0.0, started + i / self.rate - time.monotonic()))
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)


@dataclass
class Agency:
    """The receiving agency at work while a run goes on: of every `every` referrals of the run
    that reach its topic, it reports one `accepted` and then `got_help`. A report that meets
    routing down (or busy) is sent again until answered; repeating a status is harmless."""

    token: str
    load: Load
    every: int = 4
    reported: dict[str, list[str]] = field(default_factory=dict)  # referral id: statuses answered 200

    async def run(self, reader: Any, load_done: asyncio.Event, linger: float = 180) -> None:
        """Until the load is done and every accepted visit's referral has arrived and the sample
        is reported, or `linger` seconds after the load."""
        waiting: dict[str, str] = {}  # sampled referral id: its help request, until intake accepted it
        handled: set[str] = set()  # a record sent twice (a killed relay) is reported on once
        arrived: set[str] = set()  # help requests whose referral reached the topic
        accepted: set[str] = set()
        deadline = None
        async with httpx.AsyncClient(timeout=5) as client:
            while deadline is None or ((waiting or not accepted <= arrived) and time.monotonic() < deadline):
                for records in (await reader.consumer.getmany(timeout_ms=200)).values():
                    for record in records:
                        data = json.loads(record.value)["data"]
                        arrived.add(data["help_request_id"])
                        sampled = zlib.crc32(data["referral_id"].encode()) % self.every == 0
                        if sampled and data["referral_id"] not in handled:
                            waiting[data["referral_id"]] = data["help_request_id"]
                accepted = set(self.load.accepted)
                for referral_id in [r for r, visit in waiting.items() if visit in accepted]:
                    del waiting[referral_id]
                    handled.add(referral_id)
                    await self._report(client, referral_id)
                if load_done.is_set() and deadline is None:
                    deadline = time.monotonic() + linger  # what was cut off mid-answer is never accepted

    async def _report(self, client: httpx.AsyncClient, referral_id: str) -> None:
        for status in ("accepted", "got_help"):
            for _ in range(600):
                try:
                    answer = await client.post(
                        f"{base('routing', random.randrange(self.load.instances))}/v1/referrals/{referral_id}/status",
                        json={"status": status},
                        headers={"Authorization": f"Bearer {self.token}"},
                    )
                    if answer.status_code == 200:
                        self.reported.setdefault(referral_id, []).append(status)
                        break
                    assert answer.status_code in (404, 429, 503), answer.text  # 404: not routed yet
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)


def refusals(load: Load) -> str:
    """Why requests were not accepted: no answer (by exception) or the status answered."""
    return ", ".join(f"{why}: {n}" for why, n in load.refused.most_common()) or "-"


async def register_location(tokens: list[str]) -> str:
    """A location code of this run's own, registered for each library of the load, so its
    visits can be told apart from every other test's."""
    code = f"fault-{uuid.uuid4().hex[:8]}"
    place = {"name": "IDO storingstest", "postcode": "5911 AA", "city": "Venlo", "municipality": "venlo"}
    async with httpx.AsyncClient(timeout=10) as client:
        for token in tokens:
            answer = await client.put(
                f"{base('intake')}/v1/locations/{code}", json=place, headers={"Authorization": f"Bearer {token}"}
            )
            assert answer.status_code == 200, answer.text
    return code


async def topic_ends(infra: InfraSettings, topic: str) -> dict[Any, int]:
    return await latest_offsets(infra.kafka_bootstrap_servers, [topic])


async def records_since(infra: InfraSettings, topic: str, since: dict[Any, int]) -> list[Any]:
    """Every record on `topic` after the offsets `since`, to the current end."""
    consumer = consumer_client(
        infra.kafka_bootstrap_servers, enable_auto_commit=False, max_partition_fetch_bytes=4 << 20
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(infra.kafka_bootstrap_servers, topic)
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, since.get(tp, 0))
        ends = await consumer.end_offsets(partitions)
        found: list[Any] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                found += batch
        return found
    finally:
        await consumer.stop()


@dataclass
class Verdict:
    offered: int
    accepted: int
    stored: int  # visits intake holds for the run (a request cut off mid-answer may be stored too)
    referred: int  # referred, or closed after the agency reported back
    referral_rows: int  # routing's referrals (one per visit: one referred question each)
    delivered: int  # distinct referrals on the agency's topic
    duplicate_records: int  # records of an event id seen again (consumers absorb them)
    duplicated_effects: int  # referrals with two different events, visits counted twice
    lost: int  # accepted but not stored, referred, delivered or counted
    reported: int  # visits in reporting's read model
    counted: int  # reporting's counters for the run's location
    settle_seconds: float  # from the end of the load until everything was counted
    delivered_at: dict[str, float] = field(repr=False)  # help request id: its referral's first record time

    def delays(self, load: Load) -> list[float]:
        """Seconds from each accepted request's 201 to its referral on the agency's topic."""
        return [self.delivered_at[i] - at for i, at in load.accepted_at.items() if i in self.delivered_at]

    def recovery(self, load: Load, fault_over: float) -> float:
        """Seconds from the end of the fault (wall clock) until every request accepted before it
        was delivered: how long the backlog the fault built up took to clear."""
        before = [self.delivered_at[i] for i, at in load.accepted_at.items() if at <= fault_over]
        return max([0.0, *(t - fault_over for t in before)])

    def row(self, name: str, load: Load, *faults_over: float) -> str:
        """The table's row; recovery is the longest after any of the faults."""
        recovery = max(self.recovery(load, over) for over in faults_over)
        delays = sorted(self.delays(load))
        p99 = delays[int(0.99 * (len(delays) - 1))] if delays else 0.0
        return (
            f"| {name} | {self.offered} | {self.accepted} | {self.delivered} | {self.duplicated_effects} "
            f"| {self.lost} | {recovery:.1f} s | {p99:.1f} s / {max(delays, default=0):.1f} s "
            f"| {self.settle_seconds:.1f} s | {refusals(load)} |"
        )


async def verdict(
    infra: InfraSettings, load: Load, since: dict[Any, int], stalled: float = 60, timeout: float = 1800
) -> Verdict:
    """Wait until every visit of the run has been routed, delivered and counted, as long as the
    counts still move (a backlog after a big run is worked off, not cut off): no progress for
    `stalled` seconds, or `timeout` in all, ends the wait. Then count: nothing lost, nothing
    applied twice."""
    started = progressed = time.monotonic()
    last: tuple[int, ...] = ()
    intake = await connect(infra.service_database_url("intake"), infra.pgpassfile)
    routing = await connect(infra.service_database_url("routing"), infra.pgpassfile)
    reporting = await connect(infra.service_database_url("reporting"), infra.pgpassfile)
    try:
        while True:
            rows = await intake.fetch(
                "SELECT id, status FROM help_requests WHERE request->>'location' = $1", load.location
            )
            ids = [r["id"] for r in rows]
            # closed: every referral of the visit reached a final status (an agency reported back)
            referred_ids = {r["id"] for r in rows if r["status"] in ("referred", "closed")}
            referred = len(referred_ids)
            referrals = await routing.fetchval("SELECT count(*) FROM referrals WHERE help_request_id = ANY($1)", ids)
            version = await reporting.fetchval("SELECT version FROM active_version")
            reported_ids = {
                r["help_request_id"]
                for r in await reporting.fetch(
                    "SELECT help_request_id FROM question_rows WHERE version = $1 AND help_request_id = ANY($2)",
                    version,
                    ids,
                )
            }
            reported = len(reported_ids)
            counted = await reporting.fetchval(
                "SELECT coalesce(sum(n), 0) FROM question_counts WHERE version = $1 AND location = $2",
                version,
                load.location,
            )
            done = referred == referrals == reported == counted == len(ids) and len(ids) >= len(load.accepted)
            now = time.monotonic()
            if (counts := (len(ids), referred, referrals, reported, counted)) != last:
                last, progressed = counts, now
            if done or now - progressed > stalled or now - started > timeout:
                break
            await asyncio.sleep(1)
        settle = time.monotonic() - started
        records = await records_since(infra, AGENCY_TOPIC, since)
    finally:
        for conn in (intake, routing, reporting):
            await conn.close()
    mine = set(ids)
    events_by_referral: dict[str, set[str]] = {}
    seen: Counter = Counter()
    for record in records:
        event = json.loads(record.value)
        if event["data"].get("help_request_id") in mine:
            events_by_referral.setdefault(event["data"]["referral_id"], set()).add(event["id"])
            seen[event["id"]] += 1
    twice = sum(len(e) > 1 for e in events_by_referral.values()) + max(0, counted - len(ids))
    accepted = set(load.accepted)
    delivered_at: dict[str, float] = {}
    for record in records:
        visit = json.loads(record.value)["data"]["help_request_id"]
        delivered_at.setdefault(visit, record.timestamp / 1000)
    delivered_visits = set(delivered_at) & mine
    return Verdict(
        offered=load.count,
        accepted=len(accepted),
        stored=len(ids),
        referred=referred,
        referral_rows=referrals,
        delivered=len(events_by_referral),
        duplicate_records=sum(n - 1 for n in seen.values()),
        duplicated_effects=twice,
        lost=len(accepted - (referred_ids & delivered_visits & reported_ids)),
        reported=reported,
        counted=counted,
        settle_seconds=settle,
        delivered_at=delivered_at,
    )


async def out_of_order(infra: InfraSettings, since: dict[Any, int], reported: dict[str, list[str]]) -> list[str]:
    """The referrals whose status changes are not on routing's topic once each, in the order
    reported, with rising sequence numbers (duplicate records of one event id are absorbed)."""
    changes: dict[str, list[tuple[str, int]]] = {}
    seen: set[str] = set()
    for record in await records_since(infra, catalog.ROUTING, since):
        event = json.loads(record.value)
        if event["type"].endswith("ReferralStatusChanged") and event["id"] not in seen:
            seen.add(event["id"])
            data = event["data"]
            changes.setdefault(data["referral_id"], []).append((data["status"], data["sequence"]))
    wrong = []
    for referral_id, statuses in reported.items():
        found = changes.get(referral_id, [])
        sequences = [n for _, n in found]
        if [status for status, _ in found] != statuses or sequences != sorted(set(sequences)):
            wrong.append(f"{referral_id}: reported {statuses}, on the topic {found}")
    return wrong


def spread(n: int, duration: float) -> list[float]:
    """`n` random moments in [0, duration), one in each of n equal slices."""
    return [(k + random.random()) * duration / n for k in range(n)]


async def start_at_the_end(infra: InfraSettings, groups: list[str]) -> None:
    """Commit the end of every topic for these consumer groups: a group that starts then reads
    only what is published from now on, not the platform's history."""
    admin = admin_client(infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if not t.startswith("__")]
    finally:
        await admin.close()
    ends = await latest_offsets(infra.kafka_bootstrap_servers, topics)
    for group in groups:
        consumer = consumer_client(infra.kafka_bootstrap_servers, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(list(ends))
            await consumer.commit(dict(ends))
        finally:
            await consumer.stop()


@dataclass
class IsolatedCopy:
    """The five services once more, each with a database of its own and consumer groups of its
    own (`ido-<service>-copy`, inside its principal's group ACL, starting at the end of every
    topic), on `port_base` + 1..5."""

    infra: InfraSettings
    port_base: int
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def base(self, service: str) -> str:
        return f"http://127.0.0.1:{self.port_base + SERVICES.index(service) + 1}"

    def _database(self, service: str) -> str:
        return f"ido_copy_{service}"

    @classmethod
    async def start(cls, infra: InfraSettings, port_base: int) -> "IsolatedCopy":
        copy = cls(infra, port_base)
        admin = await connect(infra.pg_admin_url, infra.pgpassfile)
        try:
            for service in SERVICES:
                await admin.execute(f'DROP DATABASE IF EXISTS "{copy._database(service)}" WITH (FORCE)')
                await admin.execute(f'CREATE DATABASE "{copy._database(service)}"')
        finally:
            await admin.close()
        groups = [f"ido-{s}-copy" for s in SERVICES] + [f"ido-routing-copy{WEBHOOKS_GROUP_SUFFIX}"]
        await start_at_the_end(infra, groups)
        routing_credential = REPO_ROOT / ".local" / "routing" / "service-credential"
        for service in SERVICES:
            prefix = service.upper()
            env = {
                **os.environ,
                f"{prefix}_PORT": str(copy.base(service).rsplit(":", 1)[1]),
                f"{prefix}_PUBLIC_BASE_URL": copy.base(service),
                f"{prefix}_DATABASE_URL": infra.pg_admin_url.rsplit("/", 1)[0] + "/" + copy._database(service),
                f"{prefix}_CONSUMER_GROUP": f"ido-{service}-copy",
                "ROUTING_INTAKE_URL": copy.base("intake"),
                "ROUTING_WEBHOOK_ALLOW_LOCAL": "true",
            }
            own = infra.kafka_clients_dir / f"ido-{service}.properties"
            if own.is_file():
                env["KAFKA_CLIENT_CONFIG"] = str(own)
            if routing_credential.is_file():
                env["ROUTING_SERVICE_CREDENTIAL"] = routing_credential.read_text().strip()
            copy.processes[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=open(REPO_ROOT / ".local" / "logs" / f"copy-{service}.log", "w"),  # noqa: SIM115
            )
        await copy._until_ready()
        return copy

    async def _until_ready(self) -> None:
        deadline = time.monotonic() + 120
        async with httpx.AsyncClient(timeout=2) as client:
            for service, process in self.processes.items():
                while True:
                    assert process.poll() is None, f"{service} copy exited: see .local/logs/copy-{service}.log"
                    try:
                        if (await client.get(f"{self.base(service)}/healthz")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, f"{service} copy not healthy"
                    await asyncio.sleep(0.3)

    async def stop(self) -> None:
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        admin = await connect(self.infra.pg_admin_url, self.infra.pgpassfile)
        try:
            for service in SERVICES:
                await admin.execute(f'DROP DATABASE IF EXISTS "{self._database(service)}" WITH (FORCE)')
        finally:
            await admin.close()
