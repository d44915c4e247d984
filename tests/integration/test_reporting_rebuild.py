"""Rebuilding reporting's read models from Kafka into a new version, on the real broker and
database, with the live consumer of another instance at work meanwhile: readers see the old,
complete figures until the swap; the new version equals what incremental projection gives;
every event counts once in it, whether the replay or the live consumer got there first."""

import asyncio
import random
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from services.reporting import handlers
from services.reporting.adapters.repository import READ_MODEL_TABLES, ReportingQueries, ReportingUnitOfWork
from services.reporting.entrypoints.rebuild import Rebuild
from shared import migrations
from shared.consuming import EventConsumer
from shared.db import Database, connect
from shared.events import catalog
from shared.kafka import apply_topics, publish_event
from shared.outbox import EventFactory
from shared.settings import REPO_ROOT
from tests.integration.test_reporting_api import EVENTS, all_views, reporting_api

pytestmark = pytest.mark.infra

GROUP = "ido-reporting"
FACTORY = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
ON_ROUTING = {"HelpRequestRouted", "ReferralStatusChanged", "ReferralOverdue", "ReferredToAgency"}
ON_ROUTING |= {name for name in catalog.EVENT_TYPES if name.startswith("Subsidy")}


class Topics:
    """Two private topics standing in for the platform's: routing and subsidy facts on one,
    everything else on the other."""

    def __init__(self, unique: str) -> None:
        self.facts, self.routing = f"test.{unique}.facts.v1", f"test.{unique}.routing.v1"

    def of(self, event) -> str:
        return self.routing if event.name in ON_ROUTING else self.facts

    def subscriptions(self) -> dict[str, tuple[str, ...]]:
        from services.reporting.domain.projections import PROJECTIONS

        return {
            self.facts: tuple(n for n in PROJECTIONS if n not in ON_ROUTING),
            self.routing: tuple(n for n in PROJECTIONS if n in ON_ROUTING),
        }


@pytest.fixture
async def topics(infra, unique) -> Topics:
    made = Topics(unique)
    await apply_topics(infra.kafka_bootstrap_servers, [made.facts, made.routing], partitions=3)
    return made


async def project(event, data, tx) -> None:
    await handlers.on_event(event, data, uow=ReportingUnitOfWork(tx))


def visit(i: int, theme: str = "digid"):
    data = catalog.HelpRequested(
        help_request_id=f"hr-x{i}",
        library=("venlo", "zeeland", "katwijk")[i % 3],
        channel="walk_in",
        questions=[catalog.QuestionFacts(index=0, category="digital_government", theme=theme)],
        help_given=["informed"],
        registered_at=datetime(2026, 11, 1 + i % 28, tzinfo=UTC),
    )
    return FACTORY.create(data, correlation_id=None).event, data


@asynccontextmanager
async def reference_database(infra, unique):
    """A second private database: the read models built incrementally, to compare with."""
    name = f"test_{unique}_ref"
    admin = await connect(infra.pg_admin_url, infra.pgpassfile)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = infra.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    db = Database(url, infra.pgpassfile, pool_size=2)
    try:
        await asyncio.to_thread(migrations.apply, url, infra.pgpassfile, REPO_ROOT / "services/reporting/migrations")
        await db.connect()
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def rows_of(db, version: int) -> int:
    return sum([await db.fetchval(f"SELECT count(*) FROM {t} WHERE version = $1", version) for t in READ_MODEL_TABLES])


async def test_readers_see_the_old_version_until_the_swap_and_the_new_one_equals_incremental_projection(
    infra, migrated, unique, topics, publisher
):
    live_db, rebuilding_db = await migrated("reporting"), await migrated("reporting")  # two instances
    live = EventConsumer(None, live_db, group_id=GROUP)  # type: ignore[arg-type]
    for created, data in EVENTS:
        await publish_event(publisher, created, topics.of(created))
        assert await live._handle_once(project, created, data)
    await publish_event(publisher, EVENTS[0][0], topics.of(EVENTS[0][0]))  # re-published by a relay
    await publisher.publish(b"{not json", topic=topics.facts, key=b"poison")  # dead-lettered live
    erased = catalog.PersonalDataErased(
        help_request_id="hr-1", library="venlo", reason="request", erased_at=datetime.now(UTC)
    )
    await publish_event(publisher, FACTORY.create(erased, correlation_id=None).event, topics.facts)  # not projected
    rebuild = Rebuild(
        rebuilding_db,
        topics.subscriptions(),
        infra.kafka_bootstrap_servers,
        consumer_group=GROUP,
        retention=timedelta(days=7),
        batch_size=5,
    )

    async with reporting_api(live_db) as get:
        before = await all_views(get)
        run = await rebuild.begin()
        assert run is not None and (await rebuild.status())["state"] == "running"
        during: list[tuple[int, list]] = []
        write = run._write

        async def write_then_read(batch) -> None:
            await write(batch)
            during.append((await rows_of(live_db, run.version), await all_views(get)))

        run._write = write_then_read  # type: ignore[method-assign]
        await run.replay()
        assert len(during) >= 5
        assert during[0][0] < during[-1][0], "the new version was half-built meanwhile"
        assert all(views == before for _, views in during), "readers saw the old, complete figures"

        # Caught up: the live consumer applies new events to both versions from now on.
        await run.go_live()
        early, late, after_swap = visit(1), visit(2), visit(3)
        await publish_event(publisher, early[0], topics.facts)
        assert await live._handle_once(project, *early)  # before the replay gets to it
        await publish_event(publisher, late[0], topics.facts)
        await publish_event(publisher, after_swap[0], topics.facts)
        await run.replay()  # the replay gets to `late` and `after_swap` first
        assert await live._handle_once(project, *late)
        await run.swap()
        assert await live._handle_once(project, *after_swap)  # the live consumer meets it after the swap
        await run.close()
        after = await all_views(get)

    status = await rebuild.status()
    assert status["state"] == "done" and status["active"] == "reporting_v2" and status["database"] == "reporting_v2"
    assert status["processed"] == status["total"] == len(EVENTS) + 6
    async with reference_database(infra, unique) as reference:
        for created, data in [*EVENTS, early, late, after_swap]:
            async with reference.unit_of_work() as tx:
                await project(created, data, tx)
        async with reporting_api(reference) as get:
            assert after == await all_views(get), "the rebuilt version equals incremental projection"
    assert after != before
    assert await rows_of(live_db, 1) == 0, "the replaced version is dropped"
    assert await live_db.fetchval("SELECT count(*) FROM applied_events") == 0, "no mark is left behind"


async def test_events_arriving_during_a_rebuild_count_once_in_the_new_version(infra, migrated, topics, publisher):
    """The replay (one instance) and the live consumer (the other) race in every phase: while
    the new version is built, once it is live, and around the swap."""
    live_db, rebuilding_db = await migrated("reporting"), await migrated("reporting")
    live = EventConsumer(None, live_db, group_id=GROUP)  # type: ignore[arg-type]
    history = [visit(i) for i in range(300)]
    building, racing, swapping = (
        [visit(i, theme) for i in range(n, n + 60)] for n, theme in ((300, "zorg"), (400, "wonen"), (500, "recht"))
    )
    await asyncio.gather(*(publish_event(publisher, e, topics.facts) for e, _ in history))
    for created, data in history:
        await live._handle_once(project, created, data)
    rebuild = Rebuild(
        rebuilding_db,
        topics.subscriptions(),
        infra.kafka_bootstrap_servers,
        consumer_group=GROUP,
        retention=timedelta(days=7),
        batch_size=10,
    )
    run = await rebuild.begin()
    assert run is not None
    rng = random.Random(3)

    async def arrive(events, *, publish: bool = True) -> None:
        for created, data in events:
            if publish:
                await publish_event(publisher, created, topics.facts)
                if rng.random() < 0.2:  # now and then the same record twice, as after a relay crash
                    await publish_event(publisher, created, topics.facts)
            assert await live._handle_once(project, created, data)
            await asyncio.sleep(rng.random() / 200)

    async def publish_all(events) -> None:
        for created, _ in events:
            await publish_event(publisher, created, topics.facts)

    await asyncio.gather(run.replay(), arrive(building))  # the new version is not live yet
    await run.go_live()
    await publish_all(racing)
    await asyncio.gather(run.replay(), arrive(racing[::2], publish=False), arrive(racing[1::2], publish=False))
    await publish_all(swapping)
    await asyncio.gather(run.replay(), arrive(swapping[:30], publish=False))
    await asyncio.gather(run.swap(), arrive(swapping[30:], publish=False))
    await run.close()

    async with ReportingQueries(live_db).active() as read:
        assert read.version == run.version
        assert await read.visits() == 480
        counts = sorted(await read.question_totals("theme"))
        assert counts == [("digid", 300), ("recht", 60), ("wonen", 60), ("zorg", 60)]
        assert len(await read.question_rows(None, None, None)) == 480
    marks = await live_db.fetchval("SELECT count(*) FROM applied_events")
    assert marks == 0, "the live consumer processed every event, so no mark is needed any more"


async def test_a_failed_rebuild_leaves_the_active_version_and_drops_its_own(infra, migrated, topics, publisher):
    db = await migrated("reporting")
    created, data = visit(1)
    await publish_event(publisher, created, topics.facts)
    async with db.unit_of_work() as tx:
        await project(created, data, tx)
    rebuild = Rebuild(
        db, topics.subscriptions(), infra.kafka_bootstrap_servers, consumer_group=GROUP, retention=timedelta(days=7)
    )
    run = await rebuild.begin()
    assert run is not None
    await run.replay()
    assert await rows_of(db, run.version) > 0

    async def broken_swap() -> None:
        raise ConnectionError("lost the broker")

    run.swap = broken_swap  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await run.complete()
    assert await rows_of(db, run.version) == 0
    assert (await rebuild.status())["state"] == "failed"
    async with ReportingQueries(db).active() as read:
        assert read.version == 1 and await read.visits() == 1


async def test_a_failure_after_the_swap_keeps_the_new_version_and_the_next_rebuild_drops_the_old(
    infra, migrated, topics, publisher
):
    db = await migrated("reporting")
    created, data = visit(1)
    await publish_event(publisher, created, topics.facts)
    async with db.unit_of_work() as tx:
        await project(created, data, tx)
    rebuild = Rebuild(
        db, topics.subscriptions(), infra.kafka_bootstrap_servers, consumer_group=GROUP, retention=timedelta(days=7)
    )
    run = await rebuild.begin()
    assert run is not None

    async def interrupted_drop(version: int) -> None:
        raise ConnectionError("lost the database while dropping")

    run.read_models.drop = interrupted_drop  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await run.complete()
    assert (await rebuild.status())["state"] == "done"
    async with ReportingQueries(db).active() as read:
        assert read.version == run.version and await read.visits() == 1, "the swapped-in version stays whole"
    assert await rows_of(db, 1) > 0, "the replaced version's rows are still there"

    await rebuild.recover()  # as at the next start
    assert await rows_of(db, 1) == 0
    assert await db.fetchval("SELECT dropped FROM read_model_versions WHERE version = 1")


async def test_a_rebuild_refuses_to_start_when_a_topic_lost_its_first_records(infra, migrated, topics, publisher):
    """Issue 11.3: a rebuild needs every event since the first; a partition whose earliest offset
    is not 0 (retention, deletion) would give wrong figures, so the rebuild does not start."""
    from aiokafka import TopicPartition
    from aiokafka.admin import RecordsToDelete

    from services.reporting.entrypoints.rebuild import Incomplete
    from shared.kafka import admin_client, consumer_client

    db = await migrated("reporting")
    rebuild = Rebuild(
        db, topics.subscriptions(), infra.kafka_bootstrap_servers, consumer_group=GROUP, retention=timedelta(days=7)
    )
    await rebuild.check_complete()  # empty topics: complete
    for created, _ in EVENTS[:6]:
        await publish_event(publisher, created, topics.of(created))
    await rebuild.check_complete()  # every record there

    consumer = consumer_client(infra.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topics.facts, p) for p in range(3)])
    finally:
        await consumer.stop()
    admin = admin_client(infra.kafka_bootstrap_servers)
    await admin.start()
    try:  # as retention would: the first record of each partition that has one is gone
        await admin.delete_records({tp: RecordsToDelete(before_offset=1) for tp, end in ends.items() if end})
    finally:
        await admin.close()
    with pytest.raises(Incomplete, match=f"{topics.facts}\\[[0-9]\\] starts at offset 1"):
        await rebuild.check_complete()
    with pytest.raises(Incomplete):
        await rebuild.start()
    assert (await rebuild.status())["state"] != "running", "nothing was begun"
