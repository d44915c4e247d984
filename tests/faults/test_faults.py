"""Proven under faults (issue 12.4), on the system as `make up` runs it (two instances of every
service): help requests at a steady rate while services are killed, Kafka or PostgreSQL is
stopped, or poison is mixed in; afterwards every accepted request is stored, routed, delivered to
the agency's topic once per referral and counted once by reporting. Counts come from
IDO_FAULT_REQUESTS (10,000) and IDO_FAULT_POISON (1,000); CI runs fewer. Each test prints its
row of the table: offered, accepted, delivered, duplicated effects, lost, recovery (from the end
of the fault until everything accepted before it was delivered), delay from 201 to the agency's
topic (99th percentile and maximum), and settle time (from the end of the load until all was
counted)."""

import asyncio
import json
import time

import httpx
import pytest

from shared import reference
from shared.events import catalog
from shared.kafka import producer_client
from tests.e2e.conftest import credential
from tests.faults import harness
from tests.faults.harness import SERVICES, Load, base, kill, local, restart, scaled, spread, verdict
from tests.kafkatools import TopicReader

pytestmark = [pytest.mark.infra, pytest.mark.faults]

INSTANCES = 2
REQUESTS = scaled("REQUESTS", 10_000)
RATE = scaled("RATE", 50)  # requests per second a run offers at most: what this 2-core machine sustains
OUTAGE = scaled("OUTAGE_SECONDS", 20)
TABLE: list[str] = []


@pytest.fixture(scope="module")
def system(infra):
    """Two instances of every service; those this suite started are stopped after it."""
    before = harness.running()
    restart(INSTANCES)
    yield
    harness.stop(harness.running() - before)
    columns = ["fault", "offered", "accepted", "delivered", "duplicated effects", "lost"]
    columns += ["recovered after", "delay p99 / max", "settled after", "not accepted, why"]
    print("\n| " + " | ".join(columns) + " |\n" + "|---" * len(columns) + "|")
    print("\n".join(TABLE))


@pytest.fixture(autouse=True)
def every_instance_up(system) -> None:
    """Each fault starts from the whole system, whatever the one before left behind."""
    restart(INSTANCES)


@pytest.fixture(scope="module")
def token(system) -> list[str]:
    """Credentials of eight pilot libraries: the load is spread over them as real desks' are."""
    return [credential("--library", code) for code in list(reference.PILOT_LIBRARIES)[:8]]


async def run(
    infra, token: list[str], count: int, rate: float, fault, failover: bool = False
) -> tuple[Load, harness.Verdict, float]:
    """The load and the fault side by side; the verdict once both are done, and the wall-clock
    time the fault was over. With `failover`, a request an intake instance does not answer goes
    to the other, as a load balancer does."""
    load = Load(token, await harness.register_location(token), count, rate, INSTANCES, failover=failover)
    since = await harness.topic_ends(infra, harness.AGENCY_TOPIC)
    async with asyncio.TaskGroup() as both:
        both.create_task(load.run())
        over = both.create_task(timed(fault))
    return load, await verdict(infra, load, since), over.result()


async def timed(fault) -> float:
    await fault()
    return time.time()


def assert_nothing_lost(load: Load, found: harness.Verdict) -> None:
    assert found.accepted > 0
    assert found.lost == 0, found
    assert found.duplicated_effects == 0, found
    assert found.stored == found.referred == found.referral_rows == found.delivered == found.reported, found
    assert found.counted == found.stored, found


async def test_f1_each_service_killed_three_times_under_load(infra, token):
    """Besides the checks of every run: an agency reports statuses on a quarter of the referrals
    meanwhile, and each referral's changes reach routing's topic once, in the order reported."""
    duration = max(60.0, REQUESTS / RATE)
    kills = [SERVICES[k % len(SERVICES)] for k in range(3 * len(SERVICES))]
    load = Load(token, await harness.register_location(token), REQUESTS, REQUESTS / duration, INSTANCES)
    agency = harness.Agency(credential("--agency", "belastingdienst"), load)
    since = await harness.topic_ends(infra, harness.AGENCY_TOPIC)
    since_routing = await harness.topic_ends(infra, catalog.ROUTING)
    referrals = await TopicReader(infra.kafka_bootstrap_servers, harness.AGENCY_TOPIC).start(from_end=True)
    load_done = asyncio.Event()
    back: list[float] = []  # wall-clock time each killed service was up again

    async def fault() -> None:
        started = time.monotonic()
        for at, service in zip(spread(len(kills), duration * 0.8), kills, strict=True):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            for k in range(INSTANCES):  # the whole service goes down, then comes back
                kill(service, k)
            await asyncio.to_thread(restart, INSTANCES)
            back.append(time.time())

    async def load_then_done() -> None:
        await load.run()
        load_done.set()

    try:
        async with asyncio.TaskGroup() as all_three:  # one failing stops the others
            all_three.create_task(load_then_done())
            all_three.create_task(fault())
            all_three.create_task(agency.run(referrals, load_done))
    finally:
        await referrals.stop()
    found = await verdict(infra, load, since)
    name = f"F1: 5 services x 3 SIGKILLs, {len(agency.reported)} referrals reported on"
    TABLE.append(found.row(name, load, *back))
    assert_nothing_lost(load, found)
    assert len(agency.reported) > found.accepted // 8, "the agency reported on its share of the referrals"
    assert all(s == ["accepted", "got_help"] for s in agency.reported.values()), agency.reported
    assert await harness.out_of_order(infra, since_routing, agency.reported) == []


async def test_f2_kafka_stopped_while_intake_keeps_accepting(infra, token):
    duration = OUTAGE * 2.5
    count = min(REQUESTS, int(duration * 60))

    async def fault() -> None:
        await asyncio.sleep(OUTAGE * 0.5)
        await asyncio.to_thread(local, "kafka", "stop")
        await asyncio.sleep(OUTAGE)
        await asyncio.to_thread(local, "kafka", "start")

    load, found, over = await run(infra, token, count, count / duration, fault)
    TABLE.append(found.row(f"F2: Kafka stopped {OUTAGE} s", load, over))
    assert dict(load.refused) == {}, "intake answered 201 throughout: the outbox holds the events"
    assert_nothing_lost(load, found)


async def test_f3_postgres_stopped_answers_503_and_recovers_without_a_restart(infra, token):
    duration = OUTAGE * 2.5
    count = min(REQUESTS, int(duration * 40))
    readiness: list[dict] = []

    async def fault() -> None:
        await asyncio.sleep(OUTAGE * 0.5)
        await asyncio.to_thread(local, "postgres", "stop")
        await asyncio.sleep(2)
        async with httpx.AsyncClient(timeout=5) as client:
            readiness.append((await client.get(f"{base('intake')}/readyz")).json())
        await asyncio.sleep(OUTAGE - 2)
        await asyncio.to_thread(local, "postgres", "start")

    pids = {s: harness.RUN.joinpath(f"{s}.pid").read_text() for s in SERVICES}
    load, found, over = await run(infra, token, count, count / duration, fault)
    TABLE.append(found.row(f"F3: PostgreSQL stopped {OUTAGE} s", load, over))
    assert readiness and readiness[0]["checks"]["database"] == "unavailable"
    assert load.unavailable, "requests during the outage were answered 503"
    assert set(load.refused) <= {503}, load.refused
    assert max(seconds for seconds, _ in load.unavailable) < 2.5, "answered at once, not after a hang"
    assert all(h["content-type"] == "application/problem+json" and h["retry-after"] for _, h in load.unavailable)
    assert_nothing_lost(load, found)
    assert pids == {s: harness.RUN.joinpath(f"{s}.pid").read_text() for s in SERVICES}, "no service restarted"


def poison(i: int) -> bytes:
    """Five kinds of records no consumer can process."""
    event = {
        "specversion": "1.0",
        "id": f"poison-{i}",
        "source": "urn:test",
        "type": "nl.ido.HelpRequested",
        "time": "2026-12-06T10:00:00Z",
        "datacontenttype": "application/json",
        "subject": f"poison-{i}",
        "data": {"help_request_id": f"poison-{i}"},  # schema violation: no library, channel, questions
    }
    kind = i % 5
    if kind == 0:
        return b"\xff not json {"
    if kind == 1:
        event["specversion"] = "0.3"
    elif kind == 2:
        event["type"] = "nl.ido.NoSuchEvent"
    elif kind == 4:
        event["data"] = {
            "help_request_id": f"poison-{i}",
            "library": "venlo",
            "channel": "walk_in",
            "questions": [{"index": 0, "category": "other", "theme": "overig"}],
            "registered_at": "2026-12-06T10:00:00Z",
            "note": "BSN 111222333",
        }
    return json.dumps(event).encode()


async def test_f4_poison_mixed_into_valid_events_is_dead_lettered_and_nothing_valid_is_lost(infra, token):
    count = scaled("POISON", 1_000)
    duration = max(30.0, REQUESTS / RATE)
    dlq = await TopicReader(infra.kafka_bootstrap_servers, catalog.dlq_topic(catalog.HELP_REQUESTS)).start(
        from_end=True
    )

    async def fault() -> None:
        producer = producer_client(infra.kafka_bootstrap_servers, acks="all")
        await producer.start()
        try:
            started = time.monotonic()
            for i in range(count):
                await asyncio.sleep(max(0.0, started + i * duration / count - time.monotonic()))
                await producer.send(catalog.HELP_REQUESTS, poison(i), key=f"poison-{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()

    load, found, over = await run(infra, token, REQUESTS, REQUESTS / duration, fault)
    parked = await dlq.until(
        lambda r: r.key.startswith(b"poison-") and dict(r.headers).get("ido-dlq-consumer") == b"ido-routing",
        count=count,
        timeout=60,
    )
    await dlq.stop()
    TABLE.append(found.row(f"F4: {count} poison records", load, over))
    assert {r.key for r in parked} == {f"poison-{i}".encode() for i in range(count)}, "every poison record, once"
    assert all(dict(r.headers)["ido-dlq-reason"] for r in parked), "each with its reason"
    assert not any(b"111222333" in dict(r.headers)["ido-dlq-reason"] for r in parked), "never the BSN itself"
    assert max(found.delays(load)) < 10, "valid events were not held up by the poison"
    assert_nothing_lost(load, found)


async def test_f5_one_instance_of_each_service_killed_the_survivors_take_over(infra, token):
    duration = max(40.0, REQUESTS / RATE)

    async def fault() -> None:
        await asyncio.sleep(duration * 0.3)
        for service in SERVICES:
            kill(service, 1)

    load, found, over = await run(infra, token, REQUESTS, REQUESTS / duration, fault, failover=True)
    TABLE.append(found.row(f"F5: one instance of each killed ({load.retried} requests sent again)", load, over))
    assert dict(load.refused) == {}, "the surviving intake instance answered what the killed one did not"
    assert_nothing_lost(load, found)


async def test_f7_rolling_restart_under_load_refuses_nothing_and_loses_nothing(infra, token):
    """An upgrade without downtime, locally: every instance of every service in turn is stopped
    gracefully (SIGTERM) and started again, one at a time, while the load goes on. The load
    goes to the other intake instance when one does not answer, as a load balancer does, with
    the same Idempotency-Key. Every request is accepted; nothing is lost or applied twice."""
    duration = max(120.0, REQUESTS / RATE)

    async def fault() -> None:
        for service in SERVICES:
            for k in range(INSTANCES):
                await asyncio.to_thread(harness.stop, {harness.instance_name(service, k)})
                await asyncio.to_thread(restart, INSTANCES)

    load, found, over = await run(infra, token, REQUESTS, REQUESTS / duration, fault, failover=True)
    name = f"F7: rolling restart of all {INSTANCES * len(SERVICES)} instances ({load.retried} requests sent again)"
    TABLE.append(found.row(name, load, over))
    assert dict(load.refused) == {}, "a rolling restart refuses nothing"
    assert found.accepted == REQUESTS
    assert_nothing_lost(load, found)
