"""Does the end-to-end latency hold when the databases are big? The e2e figure (bench/e2e_latency.py,
open loop, POST -> ReferredToAgency received) at a modest rate on the current data, then again
after 1,000,000 help requests were loaded into the running system's databases (target: the
second figure at most 1.2x the first, measured in the same run).

The load is written the fast way, as each service's own role, into the tables the e2e path
touches, in chunks of INSERT ... SELECT FROM generate_series (one transaction per chunk; intake
and routing load in parallel, each on its own connection):
- intake (ido_intake): help_requests, with what intake stores once routing has reported back
  (decisions, the referrals' progress, status); its processed_events (one HelpRequestRouted each);
- routing (ido_routing): routing_cases, referrals, its processed_events (one HelpRequested each).
The rows are spread as the desks' traffic is: the 15 pilot libraries (bigger ones more), the
question mix of deploy/demo.py (DigiD most, then allowances, taxes, ...), one or two questions,
four in ten visitors consenting to a referral, visits on opening hours over --days days (no
Sundays). They are consistent with what the services would have done, so none of their
background work picks them up during the measurement: visits older than 29 days have had their
personal data erased (intake's 30-day retention would otherwise start erasing them, with
events); referrals older than 4 days are closed or already reported overdue, newer ones are due
in the future (routing's service-level watch would otherwise report them); processed-event
records are dated within the last 6 days (the services delete those older than 7 days, a
DELETE of a million rows in the middle of the measurement otherwise). That last point makes
1,000,000 processed records per consumer: more than a real week holds, the harder case.
Then VACUUM (ANALYZE) of the loaded tables (the statistics, and no autovacuum of a million new
rows during the measurement) and a CHECKPOINT (as the administrator, if allowed).

Every loaded row is marked: help request and referral ids start with 'bench-', and the
processed-event ids are UUIDs of version 0 and variant 0, which no service produces (they use
uuid4). `--cleanup` deletes them (and the 'bench-' help requests of bench/routing_scaling.py).

    make up
    .venv/bin/python bench/data_size.py                        # 50/s for 10 s, load 1,000,000, 50/s again
    .venv/bin/python bench/data_size.py --rows 200000 -d 5     # smaller
    .venv/bin/python bench/data_size.py --cleanup              # remove the loaded rows
"""

import argparse
import asyncio
import hashlib
import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import e2e_latency
from _common import platform_state, wait_until_idle

from shared import reference
from shared.db import connect
from shared.settings import InfraSettings

TARGET_RATIO = 1.2
PREFIX = "bench-"
# The question mix of deploy/demo.py (weights per theme); a theme's weight is spread over all
# its subthemes in shared/reference.py.
THEME_WEIGHTS = {
    "digid": 34,
    "toeslagen": 14,
    "belastingen": 10,
    "zorg": 10,
    "verkeer": 8,
    "werk-en-uitkering": 8,
    "studie": 5,
    "wonen": 4,
    "recht": 3,
    "gemeente": 4,
}
# Visits per library, relative: the big city libraries see more.
LIBRARY_WEIGHTS = {
    "rotterdam": 4,
    "biblionet-groningen": 3,
    "midden-brabant": 3,
    "nieuwe-veste-breda": 2,
    "zeeland": 2,
    "kennemerwaard": 2,
    "dbieb-leeuwarden": 2,
    "gooi-en-meer": 2,
}
CLOSED = ("got_help", "could_not_contact", "not_eligible", "no_longer_interested", "referred_elsewhere", "no_capacity")
INTAKE_CLOSED = CLOSED  # intake calls a help request closed when all its referrals are in one of these


def weighted_libraries() -> list[str]:
    return [code for code in reference.PILOT_LIBRARIES for _ in range(LIBRARY_WEIGHTS.get(code, 1))]


def weighted_questions(slots: int = 1000) -> tuple[list[str], list[str | None], list[str | None]]:
    """Parallel arrays (theme, subtheme, receiving organisation) with each question's share of `slots`."""
    themes: list[str] = []
    subthemes: list[str | None] = []
    organisations: list[str | None] = []
    total = sum(THEME_WEIGHTS.values())
    for code, weight in THEME_WEIGHTS.items():
        theme = reference.THEMES[code]
        subs: list[str | None] = list(theme.subthemes) or [None]
        for k in range(round(weight / total * slots)):
            sub = subs[k % len(subs)]
            # As routing's default rules decide: the subtheme's rule, else the theme's default.
            organisation = theme.subthemes[sub] if sub is not None else theme.default_organisation
            themes.append(code)
            subthemes.append(sub)
            organisations.append(organisation)
    return themes, subthemes, organisations


def h(seed: int, of: str = "i") -> str:
    """A deterministic non-negative pseudo-random bigint of `of` (the same in both databases)."""
    return f"(hashint8extended({of}, {seed}) & 9223372036854775807)"


def _sql_array(values: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{v}'" for v in values) + "]"


CHANNELS = ["walk_in"] * 14 + ["phone"] * 3 + ["appointment"] * 2 + ["email"]
HELP_GIVEN = [
    '["informed"]',
    '["coached"]',
    '["helped_at_desk"]',
    '["course_advised"]',
    '["informed", "coached"]',
    '["informed", "helped_at_desk"]',
    '["informed", "course_advised"]',
    '["coached", "helped_at_desk"]',
    '["coached", "course_advised"]',
    '["helped_at_desk", "course_advised"]',
]
OPEN_STATUSES = ["sent", "sent", "accepted", "accepted", "needs_client_action"]
# Referrals older than 4 days: mostly closed; one in twenty still accepted and reported overdue.
OLD_STATUSES = ["got_help"] * 11 + ["could_not_contact", "could_not_contact", "not_eligible", "not_eligible"]
OLD_STATUSES += ["no_longer_interested", "no_longer_interested", "referred_elsewhere", "no_capacity", "accepted"]

# Parameters of every loading statement: $1, $2 the range of visit numbers, $3 the moment the
# load started, $4 the days to spread the visits over, $5 the libraries (weighted), $6-$8 the
# questions (weighted: theme, subtheme, organisation).
VISITS = f"""
visits0 AS (
    SELECT i,
           '{PREFIX}' || md5('hr:' || i) AS id,
           ($5::text[])[1 + {h(1)} % cardinality($5::text[])] AS library,
           d.day + interval '9 hours' + ({h(3)} % 25200000) * interval '1 millisecond' AS registered_at,
           CASE WHEN {h(4)} % 4 = 0 THEN 2 ELSE 1 END AS nq,
           {h(5)} % 100 < 40 AS consent,
           (ARRAY['phone', 'email', 'do_not_contact'])[1 + {h(6)} % 3] AS preference,
           ({_sql_array(CHANNELS)})[1 + {h(7)} % {len(CHANNELS)}] AS channel,
           ({_sql_array(HELP_GIVEN)})[1 + {h(8)} % {len(HELP_GIVEN)}]::jsonb AS help_given,
           (ARRAY[10, 15, 20, 30, 45])[1 + {h(9)} % 5] AS duration
    FROM generate_series($1::bigint, $2::bigint) AS i,
         LATERAL (SELECT date_trunc('day', $3::timestamptz) - (1 + {h(2)} % $4::int) * interval '1 day' AS day0) d0,
         -- libraries are closed on Sundays: such a visit was on the Saturday
         LATERAL (SELECT d0.day0 - CASE WHEN extract(isodow FROM d0.day0) = 7 THEN interval '1 day'
                                        ELSE interval '0' END AS day) d
),
v AS (
    SELECT visits0.*,
           registered_at + interval '40 milliseconds' AS routed_at,
           registered_at < $3::timestamptz - interval '29 days' AS erased,
           CASE WHEN registered_at < $3::timestamptz - interval '29 days'
                THEN least(registered_at + interval '30 days', $3::timestamptz) END AS erased_at
    FROM visits0
)"""

# The questions of visit `v`, each with routing's decision and, when referred, its referral.
QUESTIONS = f"""
SELECT q2.*,
       CASE WHEN q2.status = 'sent' THEN 1 ELSE 2 END AS version,
       CASE WHEN q2.status IN ('sent', 'accepted', 'needs_client_action')
            THEN v.routed_at + interval '5 days' END AS due_at,
       CASE WHEN q2.status = 'needs_client_action' THEN q2.changed_at END AS paused_at,
       (q2.status = 'accepted' AND NOT q2.recent) AS overdue_notified
FROM (
    SELECT q1.*,
           v.routed_at > $3::timestamptz - interval '4 days' AS recent,
           CASE WHEN q1.outcome <> 'referred' THEN NULL
                WHEN v.routed_at > $3::timestamptz - interval '4 days'
                THEN ({_sql_array(OPEN_STATUSES)})[1 + q1.hs % {len(OPEN_STATUSES)}]
                ELSE ({_sql_array(OLD_STATUSES)})[1 + q1.hs % {len(OLD_STATUSES)}] END AS status,
           CASE WHEN v.routed_at > $3::timestamptz - interval '4 days'
                THEN v.routed_at + ($3::timestamptz - v.routed_at) / 3
                ELSE v.routed_at + (1 + q1.hs % 72) * interval '1 hour' END AS changed_at
    FROM (
        SELECT g.q, t.theme, t.subtheme, t.organisation,
               CASE WHEN t.organisation IS NULL
                    THEN CASE WHEN v.help_given ? 'course_advised' THEN 'course_advised' ELSE 'helped_at_desk' END
                    WHEN NOT v.consent THEN 'informed'
                    ELSE 'referred' END AS outcome,
               CASE WHEN t.organisation IS NOT NULL AND v.consent
                    THEN '{PREFIX}' || md5('ref:' || v.i || ':' || g.q) END AS referral_id,
               {h(11, "v.i * 16 + g.q")} % 5 = 0 AS has_note,
               {h(12, "v.i * 16 + g.q")} AS hs
        FROM generate_series(0, v.nq - 1) AS g(q),
             LATERAL (SELECT 1 + {h(10, "v.i * 16 + g.q")} % cardinality($6::text[]) AS k) pick,
             LATERAL (SELECT ($6::text[])[pick.k] AS theme, ($7::text[])[pick.k] AS subtheme,
                             ($8::text[])[pick.k] AS organisation) t
    ) q1
) q2"""

# Per visit: its questions, decisions and referrals as the services store them (jsonb).
AGGREGATES = f"""
SELECT jsonb_agg(jsonb_build_object(
           'category', 'digital_government', 'theme', qs.theme, 'subtheme', qs.subtheme,
           'note', CASE WHEN qs.has_note AND NOT v.erased THEN 'Hulp nodig bij het formulier.' END,
           'target', NULL) ORDER BY qs.q) AS questions,
       jsonb_agg(jsonb_build_object(
           'question_index', qs.q, 'outcome', qs.outcome, 'organisation', qs.organisation,
           'referral_id', qs.referral_id, 'rejected_target', NULL, 'category', 'digital_government',
           'theme', qs.theme) ORDER BY qs.q) AS decisions,
       coalesce(jsonb_agg(jsonb_build_object(
           'referral_id', qs.referral_id, 'organisation', qs.organisation, 'question_index', qs.q,
           'status', qs.status, 'sequence', qs.version, 'overdue', qs.overdue_notified,
           'history', CASE WHEN qs.version > 1 THEN jsonb_build_array(jsonb_build_object(
                          'status', qs.status, 'reason', NULL, 'at', qs.changed_at)) ELSE '[]' END,
           'handover_reads', '[]'::jsonb) ORDER BY qs.q) FILTER (WHERE qs.referral_id IS NOT NULL), '[]') AS referrals,
       array_agg(DISTINCT qs.theme ORDER BY qs.theme) AS themes,
       count(qs.referral_id) AS referred,
       coalesce(bool_and(qs.status IN ({", ".join(f"'{s}'" for s in INTAKE_CLOSED)}))
                FILTER (WHERE qs.referral_id IS NOT NULL), false) AS all_closed,
       bool_or(qs.has_note) AS any_note
FROM ({QUESTIONS}) qs"""

INTAKE_CHUNK = f"""
WITH {VISITS}
INSERT INTO help_requests (id, library, registered_at, status, themes, request, decisions, referrals,
                           fingerprint, data_key, personal_data_erased_at)
SELECT v.id, v.library, v.registered_at,
       CASE WHEN a.referred = 0 THEN 'routed' WHEN a.all_closed THEN 'closed' ELSE 'referred' END,
       a.themes,
       jsonb_build_object(
           'channel', v.channel, 'questions', a.questions, 'help_given', v.help_given,
           'referral', CASE WHEN v.consent THEN jsonb_build_object(
               'consent', true, 'contact_preference', v.preference,
               'contact', CASE WHEN NOT v.erased AND v.preference <> 'do_not_contact' THEN jsonb_build_object(
                   'name', 'B. Bezoeker',
                   'phone', CASE WHEN v.preference = 'phone' THEN '0612345678' END,
                   'email', CASE WHEN v.preference = 'email' THEN 'bezoeker@example.nl' END) END) END,
           'duration_minutes', v.duration, 'location', NULL),
       a.decisions, a.referrals,
       encode(sha256(convert_to('bench:' || v.i, 'UTF8')), 'hex'),
       CASE WHEN NOT v.erased THEN decode(md5('key:' || v.i) || md5('key2:' || v.i), 'hex') END,
       v.erased_at
FROM v, LATERAL ({AGGREGATES}) a"""

ROUTING_CHUNK = f"""
WITH {VISITS},
cases AS (
    INSERT INTO routing_cases (help_request_id, library, decisions, routed_at, sealed, erased_at)
    SELECT v.id, v.library, a.decisions, v.routed_at,
           CASE WHEN NOT v.erased AND ((v.consent AND v.preference <> 'do_not_contact') OR a.any_note)
                THEN 'bench.' || repeat(md5('sealed:' || v.i), 5) END,
           v.erased_at
    FROM v, LATERAL ({AGGREGATES}) a
    RETURNING 1
)
INSERT INTO referrals (referral_id, help_request_id, question_index, agency, library, theme, subtheme,
                       contact_preference, sent_at, status, version, due_at, paused_at, overdue_notified, history)
SELECT qs.referral_id, v.id, qs.q, qs.organisation, v.library, qs.theme, qs.subtheme, v.preference,
       v.routed_at, qs.status, qs.version, qs.due_at, qs.paused_at, qs.overdue_notified,
       CASE WHEN qs.version > 1 THEN jsonb_build_array(jsonb_build_object(
           'status', qs.status, 'reason', NULL, 'at', qs.changed_at, 'by', qs.organisation)) ELSE '[]' END
FROM v, LATERAL ({QUESTIONS}) qs
WHERE qs.referral_id IS NOT NULL"""

# One processed-event record per visit: marked as version-0, variant-0 UUIDs (no service makes
# those), dated within the last 6 days (the services keep 7), $1-$3 as above, $4 the consumer.
PROCESSED_CHUNK = f"""
INSERT INTO processed_events (consumer, event_id, processed_at)
SELECT $4::text,
       overlay(overlay(md5($4::text || ':' || i) PLACING '0' FROM 13 FOR 1) PLACING '0' FROM 17 FOR 1)::uuid,
       $3::timestamptz - ({h(13)} % 518400000) * interval '1 millisecond'
FROM generate_series($1::bigint, $2::bigint) AS i"""
BENCH_EVENT_ID = "substr(event_id::text, 15, 1) = '0' AND substr(event_id::text, 20, 1) = '0'"

# What --cleanup deletes, per service, in this order (referrals before their cases).
CLEANUP = {
    "intake": [
        f"DELETE FROM help_requests WHERE id LIKE '{PREFIX}%'",
        f"DELETE FROM processed_events WHERE consumer = 'ido-intake' AND {BENCH_EVENT_ID}",
    ],
    "routing": [
        f"""DELETE FROM referral_reads WHERE referral_id IN
            (SELECT referral_id FROM referrals WHERE help_request_id LIKE '{PREFIX}%')""",
        f"DELETE FROM referrals WHERE help_request_id LIKE '{PREFIX}%'",
        f"DELETE FROM routing_cases WHERE help_request_id LIKE '{PREFIX}%'",
        f"DELETE FROM processed_events WHERE consumer = 'ido-routing' AND {BENCH_EVENT_ID}",
    ],
}
LOADED_TABLES = {
    "intake": ["help_requests", "processed_events"],
    "routing": ["routing_cases", "referrals", "processed_events"],
}


class Loader:
    """Loads visits [1, rows] into one service's database, chunk by chunk, as its own role."""

    def __init__(self, service: str, url: str, passfile: Path, *, started: datetime, days: int) -> None:
        self.service = service
        self.url = url
        self.passfile = passfile
        self.started = started
        self.days = days
        self.done = 0
        self.rows: dict[str, int] = {}
        self.seconds = 0.0

    def _params(self, lo: int, hi: int) -> list[Any]:
        themes, subthemes, organisations = weighted_questions()
        return [lo, hi, self.started, self.days, weighted_libraries(), themes, subthemes, organisations]

    async def load(self, rows: int, chunk: int, deadline: float, progress: Callable[["Loader"], None]) -> None:
        conn = await connect(self.url, self.passfile)
        started = time.monotonic()
        try:
            await conn.execute("SET synchronous_commit = off")  # a chunk lost in a crash is loaded again
            lo = 1
            while lo <= rows and time.monotonic() < deadline:
                hi = min(lo + chunk - 1, rows)
                async with conn.transaction():
                    for table, count in (await self._chunk(conn, lo, hi)).items():
                        self.rows[table] = self.rows.get(table, 0) + count
                self.done += hi - lo + 1
                self.seconds = time.monotonic() - started
                progress(self)
                lo = hi + 1
        finally:
            await conn.close()

    async def _chunk(self, conn: Any, lo: int, hi: int) -> dict[str, int]:
        params = self._params(lo, hi)
        counts = {}
        if self.service == "intake":
            counts["help_requests"] = _count(await conn.execute(INTAKE_CHUNK, *params))
        else:
            counts["routing_cases"] = hi - lo + 1
            counts["referrals"] = _count(await conn.execute(ROUTING_CHUNK, *params))
        status = await conn.execute(PROCESSED_CHUNK, lo, hi, self.started, f"ido-{self.service}")
        counts["processed_events"] = _count(status)
        return counts


def _count(status: str) -> int:
    return int(status.split()[-1])


def service_urls(args: argparse.Namespace) -> dict[str, str]:
    settings = InfraSettings()
    return {
        "intake": args.intake_database_url or settings.service_database_url("intake"),
        "routing": args.routing_database_url or settings.service_database_url("routing"),
    }


async def already_loaded(urls: dict[str, str], passfile: Path) -> bool:
    conn = await connect(urls["intake"], passfile)
    try:
        return bool(await conn.fetchval("SELECT 1 FROM help_requests WHERE id = $1", f"{PREFIX}{_md5('hr:1')}"))
    finally:
        await conn.close()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


async def load(args: argparse.Namespace, urls: dict[str, str], passfile: Path) -> dict[str, Loader]:
    started = datetime.now(UTC)
    deadline = time.monotonic() + args.load_timeout
    loaders = {
        service: Loader(service, url, passfile, started=started, days=args.days) for service, url in urls.items()
    }
    last_print = [0.0]

    def progress(_: Loader) -> None:
        now = time.monotonic()
        if now - last_print[0] < 5 and not all(lo.done >= args.rows for lo in loaders.values()):
            return
        last_print[0] = now
        parts = [
            f"{lo.service} {lo.done:,}/{args.rows:,} ({lo.done / lo.seconds if lo.seconds else 0:,.0f} visits/s)"
            for lo in loaders.values()
        ]
        print(f"  loading: {',  '.join(parts)}", flush=True)

    print(
        f"- loading {args.rows:,} help requests over the last {args.days} days, chunks of {args.chunk:,} "
        f"(stops starting chunks after {args.load_timeout:g} s)",
        flush=True,
    )
    t0 = time.monotonic()
    await asyncio.gather(
        *(lo.load(args.rows, args.chunk, deadline, progress) for lo in loaders.values()),
    )
    seconds = time.monotonic() - t0
    for lo in loaders.values():
        rows = ", ".join(f"{table} {n:,}" for table, n in lo.rows.items())
        print(f"  {lo.service}: {lo.done:,} visits in {lo.seconds:.1f} s ({rows})")
    visits = min(lo.done for lo in loaders.values())
    print(f"  loaded in {seconds:.1f} s; at that pace 1,000,000 visits take {seconds / max(1, visits) * 1e6:.0f} s")

    t0 = time.monotonic()
    for service, url in urls.items():
        conn = await connect(url, passfile)
        try:
            for table in LOADED_TABLES[service]:
                await conn.execute(f"VACUUM (ANALYZE) {table}")
        finally:
            await conn.close()
    print(f"  VACUUM (ANALYZE) of the loaded tables: {time.monotonic() - t0:.1f} s")
    await checkpoint()
    return loaders


async def checkpoint() -> None:
    """Write the loaded pages out now rather than in a timed checkpoint during the measurement."""
    settings = InfraSettings()
    t0 = time.monotonic()
    try:
        admin = await connect(settings.pg_admin_url, settings.pgpassfile)
        try:
            await admin.execute("CHECKPOINT")
        finally:
            await admin.close()
        print(f"  CHECKPOINT (as the administrator): {time.monotonic() - t0:.1f} s")
    except Exception as exc:
        print(f"  no CHECKPOINT ({type(exc).__name__}: {exc}); a timed one may fall in the measurement")


async def cleanup(urls: dict[str, str], passfile: Path) -> None:
    print("- removing the loaded rows ('bench-' ids, version-0 processed-event ids)")
    for service, statements in CLEANUP.items():
        conn = await connect(urls[service], passfile)
        try:
            for statement in statements:
                t0 = time.monotonic()
                status = await conn.execute(statement)
                table = statement.split("FROM", 1)[1].split()[0]
                database = urlsplit(urls[service]).path.lstrip("/")
                print(f"  {database}.{table}: {_count(status):,} deleted ({time.monotonic() - t0:.1f} s)")
            for table in LOADED_TABLES[service]:
                await conn.execute(f"VACUUM (ANALYZE) {table}")
        finally:
            await conn.close()


def compare(before: e2e_latency.Summary, after: e2e_latency.Summary) -> None:
    print(f"ratio loaded / small data (target <= {TARGET_RATIO:g}x):")
    rows = [
        ("end-to-end p50", before.p50, after.p50),
        ("end-to-end p95", before.p95, after.p95),
        ("end-to-end p99", before.p99, after.p99),
        ("POST p50", before.post["p50"], after.post["p50"]),
        ("POST p99", before.post["p99"], after.post["p99"]),
    ]
    for label, a, b in rows:
        ratio = b / a if math.isfinite(a) and a > 0 else float("nan")
        verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
        print(f"  {label:15} {a:9.2f} ms -> {b:9.2f} ms   {ratio:5.2f}x  ({verdict})")
    lost, dup = before.lost + after.lost, before.duplicate_records + after.duplicate_records
    print(f"  lost {before.lost} / {after.lost}, duplicates {before.duplicate_records} / {after.duplicate_records}")
    if lost or dup:
        print("  (a lost record counts as infinitely late: the percentiles above include them)")


async def measure(args: argparse.Namespace, tokens: list[str], label: str, urls: dict[str, str]) -> e2e_latency.Summary:
    waited, busy = await wait_until_idle(max_wait=args.settle)
    print(f"- e2e at {args.rate:g}/s, {label}; waited {waited:.1f} s for idle ({busy:.2f} cores busy)")
    print(f"  state: {await platform_state(urls)}")
    return e2e_latency.report(await e2e_latency.measure(args, tokens), target_rate=args.rate)


async def main(args: argparse.Namespace) -> None:
    settings = InfraSettings()
    urls = service_urls(args)
    if args.cleanup:
        await cleanup(urls, settings.pgpassfile)
        return
    if await already_loaded(urls, settings.pgpassfile):
        sys.exit("rows of an earlier data_size.py load are there (ids 'bench-...'): run with --cleanup first")
    if args.load_only:
        await load(args, urls, settings.pgpassfile)
        print("loaded; remove with --cleanup")
        return
    await e2e_latency.check_intake(args.url)
    tokens = e2e_latency.make_tokens(args)
    e2e_latency.describe(args, tokens)
    before = await measure(args, tokens, "current (small) data", urls)
    await load(args, urls, settings.pgpassfile)
    after = await measure(args, tokens, f"after loading {args.rows:,} help requests", urls)
    compare(before, after)
    print("the loaded rows stay until `bench/data_size.py --cleanup`")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    e2e_latency.add_options(p, rate=50.0, duration=10.0)
    p.add_argument("--rows", type=int, default=1_000_000, help="help requests to load (default 1,000,000)")
    p.add_argument("--chunk", type=int, default=20_000, help="visits per INSERT ... SELECT (default 20,000)")
    p.add_argument("--days", type=int, default=365, help="spread the visits over this many days (default 365)")
    p.add_argument(
        "--load-timeout", type=float, default=1800.0, help="start no chunk after this many seconds (default 1800)"
    )
    p.add_argument("--settle", type=float, default=30.0, help="max seconds to wait for idle before each measurement")
    p.add_argument("--cleanup", action="store_true", help="delete the loaded rows, then stop")
    p.add_argument("--load-only", action="store_true", help="load (and VACUUM, CHECKPOINT) without measuring")
    p.add_argument("--intake-database-url", help="load into this database instead of intake's (e.g. a scratch copy)")
    p.add_argument("--routing-database-url", help="load into this database instead of routing's")
    return p.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    e2e_latency.run_loop(main(arguments), uvloop_if_installed=not arguments.no_uvloop)
