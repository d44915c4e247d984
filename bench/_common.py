"""Helpers shared by the benchmark scripts: credentials, percentiles, CPU accounting, idle wait,
and the state of the services' PostgreSQL databases.

Benchmarks are not tests: they print figures and never assert. Everything they talk to is on
127.0.0.1 (the services started by `make up`, Kafka and PostgreSQL).
"""

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = REPO_ROOT / ".local" / "run"
IDO = Path(sys.executable).parent / "ido"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The help request every benchmark registers: one question that routing refers to the Belastingdienst.
BODY = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag"}],
    "referral": {"consent": True, "contact_preference": "phone"},
}
BODY_BYTES = json.dumps(BODY, separators=(",", ":")).encode()


def library_token(library: str = "rivierenland") -> str:
    """A credential made the way an operator makes one; the token is the only line on stdout."""
    result = subprocess.run([str(IDO), "keys", "create", "--library", library], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"`ido keys create` failed: {result.stderr.strip()}")
    return result.stdout.strip().splitlines()[-1]


# intake limits each credential (per service instance) to IDO_RATE_LIMIT_PER_SECOND requests/s
# with a burst of IDO_RATE_LIMIT_BURST (shared/http.py RateLimiter; defaults 20/s, 100). Real load
# comes from many desks, each with its own credential, so the benchmarks spread their requests
# over enough credentials that the limiter does not cap what they measure.
RATE_LIMIT_PER_SECOND = float(os.environ.get("IDO_RATE_LIMIT_PER_SECOND", 20.0))
RATE_LIMIT_BURST = float(os.environ.get("IDO_RATE_LIMIT_BURST", 100))


def credentials_needed(requests: float, seconds: float, headroom: float = 1.5) -> int:
    """How many credentials keep `requests` spread over `seconds` under the per-credential limit."""
    per_credential = RATE_LIMIT_BURST + RATE_LIMIT_PER_SECOND * seconds
    return max(1, math.ceil(requests / per_credential * headroom))


def library_tokens(count: int, library: str = "rivierenland", parallel: int = 4) -> list[str]:
    """`count` credentials from `ido keys create` (a couple of seconds each, so a few at a time)."""
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        return list(pool.map(lambda _: library_token(library), range(count)))


def code_version() -> str:
    """The commit the services were (probably) started from, and whether the work tree differs."""
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted sequence (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(p / 100 * len(sorted_values) + 0.4999)))
    return sorted_values[rank - 1]


def summary_ms(values_s: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max (and mean) in milliseconds of durations given in seconds."""
    values = sorted(v * 1000 for v in values_s)
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": values[-1] if values else float("nan"),
        "mean": sum(values) / len(values) if values else float("nan"),
    }


def fmt_ms(s: dict[str, float]) -> str:
    return "  ".join(f"{k} {s[k]:7.2f}" for k in ("p50", "p95", "p99", "max"))


def _proc_stat(pid: int | str) -> tuple[str, list[str]] | None:
    """(command name, the fields after it) of /proc/<pid>/stat, or None if the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def _cpu_seconds(fields: list[str]) -> float:
    # After the ")" the fields start at index 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _proc_cpu_seconds(pid: int) -> float | None:
    stat = _proc_stat(pid)
    return _cpu_seconds(stat[1]) if stat else None


def _machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + parts[4]  # idle + iowait
    total = sum(parts[:8])
    return total - idle, total


def platform_pids() -> dict[str, int]:
    """The processes `make up` started: deploy/local writes their pids to .local/run (intake,
    routing, routing-1 with INSTANCES=2, ..., kafka). PostgreSQL is counted by command name."""
    pids = {}
    for pidfile in sorted(RUN_DIR.glob("*.pid")):
        try:
            pids[pidfile.stem] = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            continue
    return pids


# Processes counted together by command name: PostgreSQL runs a process per connection.
BY_COMMAND = {"postgres": "postgres"}


@dataclass
class CpuSnapshot:
    at: float
    procs: dict[str, dict[int, float]]  # name -> {pid: CPU seconds}
    busy: float
    total: float


class CpuMeter:
    """CPU time used per process (and by the whole machine) between two snapshots, in cores.
    PostgreSQL is the sum over all its processes (the server and one backend per connection)."""

    def __init__(self, extra: dict[str, int] | None = None) -> None:
        self.pids = {**platform_pids(), "bench (load generator)": os.getpid(), **(extra or {})}

    def snapshot(self) -> CpuSnapshot:
        procs: dict[str, dict[int, float]] = {}
        for name, pid in self.pids.items():
            if (cpu := _proc_cpu_seconds(pid)) is not None:
                procs[name] = {pid: cpu}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and (stat := _proc_stat(entry.name)) and stat[0] in BY_COMMAND:
                procs.setdefault(BY_COMMAND[stat[0]], {})[int(entry.name)] = _cpu_seconds(stat[1])
        busy, total = _machine_busy()
        return CpuSnapshot(time.monotonic(), procs, busy, total)

    @staticmethod
    def cores_used(a: CpuSnapshot, b: CpuSnapshot) -> dict[str, float]:
        wall = b.at - a.at
        used = {}
        for name, after in b.procs.items():
            before = a.procs.get(name)
            if before is None:
                continue
            # A process that started in between (a new connection's backend) counts whole;
            # one that ended in between is not seen.
            used[name] = sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items()) / wall
        used["machine (all processes)"] = (b.busy - a.busy) / max(1, b.total - a.total) * (os.cpu_count() or 1)
        return used


def print_cpu(used: dict[str, float], indent: str = "  ") -> None:
    rows = sorted(((v, k) for k, v in used.items() if v >= 0.005 or k.startswith("machine")), reverse=True)
    cores = os.cpu_count() or 1
    print(f"{indent}CPU (cores busy, of {cores}):  " + ",  ".join(f"{k} {v:.2f}" for v, k in rows))


async def wait_until_idle(
    *, threshold_cores: float = 0.3, window: float = 0.5, max_wait: float = 15.0
) -> tuple[float, float]:
    """Wait until the machine is nearly idle (e.g. routing has caught up with an earlier run),
    for at most max_wait seconds. Returns (seconds waited, cores busy in the last window): on a
    shared machine other work (other test runs, an outbox backlog) may never let it go idle."""
    import asyncio

    start = time.monotonic()
    cores = os.cpu_count() or 1
    while True:
        b0, t0 = _machine_busy()
        await asyncio.sleep(window)
        b1, t1 = _machine_busy()
        busy_cores = (b1 - b0) / max(1, t1 - t0) * cores
        waited = time.monotonic() - start
        if busy_cores < threshold_cores or waited >= max_wait:
            return waited, busy_cores


# The services' tables whose size the e2e path depends on, per service database. The outbox
# holds only what the relay has not published yet: its row count is the relay's backlog.
PLATFORM_TABLES = {
    "intake": ("help_requests", "processed_events", "outbox"),
    "routing": ("routing_cases", "referrals", "processed_events", "outbox"),
}
# Above this many rows (as of the last ANALYZE) a table's size is PostgreSQL's estimate, not a count(*).
EXACT_COUNT_BELOW = 200_000


async def table_sizes(conn: Any, tables: Sequence[str]) -> list[str]:
    """'<table> <rows> rows <size>' for each table that exists; '~' marks an estimate."""
    parts = []
    for table in tables:
        row = await conn.fetchrow(
            "SELECT reltuples::bigint AS estimate, pg_total_relation_size(oid) AS bytes FROM pg_class "
            "WHERE oid = to_regclass($1)",
            table,
        )
        if row is None:
            parts.append(f"{table} (no table)")
            continue
        if row["estimate"] >= EXACT_COUNT_BELOW:  # -1: never analysed, so counted
            rows = f"~{row['estimate']:,}"
        else:
            rows = f"{await conn.fetchval(f'SELECT count(*) FROM {table}'):,}"  # a name of ours
        label = "rows pending" if table == "outbox" else "rows"
        parts.append(f"{table} {rows} {label} ({row['bytes'] / 2**20:.1f} MiB)")
    return parts


async def platform_state(urls: dict[str, str] | None = None) -> str:
    """Rows (and on-disk size) of the tables the e2e path writes, and how many outbox rows still
    wait for each relay; read as each service's own role, the way the service reads them.
    `urls`: other databases than the services' (service -> database URL)."""
    from urllib.parse import urlsplit

    from shared.db import connect
    from shared.settings import InfraSettings

    settings = InfraSettings()
    parts = []
    for service, tables in PLATFORM_TABLES.items():
        url = (urls or {}).get(service) or settings.service_database_url(service)
        database = urlsplit(url).path.lstrip("/")
        try:
            conn = await connect(url, settings.pgpassfile)
        except Exception as exc:  # the figures are informative only
            parts.append(f"{database}: unavailable ({type(exc).__name__})")
            continue
        try:
            parts.append(f"{database}: " + ", ".join(await table_sizes(conn, tables)))
        except Exception as exc:
            parts.append(f"{database}: unavailable ({type(exc).__name__}: {exc})")
        finally:
            await conn.close()
    return "; ".join(parts)
