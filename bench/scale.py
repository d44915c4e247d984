"""Scale figures: intake and routing with 1, 2 and 3 instances each, run the way `make up
INSTANCES=N` runs them, in one run. Per instance count: the throughput, its ratio to one
instance, and the peak resident memory of every service process under that load (targets: two
instances >= 1.7x one; every service <= 150 MB resident under load).

- intake: a closed loop of `--concurrency` clients posting help requests for `--duration`
  seconds, spread over the running instances as a load balancer would (intake_throughput.py's
  load); meanwhile the other services consume what it publishes.
- routing: the drain of a backlog of `--events` HelpRequested events (routing_scaling.py).

Everything shares the machine's cores with Kafka, PostgreSQL and the load generator: the ratios
show what another instance brings on this machine, and the CPU lines show who was busy.

    make up
    .venv/bin/python bench/scale.py                      # 1 2 3 instances; ~5 minutes
    .venv/bin/python bench/scale.py --instances 1 2 -d 10
"""

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import routing_scaling
from _common import RUN_DIR, CpuMeter, code_version, library_tokens, wait_until_idle
from _instances import DEFAULT_PORTS, Instances, MemoryPeaks
from intake_throughput import PhaseResult, drive, report

INTAKE = Instances("intake")
TARGET_RATIO = 1.7
MEMORY_TARGET = 150 * 2**20


def service_pids() -> dict[str, int]:
    """Every running instance of every service (their pid files in .local/run)."""
    pids = {}
    for pidfile in sorted(RUN_DIR.glob("*.pid")):
        if pidfile.stem.split("-")[0] in DEFAULT_PORTS:
            try:
                pids[pidfile.stem] = int(pidfile.read_text().strip())
            except (OSError, ValueError):
                continue
    return pids


async def intake_phase(args: argparse.Namespace, tokens: list[str], count: int) -> tuple[PhaseResult, MemoryPeaks]:
    await INTAKE.run_exactly(count)
    await wait_until_idle(max_wait=args.settle)
    memory = MemoryPeaks(service_pids()).start()
    try:
        result = await drive(
            f"intake x{count}",
            [INTAKE.url(k) for k in range(count)],
            tokens,
            concurrency=args.concurrency,
            warmup=args.warmup,
            duration=args.duration,
            requests=None,
            cpu=CpuMeter(),
        )
    finally:
        memory.stop()
    return result, memory


async def scale_intake(args: argparse.Namespace) -> list[tuple[int, float, MemoryPeaks]]:
    original = INTAKE.running()
    if 0 not in original:
        sys.exit("intake is not running; run `make up`")
    tokens = library_tokens(max(4, args.concurrency // 4))
    rows = []
    print(f"intake: {args.concurrency} clients, {args.warmup:g} s warm-up + {args.duration:g} s per instance count")
    try:
        for count in args.instances:
            result, memory = await intake_phase(args, tokens, count)
            report(result)
            print(f"  peak resident memory: {memory.line()}")
            rows.append((count, result.throughput, memory))
    finally:
        await INTAKE.run_exactly(max(original) + 1)
    return rows


def verdicts(service: str, unit: str, rows: list[tuple[int, float, dict[str, int]]]) -> None:
    base = rows[0][1]
    for count, rate, peaks in rows:
        ratio = rate / base if base else float("nan")
        verdict = f" ({'meets' if ratio >= TARGET_RATIO else 'MISSES'} >= {TARGET_RATIO:g}x)" if count == 2 else ""
        mine = {n: b for n, b in peaks.items() if n.split("-")[0] == service}
        heaviest = max(peaks.values(), default=0)
        print(
            f"| {service} | {count} | {rate:.1f} {unit} | {ratio:.2f}x{verdict} "
            f"| {', '.join(f'{n} {b / 2**20:.0f} MB' for n, b in sorted(mine.items()))} "
            f"| {heaviest / 2**20:.0f} MB {'<=' if heaviest <= MEMORY_TARGET else '>'} 150 MB |"
        )


async def main(args: argparse.Namespace) -> None:
    print(f"scale figures: code {code_version()}, {os.cpu_count()} cores shared by everything")
    intake_rows = await scale_intake(args)
    routing_args = argparse.Namespace(
        events=args.events, instances=args.instances, cold=False, timeout=300.0, settle=90.0, bootstrap=args.bootstrap
    )
    routing_rows = await routing_scaling.main(routing_args, memory_of=lambda _: service_pids())
    print("\n| service | instances | throughput | x one instance | peak RSS per instance | heaviest service process |")
    print("|---|---|---|---|---|---|")
    verdicts("intake", "requests/s", [(n, rate, m.peaks) for n, rate, m in intake_rows])
    verdicts("routing", "events/s", routing_rows)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--instances", type=int, nargs="+", default=[1, 2, 3], help="instance counts (default 1 2 3)")
    p.add_argument("-c", "--concurrency", type=int, default=32, help="intake: concurrent clients (default 32)")
    p.add_argument("-w", "--warmup", type=float, default=2.0, help="intake: warm-up seconds (default 2)")
    p.add_argument("-d", "--duration", type=float, default=15.0, help="intake: measured seconds per count (default 15)")
    p.add_argument("-n", "--events", type=int, default=3000, help="routing: events to drain per count (default 3000)")
    p.add_argument("--settle", type=float, default=15.0, help="most seconds to wait for an idle machine")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
