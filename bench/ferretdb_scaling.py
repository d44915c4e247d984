"""How the cost of the platform's database operations grows with the collection size on FerretDB.

The outbox relay, the repositories and the idempotent consumer issue a handful of query shapes.
On FerretDB 1.x with the SQLite backend (what `make up` runs) a filter on `_id` alone is pushed
down to SQLite as a json_extract() comparison, but SQLite still scans the whole table; any other
filter (`outbox_pending`, `{_id, library}`, `{_id, outbox: {$size: 0}}`, `{_id, applied_events:
{$ne: ...}}`) is not pushed down at all, so FerretDB reads and decodes every document. This
script times those shapes in a scratch database (dropped afterwards) at a few collection sizes.

    make up
    .venv/bin/python bench/ferretdb_scaling.py                  # sizes 0, 500, 2000
    .venv/bin/python bench/ferretdb_scaling.py --sizes 0 1000 --repeat 10
"""

import argparse
import asyncio
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

from _common import percentile
from intake_throughput import _FAKE_EVENT

from shared.mongo import connect


def document(pending: bool) -> dict:
    request_id = str(uuid.uuid4())
    return {
        "_id": request_id,
        "library": "rivierenland",
        "registered_at": datetime.now(UTC),
        "request": {
            "channel": "walk_in",
            "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag"}],
            "referral": {"consent": True, "contact_preference": "phone"},
        },
        "status": "received",
        "decisions": [],
        "referrals": [],
        "fingerprint": "0" * 64,
        "applied_events": [],
        "outbox": [{"id": request_id, "topic": "ido.help-requests.v1", "value": _FAKE_EVENT}] if pending else [],
        "outbox_pending": pending,
    }


async def timed(op: Callable[[], Awaitable[object]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        await op()
        times.append(time.perf_counter() - t0)
    return percentile(sorted(times), 50) * 1000


async def measure(coll, pid: str, repeat: int) -> dict[str, float]:
    return {
        "insert_one": await timed(lambda: coll.insert_one(document(pending=False)), repeat),
        "find_one {_id}  (pushed down)": await timed(lambda: coll.find_one({"_id": pid}), repeat),
        "find_one {_id, library}  (repository get)": await timed(
            lambda: coll.find_one({"_id": pid, "library": "rivierenland"}), repeat
        ),
        "update_one {_id} $pullAll  (relay)": await timed(
            lambda: coll.update_one({"_id": pid}, {"$pullAll": {"outbox": [{"id": "none"}]}}), repeat
        ),
        "update_one {_id, outbox: {$size: 0}}  (relay)": await timed(
            lambda: coll.update_one({"_id": pid, "outbox": {"$size": 0}}, {"$set": {"x": 1}}), repeat
        ),
        "find {outbox_pending: true}  (relay drain)": await timed(
            lambda: coll.find({"outbox_pending": True}, {"outbox": 1}).to_list(), repeat
        ),
    }


async def main(args: argparse.Namespace) -> None:
    client = connect(args.mongodb_url)
    name = f"bench_scaling_{os.getpid()}"
    coll = client[name]["help_requests"]
    await coll.create_index([("library", 1), ("registered_at", -1)])
    await coll.create_index("outbox_pending")
    print(f"FerretDB at {args.mongodb_url}, scratch database {name}; median ms of {args.repeat} calls per size")
    print(f"  {'operation':48}" + "".join(f"{n:>10} docs" for n in args.sizes))
    rows: dict[str, list[float]] = {}
    size = 0
    try:
        for target in args.sizes:
            while size < target:
                batch = min(500, target - size)
                await coll.insert_many([document(pending=False) for _ in range(batch)])
                size += batch
            probe = document(pending=True)
            await coll.insert_one(probe)
            results = await measure(coll, probe["_id"], args.repeat)
            size += 1 + args.repeat
            for k, v in results.items():
                rows.setdefault(k, []).append(v)
        for k, values in rows.items():
            print(f"  {k:48}" + "".join(f"{v:15.2f}" for v in values))
    finally:
        await client.drop_database(name)
        await client.close()


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mongodb-url", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017"))
    p.add_argument("--sizes", type=int, nargs="+", default=[0, 500, 2000], help="collection sizes (ascending)")
    p.add_argument("--repeat", type=int, default=10, help="calls per operation and size (default 10)")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
