"""Does routing scale out? Its drain rate (HelpRequested events consumed per second) with one
instance and with two (target: two >= 1.7x one, measured in the same run).

For each instance count the script makes exactly that many routing instances run (instance k on
ROUTING_PORT + 100*k, as `make up INSTANCES=N` starts them: same command, environment, log and
pid files under .local/), waits until routing's consumer group `ido-routing` is stable with that
many members and has nothing left to consume, then publishes N HelpRequested events at once on
`ido.help-requests.v1` (valid CloudEvents made with intake's EventFactory, key = the help request
id; one toeslagen/huurtoeslag question with consent, so each becomes a referral to the
Belastingdienst) and times from the first send until the group's committed offsets reach the
end offsets of the published records (aiokafka admin `list_consumer_group_offsets`). Routing
commits after every record, so the committed offsets follow its progress. Publishing N events
takes a fraction of a second, far less than draining them: it is a backlog.

With --cold the instances are instead stopped while the events are published and started
afterwards (the time then includes their start, joining the group and its rebalance; the time
from the first committed progress is printed too).

Each event's help request is first inserted into intake's database (as role ido_intake, status
`received`, id 'bench-<uuid>'), so that intake, which applies routing's HelpRequestRouted to it,
finds it instead of retrying and dead-lettering; the platform then treats them as real visits
(reporting counts them). `bench/data_size.py --cleanup` removes them from intake and routing.

Kafka spreads the load by partition: with P partitions, k instances get ceil(P/k) partitions at
most each, so the drain can at best speed up P / ceil(P/k) times (3 partitions, 2 instances:
1.5x). The script prints the partition count, the assignment and that bound.

At the end the routing instances that ran before run again (the others are stopped).

    make up
    .venv/bin/python bench/routing_scaling.py                  # 2000 events, 1 then 2 instances
    .venv/bin/python bench/routing_scaling.py --events 5000 --cold
"""

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import TopicPartition
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _common import RUN_DIR, CpuMeter, code_version, print_cpu, wait_until_idle
from _instances import Instances, MemoryPeaks, instance_pids

from shared.db import connect
from shared.events.catalog import HELP_REQUESTS, HelpRequested, QuestionFacts
from shared.events.envelope import CONTENT_TYPE
from shared.kafka import admin_client, consumer_client, make_producer
from shared.outbox import EventFactory
from shared.settings import InfraSettings

GROUP = "ido-routing"
TARGET_RATIO = 1.7
INTAKE_BASE_URL = f"http://127.0.0.1:{os.environ.get('INTAKE_PORT', 8001)}"
ROUTING = Instances("routing")  # as `make up INSTANCES=N` starts them
PidSource = Callable[[int], dict[str, int]]  # instance count -> the processes whose memory is sampled
REQUEST = {
    "channel": "walk_in",
    "questions": [
        {
            "category": "digital_government",
            "theme": "toeslagen",
            "subtheme": "huurtoeslag",
            "note": None,
            "target": None,
        }
    ],
    "help_given": ["informed"],
    "referral": {"consent": True, "contact_preference": "phone", "contact": None},
    "duration_minutes": None,
    "location": None,
}


# --------------------------------------------------------------------------------------------
# Kafka: the group's members and progress
# --------------------------------------------------------------------------------------------


@dataclass
class Group:
    state: str
    members: list[list[int]]  # per member: its partitions of the topic


class Kafka:
    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = admin_client(bootstrap, "ido-bench-routing-scaling")
        self.consumer = consumer_client(bootstrap, enable_auto_commit=False)
        self.partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self.admin.start()
        await self.consumer.start()
        (described,) = await self.admin.describe_topics([HELP_REQUESTS])
        self.partitions = sorted(TopicPartition(HELP_REQUESTS, p["partition"]) for p in described["partitions"])
        if not self.partitions:
            sys.exit(f"topic {HELP_REQUESTS} not found; run `make up`")

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.admin.close()

    async def group(self) -> Group:
        (response,) = await self.admin.describe_consumer_groups([GROUP])
        _, _, state, _, _, members = response.groups[0]
        assigned = []
        for member in members:
            partitions: list[int] = []
            with contextlib.suppress(Exception):  # a member of another protocol: no assignment shown
                assignment = ConsumerProtocolMemberAssignment.decode(member[4])
                partitions = sorted(p for topic, ps in assignment.assignment if topic == HELP_REQUESTS for p in ps)
            assigned.append(partitions)
        return Group(state, assigned)

    async def committed(self) -> dict[int, int]:
        offsets = await self.admin.list_consumer_group_offsets(GROUP, partitions=self.partitions)
        return {tp.partition: max(0, meta.offset) for tp, meta in offsets.items()}

    async def end_offsets(self) -> dict[int, int]:
        return {tp.partition: offset for tp, offset in (await self.consumer.end_offsets(self.partitions)).items()}

    async def lag(self) -> int:
        committed, end = await self.committed(), await self.end_offsets()
        return sum(max(0, end[p] - committed.get(p, 0)) for p in end)

    async def wait_stable(self, members: int, timeout: float) -> Group:
        deadline = time.monotonic() + timeout
        while True:
            group = await self.group()
            assigned = sum(1 for partitions in group.members if partitions)
            if (
                group.state == "Stable"
                and len(group.members) == members
                and assigned == min(members, len(self.partitions))
            ):
                return group
            if time.monotonic() > deadline:
                sys.exit(
                    f"consumer group {GROUP} not stable with {members} member(s) after {timeout:g} s "
                    f"(state {group.state}, {len(group.members)} members)"
                )
            await asyncio.sleep(0.25)

    async def wait_caught_up(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (lag := await self.lag()) and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
        return lag


# --------------------------------------------------------------------------------------------
# The backlog: help requests in intake's database, their HelpRequested events on the topic
# --------------------------------------------------------------------------------------------


async def register_help_requests(count: int, settings: InfraSettings) -> list[tuple[str, datetime]]:
    """`count` help requests as intake stores them when they arrive (status received), so that
    intake can apply routing's answer to them; ids 'bench-<uuid>'."""
    now = datetime.now(UTC)
    requests = [(f"bench-{uuid.uuid4()}", now) for _ in range(count)]
    fingerprint = hashlib.sha256(json.dumps(REQUEST, sort_keys=True).encode()).hexdigest()
    conn = await connect(settings.service_database_url("intake"), settings.pgpassfile)
    try:
        await conn.execute(
            """INSERT INTO help_requests (id, library, registered_at, status, themes, request, fingerprint, data_key)
               SELECT id, 'rivierenland', at, 'received', ARRAY['toeslagen'], $3::jsonb, $4, NULL
               FROM unnest($1::text[], $2::timestamptz[]) AS r(id, at)""",
            [r[0] for r in requests],
            [r[1] for r in requests],
            REQUEST,
            fingerprint,
        )
    finally:
        await conn.close()
    return requests


def help_requested_events(requests: list[tuple[str, datetime]], settings: InfraSettings) -> list[tuple[bytes, bytes]]:
    """(key, value) of a HelpRequested CloudEvent per help request, as intake's relay publishes it."""
    factory = EventFactory(service="intake", oin=settings.oin, base_url=INTAKE_BASE_URL)
    records = []
    for help_request_id, registered_at in requests:
        data = HelpRequested(
            help_request_id=help_request_id,
            library="rivierenland",
            channel="walk_in",
            questions=[
                QuestionFacts(index=0, category="digital_government", theme="toeslagen", subtheme="huurtoeslag")
            ],
            help_given=["informed"],
            referral_consent=True,
            contact_preference="phone",
            registered_at=registered_at,
        )
        pending = factory.create(data, correlation_id=str(uuid.uuid4()))
        records.append((pending.event.key, pending.event.to_bytes()))
    return records


@dataclass
class Published:
    first: float  # monotonic time of the first send
    targets: dict[int, int]  # partition -> the offset after its last record
    counts: dict[int, int]  # partition -> records
    seconds: float  # until every record was acknowledged


async def publish(bootstrap: str, records: list[tuple[bytes, bytes]]) -> Published:
    """Send every record (acks=all, idempotent, as the relays do) and wait for all the acks."""
    producer = make_producer(bootstrap, client_id="ido-bench")
    await producer.start()
    try:
        headers = [("content-type", CONTENT_TYPE.encode())]
        first = time.monotonic()
        futures = [await producer.send(HELP_REQUESTS, value, key=key, headers=headers) for key, value in records]
        metadata = await asyncio.gather(*futures)
        acked = time.monotonic() - first
    finally:
        await producer.stop()
    targets: dict[int, int] = {}
    counts: dict[int, int] = {}
    for m in metadata:
        targets[m.partition] = max(targets.get(m.partition, 0), m.offset + 1)
        counts[m.partition] = counts.get(m.partition, 0) + 1
    return Published(first, targets, counts, acked)


# --------------------------------------------------------------------------------------------
# One drain
# --------------------------------------------------------------------------------------------


@dataclass
class Drain:
    instances: int
    events: int
    seconds: float  # first send -> everything committed
    from_progress: float  # first committed progress -> everything committed
    published_in: float
    per_partition: dict[int, int]  # events published per partition
    done_at: dict[int, float] = field(default_factory=dict)  # partition -> seconds after the first send
    assignment: list[list[int]] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    complete: bool = True
    peaks: dict[str, int] = field(default_factory=dict)  # peak resident bytes per process during the drain

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def drain(
    args: argparse.Namespace, kafka: Kafka, settings: InfraSettings, instances: int, memory_of: PidSource
) -> Drain:
    cold = args.cold
    group = Group("", [])
    if cold:
        await ROUTING.run_exactly(0)
    else:
        await ROUTING.run_exactly(instances)
        group = await kafka.wait_stable(instances, args.settle)
        if lag := await kafka.wait_caught_up(args.settle):
            print(f"  warning: routing still had {lag} events to consume after {args.settle:g} s; they count too")
        await wait_until_idle(max_wait=10)
    requests = await register_help_requests(args.events, settings)
    records = help_requested_events(requests, settings)
    before = await kafka.committed()
    cpu = CpuMeter()
    cpu_start = cpu.snapshot()
    memory = MemoryPeaks(memory_of(instances)).start()
    published = await publish(args.bootstrap, records)
    first, targets = published.first, published.targets
    if cold:
        for k in range(instances):  # not waiting for them: the clock runs from the first send
            await ROUTING.start(k)
        cpu = CpuMeter()  # with the new instances' pids
        cpu_start = cpu.snapshot()
        memory.pids = memory_of(instances)
    progress_at: float | None = None
    done_at: dict[int, float] = {}
    deadline = first + args.timeout
    while time.monotonic() < deadline:
        committed = await kafka.committed()
        now = time.monotonic() - first
        if progress_at is None and any(committed.get(p, 0) > before.get(p, 0) for p in targets):
            progress_at = now
        for p, target in targets.items():
            if p not in done_at and committed.get(p, 0) >= target:
                done_at[p] = now
        if len(done_at) == len(targets):
            break
        if not group.members:
            with contextlib.suppress(Exception):
                current = await kafka.group()
                if current.state == "Stable" and len(current.members) == instances:
                    group = current
        await asyncio.sleep(0.05)
    seconds = max(done_at.values()) if len(done_at) == len(targets) else time.monotonic() - first
    cpu_used = CpuMeter.cores_used(cpu_start, cpu.snapshot())
    memory.stop()
    for k in range(instances):
        await ROUTING.wait_healthy(k)
    return Drain(
        instances=instances,
        events=len(records),
        seconds=seconds,
        from_progress=seconds - (progress_at or 0.0),
        published_in=published.seconds,
        per_partition=published.counts,
        done_at=done_at,
        assignment=group.members,
        cpu=cpu_used,
        complete=len(done_at) == len(targets),
        peaks=memory.peaks,
    )


def report_drain(d: Drain, cold: bool) -> None:
    state = "" if d.complete else f"  INCOMPLETE: not drained within the timeout ({len(d.done_at)} partitions done)"
    print(
        f"  {d.instances} instance(s): {d.events} events in {d.seconds:.2f} s = {d.rate:8.1f} events/s "
        f"(published and acknowledged in {d.published_in:.2f} s){state}"
    )
    if cold:
        rate = d.events / d.from_progress if d.from_progress else 0.0
        print(f"      from the first committed progress: {d.from_progress:.2f} s = {rate:.1f} events/s")
    spread = ", ".join(f"p{p}: {n}" for p, n in sorted(d.per_partition.items()))
    done = ", ".join(f"p{p} {t:.2f} s" for p, t in sorted(d.done_at.items()))
    print(f"      events per partition: {spread}; each partition drained after: {done}")
    if d.assignment:
        print(f"      assignment: {'; '.join(f'instance {i + 1}: {ps}' for i, ps in enumerate(d.assignment))}")
    print_cpu(d.cpu, indent="      ")
    print("      peak resident memory: " + ",  ".join(f"{n} {b / 2**20:.0f} MB" for n, b in sorted(d.peaks.items())))


def routing_pids(instances: int) -> dict[str, int]:
    return instance_pids(ROUTING, instances)


async def main(
    args: argparse.Namespace, memory_of: PidSource = routing_pids
) -> list[tuple[int, float, dict[str, int]]]:
    """The drains, one per instance count; returns (instances, events/s, peak memory per process)."""
    settings = InfraSettings()
    original = ROUTING.running()
    if 0 not in original:
        sys.exit(f"routing is not running (no live {RUN_DIR / 'routing.pid'}); run `make up`")
    kafka = Kafka(args.bootstrap)
    await kafka.start()
    partitions = len(kafka.partitions)
    print(
        f"routing scaling: drain of {args.events} HelpRequested events by {' then '.join(map(str, args.instances))} "
        f"instance(s) of routing ({'cold: started after publishing' if args.cold else 'running, group stable'})"
    )
    print(f"  code {code_version()}; {HELP_REQUESTS} has {partitions} partitions; routing ran as {original}")
    drains: list[Drain] = []
    try:
        for count in args.instances:
            bound = partitions / -(-partitions // count)
            print(
                f"- {count} instance(s) (with {partitions} evenly filled partitions at best {bound:.2f}x one instance)"
            )
            drains.append(await drain(args, kafka, settings, count, memory_of))
            report_drain(drains[-1], args.cold)
    finally:
        print(f"- putting routing back as it was: instances {original}")
        for k in ROUTING.running():
            if k not in original:
                await ROUTING.stop(k)
        for k in original:
            await ROUTING.start(k)
        for k in original:
            await ROUTING.wait_healthy(k)
        await kafka.stop()
    if len(drains) >= 2 and drains[0].rate:
        base = drains[0]
        for d in drains[1:]:
            ratio = d.rate / base.rate
            bound = partitions / -(-partitions // d.instances)
            verdict = "meets" if ratio >= TARGET_RATIO else "MISSES"
            print(
                f"{d.instances} instances / {base.instances}: {ratio:.2f}x (target >= {TARGET_RATIO:g}x: {verdict}; "
                f"{partitions} evenly filled partitions allow {bound:.2f}x)"
            )
            if bound < TARGET_RATIO:
                print(
                    f"  with {partitions} partitions the busier of {d.instances} instances has "
                    f"{-(-partitions // d.instances)} of them: the target needs a partition count that "
                    f"{d.instances} divides (IDO_TOPIC_PARTITIONS, for a new topic)"
                )
    return [(d.instances, d.rate, d.peaks) for d in drains]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--events", type=int, default=2000, help="events to drain per run (default 2000)")
    p.add_argument("--instances", type=int, nargs="+", default=[1, 2], help="instance counts to compare (default 1 2)")
    p.add_argument("--cold", action="store_true", help="publish while routing is stopped, then start it")
    p.add_argument("--timeout", type=float, default=300.0, help="most seconds a drain may take (default 300)")
    p.add_argument("--settle", type=float, default=90.0, help="most seconds to wait for a stable group")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
