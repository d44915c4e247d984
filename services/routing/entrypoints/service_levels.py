"""The service-level watch: every instance of routing runs it. A round locks due referrals
with FOR UPDATE SKIP LOCKED, so instances scanning at the same time take disjoint sets, and
each overdue referral is marked and its ReferralOverdue emitted in one transaction: once."""

import asyncio
from collections.abc import Callable
from datetime import datetime

from services.routing import handlers
from services.routing.adapters.repository import RoutingUnitOfWork
from shared.db import Database
from shared.logging import get_logger
from shared.outbox import EventFactory

log = get_logger(__name__)

# Referrals per transaction: their rows stay locked (status reports on them wait) until it commits.
BATCH = 100


async def scan_overdue(db: Database, events: EventFactory, now: datetime, *, batch: int = BATCH) -> int:
    """Report every referral overdue at `now` that no other instance is reporting; return how many."""
    total = 0
    while True:
        async with db.unit_of_work() as tx:
            emitted = await handlers.notify_overdue(uow=RoutingUnitOfWork(tx), events=events, now=now, limit=batch)
        total += emitted
        if emitted < batch:
            return total


async def watch(db: Database, events: EventFactory, clock: Callable[[], datetime], every_seconds: float) -> None:
    while True:
        try:
            await scan_overdue(db, events, clock())
        except Exception:
            log.exception("service-level check failed; retrying")
        await asyncio.sleep(every_seconds)
