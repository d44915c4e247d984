"""Reporting benchmarks on the running system (`make up`, ideally after `make demo`):

1. Rebuild throughput: events per second when replaying every topic into fresh read models
   (target: 1,000,000 events in <= 60 s, i.e. >= 16,700 events/s).
2. Lag: from a POST at intake to the visit being counted in the monitor API, at a steady rate.

Traffic goes to 127.0.0.1 only; both parts end by themselves."""

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

IDO = Path(sys.executable).parent / "ido"


def credential(*args: str) -> str:
    return subprocess.run(
        [str(IDO), "keys", "create", *args], capture_output=True, text=True, check=True
    ).stdout.strip()


async def rebuild(reporting: httpx.AsyncClient, kb: dict) -> None:
    started = time.monotonic()
    answer = await reporting.post("/v1/admin/rebuild", headers=kb)
    answer.raise_for_status()
    while (status := (await reporting.get("/v1/admin/rebuild", headers=kb)).json())["state"] == "running":
        await asyncio.sleep(0.2)
    seconds = time.monotonic() - started
    rate = status["processed"] / seconds if seconds else 0
    print(f"rebuild: {status['processed']} events in {seconds:.1f} s = {rate:.0f} events/s ({status['state']})")
    print(
        f"  1,000,000 events would take {1_000_000 / max(rate, 1):.0f} s (target <= 60 s: "
        f"{'meets' if rate >= 1_000_000 / 60 else 'MISSES'})"
    )


async def lag(
    intake: httpx.AsyncClient, reporting: httpx.AsyncClient, library: dict, kb: dict, rate: float, count: int
) -> None:
    lags = []
    for _ in range(count):
        subtheme = f"bench-{time.time_ns()}"
        body = {
            "channel": "walk_in",
            "questions": [{"category": "other", "theme": "overig", "subtheme": subtheme[:60]}],
        }
        sent = time.monotonic()
        await intake.post("/v1/help-requests", json=body, headers=library)
        while True:
            counts = (await reporting.get("/v1/monitor/questions", params={"by": "subtheme"}, headers=library)).json()[
                "counts"
            ]
            if subtheme[:60] in counts:
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
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--rate", type=float, default=2.0, help="visits per second for the lag part")
    args.add_argument("--count", type=int, default=20)
    opts = args.parse_args()
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    library = {"Authorization": f"Bearer {credential('--library', 'venlo')}"}
    async with (
        httpx.AsyncClient(base_url="http://127.0.0.1:8005", timeout=60) as reporting,
        httpx.AsyncClient(base_url="http://127.0.0.1:8001", timeout=30) as intake,
    ):
        await rebuild(reporting, kb)
        await lag(intake, reporting, library, kb, opts.rate, opts.count)


if __name__ == "__main__":
    asyncio.run(main())
