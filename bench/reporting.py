"""Reporting benchmarks.

1. Rebuild throughput, in-process, without the services (Kafka and PostgreSQL only): fill a
   private set of topics with N synthetic events (a plain aiokafka producer; realistic data of
   every event type reporting projects, in the mix a busy desk network produces), create a
   private database as the administrator, migrate it, record every event as processed by the
   live consumer (as on a running system, so the clean-up after the swap has its real work),
   and run reporting's own rebuild on it (services/reporting/entrypoints/rebuild.py: replay
   into a new version, go live, replay the rest, swap, drop the old version). Printed next to
   two baselines measured in the same run on the same records: reading them raw from Kafka (a
   plain consumer, no decoding), and decoding + folding them in memory without a database.
   Target: 1,000,000 events in <= 60 s (>= 16,700 events/s); the projected time is printed.
   The topics and the database are deleted at the end.
2. `--lag` (needs the running system, `make up`): from a POST at intake to the visit being
   counted in the monitor API, at a steady rate.

Everything talks to 127.0.0.1 only; both parts end by themselves.

    .venv/bin/python bench/reporting.py                  # 300,000 events, two rebuilds, ~1 min
    .venv/bin/python bench/reporting.py --events 50000
    .venv/bin/python bench/reporting.py --lag --rate 2 --count 20
"""

import argparse
import asyncio
import gc
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from services.reporting.bootstrap import subscriptions
from services.reporting.domain.projections import changes_of
from services.reporting.entrypoints.rebuild import REPLAY_GC_THRESHOLD, Decoder, Rebuild
from shared import migrations, reference
from shared.db import Database, connect
from shared.events import catalog
from shared.kafka import admin_client, apply_topics, consumer_client, producer_client, topic_partitions
from shared.outbox import EventFactory
from shared.settings import REPO_ROOT, InfraSettings

IDO = Path(sys.executable).parent / "ido"
TARGET_EVENTS, TARGET_SECONDS = 1_000_000, 60
GROUP = "ido-reporting"
OIN = "00000001003214345000"
FACTORIES = {
    s: EventFactory(service=s, oin=OIN, base_url=f"http://{s}") for s in ("intake", "routing", "courses", "subsidy")
}


# ---------------------------------------------------------------------------------------------
# Synthetic events


class Synthetic:
    """Events as the platform produces them: per visit a HelpRequested and its routing; for the
    referred questions a referral on the agency's topic, its status changes and now and then an
    overdue notice; course runs with enrolments; subsidy applications; locations; readiness."""

    THEMES = [(code, sorted(t.subthemes)) for code, t in reference.THEMES.items()]
    LIBRARIES = [*reference.PILOT_LIBRARIES, *(f"bibliotheek-{i}" for i in range(60))]

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.start = datetime(2025, 1, 1, 9, tzinfo=UTC)
        self.ids: list[uuid.UUID] = []

    def _id(self) -> str:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4).hex

    def _moment(self) -> datetime:
        return self.start + timedelta(minutes=self.rng.randrange(0, 2 * 365 * 24 * 60))

    def _event(self, data: catalog.EventData) -> tuple[str, bytes, bytes, uuid.UUID]:
        pending = FACTORIES[data.producer].create(data, correlation_id=None)
        return pending.topic, pending.event.key, pending.event.to_bytes(), pending.event.id

    def visit(self) -> list[tuple[str, bytes, bytes, uuid.UUID]]:
        rng, hr, library, at = self.rng, self._id(), self.rng.choice(self.LIBRARIES), self._moment()
        questions = []
        for index in range(rng.choice((1, 1, 1, 2, 2, 3))):
            theme, subthemes = rng.choice(self.THEMES)
            category = "other" if theme == "overig" else "digital_government"
            subtheme = rng.choice(subthemes) if subthemes and rng.random() < 0.8 else None
            questions.append(catalog.QuestionFacts(index=index, category=category, theme=theme, subtheme=subtheme))
        events = [
            self._event(
                catalog.HelpRequested(
                    help_request_id=hr,
                    library=library,
                    location=f"{library}-{rng.randrange(3)}" if rng.random() < 0.7 else None,
                    channel=rng.choice(("walk_in", "walk_in", "phone", "email", "appointment")),
                    questions=questions,
                    help_given=rng.sample(
                        ["informed", "coached", "helped_at_desk", "course_advised"], rng.randint(1, 2)
                    ),
                    referral_consent=rng.random() < 0.3,
                    duration_minutes=rng.choice((None, 5, 10, 15, 30)),
                    registered_at=at,
                )
            )
        ]
        decisions = []
        for q in questions:
            organisation = reference.THEMES[q.theme].default_organisation
            organisation = reference.THEMES[q.theme].subthemes.get(q.subtheme or "") or organisation
            referred = organisation is not None and rng.random() < 0.4
            outcome = "referred" if referred else rng.choice(("helped_at_desk", "course_advised", "informed"))
            decisions.append(
                catalog.QuestionDecision(
                    question_index=q.index,
                    outcome=outcome,
                    organisation=organisation if referred else None,
                    referral_id=self._id() if referred else None,
                    category=q.category,
                    theme=q.theme,
                )
            )
        events.append(self._event(catalog.HelpRequestRouted(help_request_id=hr, library=library, decisions=decisions)))
        for d in decisions:
            if d.referral_id is None:
                continue
            agency, facts = d.organisation or "", {"referral_id": d.referral_id, "help_request_id": hr}
            events.append(
                self._event(catalog.ReferredToAgency(**facts, agency=agency, library=library, theme=d.theme or "x"))
            )
            facts |= {"question_index": d.question_index, "agency": agency, "library": library}
            for sequence, status in enumerate(rng.choice((["accepted"], ["accepted", "got_help"], ["no_capacity"])), 1):
                changed = at + timedelta(hours=rng.randrange(1, 72) * sequence)
                events.append(
                    self._event(
                        catalog.ReferralStatusChanged(**facts, status=status, changed_at=changed, sequence=sequence)
                    )
                )
            if rng.random() < 0.1:
                overdue = catalog.ReferralOverdue(**facts, status="sent", due_at=at, detected_at=at)
                events.append(self._event(overdue))
        return events

    def course_run(self) -> list[tuple[str, bytes, bytes, uuid.UUID]]:
        rng, run, library, at = self.rng, self._id(), self.rng.choice(self.LIBRARIES), self._moment()
        course = {"run_id": run, "library": library, "course_type": rng.choice(("klik-en-tik", "digisterker"))}
        capacity = rng.randint(6, 12)
        events = [
            self._event(
                catalog.CourseRunScheduled(
                    **course, location="centrum", postcode="1234 AB", capacity=capacity, first_session_at=at, sessions=4
                )
            )
        ]
        for position in range(1, rng.randint(4, capacity + 3)):
            facts = course | {"enrolment_id": self._id(), "position": position, "at": at}
            if position > capacity:
                events.append(self._event(catalog.ParticipantWaitlisted(**facts)))
                continue
            events.append(self._event(catalog.ParticipantEnrolled(**facts)))
            if rng.random() < 0.7:
                events.append(self._event(catalog.CourseCompleted(**facts, sessions_attended=4)))
        return events

    def library_facts(self) -> list[tuple[str, bytes, bytes, uuid.UUID]]:
        rng, library, at = self.rng, self.rng.choice(self.LIBRARIES), self._moment()
        application = {"application_id": self._id(), "scheme": f"ido-{at.year}", "library": library}
        code = f"loc-{rng.randrange(10_000)}"
        return [
            self._event(
                catalog.IdoLocationRegistered(
                    location_id=f"{library}:{code}",
                    library=library,
                    code=code,
                    name="IDO",
                    postcode="1234 AB",
                    city="X",
                    opening_hours_per_week=12,
                    staff=2,
                    volunteers=3,
                    registered_at=at,
                )
            ),
            self._event(
                catalog.LibraryReadinessChanged(
                    library=library, trained_staff={"klik-en-tik": rng.randint(0, 9), "digisterker": 1}, at=at
                )
            ),
            self._event(
                catalog.SubsidySchemePublished(
                    scheme=application["scheme"],
                    name="IDO",
                    opens=at,
                    closes=at + timedelta(days=90),
                    budget_ceiling_cents=10**9,
                )
            ),
            self._event(
                catalog.SubsidyApplied(
                    **application, requested_cents=500_000, ido_opening_date=date(2025, 1, 1), applied_at=at
                )
            ),
            self._event(
                catalog.SubsidyGranted(**application, granted_cents=400_000, partial=True, reason="r", decided_at=at)
            ),
            self._event(catalog.SubsidyPaid(**application, tranche="advance", amount_cents=200_000, paid_at=at)),
        ]

    def events(self, count: int):
        made = 0
        while made < count:
            roll = self.rng.random()
            batch = self.visit() if roll < 0.9 else self.course_run() if roll < 0.97 else self.library_facts()
            for topic, key, value, event_id in batch[: count - made]:
                self.ids.append(event_id)
                yield topic, key, value
            made += len(batch)


# ---------------------------------------------------------------------------------------------
# The rebuild benchmark


async def fill_topics(bootstrap: str, names: dict[str, str], count: int, partitions: int) -> Synthetic:
    await apply_topics(bootstrap, list(names.values()), partitions)
    producer = producer_client(bootstrap, client_id="ido-bench", acks=1, linger_ms=20, max_batch_size=1024 * 1024)
    await producer.start()
    synthetic = Synthetic()
    try:
        pending = []
        for topic, key, value in synthetic.events(count):
            pending.append(await producer.send(names[topic], value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return synthetic


async def raw_read(bootstrap: str, topics: list[str], sample: int) -> tuple[int, float, list[tuple[str, bytes]]]:
    """Baseline: every record of the topics read from the start by a plain consumer, no decoding.
    Keeps the first `sample` records for the decoding baseline."""
    partitions = await topic_partitions(bootstrap, *topics)
    consumer = consumer_client(bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        started, count, kept = time.perf_counter(), 0, []
        pending = {tp for tp in partitions if ends[tp] > 0}
        while pending:
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=5000)).items():
                count += len(records)
                if len(kept) < sample:
                    kept += [(r.topic, r.value) for r in records[: sample - len(kept)]]
                if records and records[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
        return count, time.perf_counter() - started, kept
    finally:
        await consumer.stop()


def decode_and_fold(records: list[tuple[str, bytes]], subs: dict[str, tuple[str, ...]]) -> float:
    """Baseline: the rebuild's CPU work without a database (decode, fold), seconds, with the
    rebuild's garbage-collection threshold."""
    decode = Decoder(subs)
    thresholds = gc.get_threshold()
    gc.set_threshold(REPLAY_GC_THRESHOLD, *thresholds[1:])
    try:
        started = time.perf_counter()
        for start in range(0, len(records), 5000):
            changes_of(d for topic, value in records[start : start + 5000] if (d := decode(topic, value)))
        return time.perf_counter() - started
    finally:
        gc.set_threshold(*thresholds)


async def rebuild_benchmark(opts: argparse.Namespace) -> None:
    infra = InfraSettings()
    bootstrap, tag = infra.kafka_bootstrap_servers, f"bench{os.getpid()}"
    real = subscriptions()
    names = {t: f"bench.{tag}.{t}" for t in real}
    subs = {names[t]: events for t, events in real.items()}
    name = f"bench_reporting_{tag}"
    admin = await connect(infra.pg_admin_url, infra.pgpassfile)
    db = None
    try:
        print(f"rebuild benchmark: {opts.events:,} events on {len(names)} private topics, database {name}")
        started = time.perf_counter()
        synthetic = await fill_topics(bootstrap, names, opts.events, infra.kafka_topic_partitions)
        print(f"  topics filled in {time.perf_counter() - started:.1f} s")

        await admin.execute(f'CREATE DATABASE "{name}"')
        url = infra.pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
        await asyncio.to_thread(migrations.apply, url, infra.pgpassfile, REPO_ROOT / "services/reporting/migrations")
        db = Database(url, infra.pgpassfile, pool_size=2)
        await db.connect()
        # As on a running system: the live consumer has processed these events already.
        async with db.pool.acquire() as conn:
            await conn.copy_records_to_table(
                "processed_events", records=[(GROUP, i) for i in synthetic.ids], columns=["consumer", "event_id"]
            )

        records, raw_seconds, sample = await raw_read(bootstrap, list(names.values()), opts.decode_sample)
        decode_seconds = decode_and_fold(sample, subs)

        raw_rate, decode_rate = records / raw_seconds, len(sample) / max(decode_seconds, 1e-9)
        print(f"  raw Kafka read (baseline):   {records:,} records in {raw_seconds:.1f} s = {raw_rate:,.0f} records/s")
        print(
            f"  decode + fold, no database:  {len(sample):,} records in {decode_seconds:.1f} s = {decode_rate:,.0f}/s"
        )
        rebuild = Rebuild(
            db, subs, bootstrap, consumer_group=GROUP, retention=timedelta(days=3650), batch_size=opts.batch
        )
        for attempt in range(1, opts.rebuilds + 1):
            # The first rebuild replaces an empty version; later ones a full one, as in production.
            run = await rebuild.begin()
            assert run is not None
            started = time.perf_counter()
            await run.replay()
            await run.go_live()
            await run.replay()
            replayed = time.perf_counter()
            await run.swap()
            swapped = time.perf_counter()
            await run.close()
            status = await rebuild.status()
            marks_left = await db.fetchval("SELECT count(*) FROM applied_events")
            rows = await db.fetchval(
                "SELECT sum(n_live_tup) FROM pg_stat_user_tables "
                "WHERE relname NOT IN ('processed_events', 'applied_events')"
            )
            seconds, swap_seconds = replayed - started, swapped - replayed
            rate = status["processed"] / seconds
            print(
                f"  rebuild {attempt} (replay, go live, replay the rest): {status['processed']:,} records in"
                f" {seconds:.1f} s = {rate:,.0f} events/s ({rate / raw_rate:.2f}x raw read,"
                f" {rate / decode_rate:.2f}x decode+fold)"
            )
            print(
                f"    then swap, drop the {'empty' if attempt == 1 else 'replaced'} version, forget the marks of"
                f" processed events: {swap_seconds:.1f} s ({marks_left:,} marks left); {status['state']},"
                f" active {status['active']}, ~{rows or 0:,} read-model rows"
            )
            projected = TARGET_EVENTS / rate
            whole = projected + swap_seconds * TARGET_EVENTS / max(status["processed"], 1)
            verdict = "meets" if projected <= TARGET_SECONDS else "MISSES"
            print(
                f"    1,000,000 events: replayed in ~{projected:.0f} s (target <= {TARGET_SECONDS} s: {verdict}),"
                f" ~{whole:.0f} s with the swap and the drop"
            )
    finally:
        if db is not None:
            await db.close()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        topic_admin = admin_client(bootstrap, "ido-bench")
        await topic_admin.start()
        try:
            await topic_admin.delete_topics(list(names.values()))
        finally:
            await topic_admin.close()


# ---------------------------------------------------------------------------------------------
# Lag on the running system


def credential(*args: str) -> str:
    return subprocess.run(
        [str(IDO), "keys", "create", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


async def lag(rate: float, count: int) -> None:
    import httpx

    library = {"Authorization": f"Bearer {credential('--library', 'venlo')}"}
    lags = []
    async with (
        httpx.AsyncClient(base_url="http://127.0.0.1:8005", timeout=60) as reporting,
        httpx.AsyncClient(base_url="http://127.0.0.1:8001", timeout=30) as intake,
    ):
        for _ in range(count):
            subtheme = f"bench-{time.time_ns()}"[:60]
            body = {"channel": "walk_in", "questions": [{"category": "other", "theme": "overig", "subtheme": subtheme}]}
            sent = time.monotonic()
            await intake.post("/v1/help-requests", json=body, headers=library)
            while True:
                answer = await reporting.get("/v1/monitor/questions", params={"by": "subtheme"}, headers=library)
                if subtheme in answer.json()["counts"]:
                    lags.append((time.monotonic() - sent) * 1000)
                    break
                if time.monotonic() - sent > 30:
                    print("  a visit did not appear within 30 s")
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - sent)))
    if lags:
        q = statistics.quantiles(lags, n=100) if len(lags) > 1 else lags * 99
        print(
            f"lag POST -> counted in the monitor API over {len(lags)} visits at ~{rate}/s (ms): "
            f"p50 {statistics.median(lags):.0f}  p95 {q[94]:.0f}  max {max(lags):.0f}"
        )


async def main() -> None:
    args = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    args.add_argument("--events", type=int, default=300_000, help="synthetic events to rebuild from (300,000)")
    args.add_argument("--batch", type=int, default=5000, help="records per rebuild batch (5000)")
    args.add_argument("--rebuilds", type=int, default=2, help="rebuilds in a row (2: the second replaces a full one)")
    args.add_argument("--decode-sample", type=int, default=100_000, help="records for the decode baseline")
    args.add_argument("--lag", action="store_true", help="measure the monitor's lag on the running system instead")
    args.add_argument("--rate", type=float, default=2.0, help="visits per second for --lag")
    args.add_argument("--count", type=int, default=20, help="visits for --lag")
    opts = args.parse_args()
    if opts.lag:
        await lag(opts.rate, opts.count)
    else:
        await rebuild_benchmark(opts)


if __name__ == "__main__":
    asyncio.run(main())
