"""Subsidy's own database: schemes, applications (one per library per scheme: the `_id` is
`<scheme>:<library>`, so a second application hits the unique key), and one budget document per
scheme on which grants reserve their amount."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.outbox import OutboxNotifier, PendingEvent, outbox_update, with_outbox

SCHEMES, APPLICATIONS, BUDGETS, LOCKS = "schemes", "applications", "budgets", "budget_locks"
CONDITIONS = "conditions"


_SCHEME_FIELDS = {"outbox": 0, "outbox_pending": 0}


class AlreadyApplied(Exception):
    pass


class BudgetBusy(Exception):
    """Another decision held the scheme's budget for too long; try again."""


class MongoSubsidyRepository:
    def __init__(self, db: AsyncDatabase, outbox: OutboxNotifier) -> None:
        self.schemes, self.applications = db[SCHEMES], db[APPLICATIONS]
        self.budgets, self.locks, self.conditions = db[BUDGETS], db[LOCKS], db[CONDITIONS]
        self.outbox = outbox

    async def put_scheme(self, code: str, scheme: dict[str, Any], events: list[PendingEvent] | None = None) -> None:
        async with self.outbox.lock(SCHEMES, code):
            await self.schemes.update_one({"_id": code}, outbox_update(events or []) | {"$set": scheme}, upsert=True)
        self.outbox.written(SCHEMES, code)
        await self.budgets.update_one(
            {"_id": code}, {"$setOnInsert": {"reserved_cents": 0, "paid_cents": 0, "reservations": {}}}, upsert=True
        )

    async def scheme(self, code: str) -> dict[str, Any] | None:
        return await self.schemes.find_one({"_id": code}, _SCHEME_FIELDS)

    async def all_schemes(self) -> list[dict[str, Any]]:
        return [d async for d in self.schemes.find({}, _SCHEME_FIELDS).sort("_id", 1)]

    async def add_application(self, application: dict[str, Any], events: list[PendingEvent]) -> None:
        try:
            await self.applications.insert_one(with_outbox(application, events))
        except DuplicateKeyError:
            raise AlreadyApplied from None
        self.outbox.written(APPLICATIONS, application["_id"])

    async def application(self, application_id: str) -> dict[str, Any] | None:
        return await self.applications.find_one({"_id": application_id}, {"outbox": 0})

    async def applications_of(self, library: str | None) -> list[dict[str, Any]]:
        query = {"library": library} if library else {}
        return [d async for d in self.applications.find(query, {"outbox": 0}).sort("applied_at", -1)]

    async def update_application(
        self, application_id: str, fields: dict[str, Any], trail: dict[str, Any], events: list[PendingEvent]
    ) -> None:
        update = outbox_update(events) | {"$set": fields}
        update["$push"]["trail"] = trail
        async with self.outbox.lock(APPLICATIONS, application_id):
            await self.applications.update_one({"_id": application_id}, update)
        self.outbox.written(APPLICATIONS, application_id)

    async def budget(self, scheme: str) -> dict[str, Any] | None:
        return await self.budgets.find_one({"_id": scheme})

    async def reserve(self, scheme: str, application_id: str, amount_cents: int, ceiling_cents: int) -> bool:
        """Reserve `amount_cents` of the scheme's budget for the application (or its extension:
        `<id>/extension`); False when it does not fit under the ceiling. Idempotent per key.
        Serialised by a lock document."""
        async with self._budget_lock(scheme):
            budget = await self.budgets.find_one({"_id": scheme}) or {"reserved_cents": 0, "reservations": {}}
            if application_id.replace(".", "_") in budget["reservations"]:
                return True
            if budget["reserved_cents"] + amount_cents > ceiling_cents:
                return False
            await self.budgets.update_one(
                {"_id": scheme},
                {
                    "$set": {
                        f"reservations.{application_id}": amount_cents,
                        "reserved_cents": budget["reserved_cents"] + amount_cents,
                    }
                },
                upsert=True,
            )
            return True

    async def pay(self, application_id: str, payment: dict[str, Any], event: PendingEvent) -> bool:
        """Record a tranche once: a tranche already paid (a re-delivered event) is not paid again."""
        async with self.outbox.lock(APPLICATIONS, application_id):
            doc = await self.applications.find_one({"_id": application_id}, {"payments": 1})
            if doc is None or any(p["tranche"] == payment["tranche"] for p in doc.get("payments", [])):
                return False
            update = outbox_update([event])
            update["$push"]["payments"] = payment
            await self.applications.update_one({"_id": application_id}, update)
        self.outbox.written(APPLICATIONS, application_id)
        return True

    async def condition_met(self, library: str, condition: str, at: datetime) -> bool:
        """Record that the library meets a condition; True the first time."""
        async with self.outbox.lock(CONDITIONS, library):
            doc = await self.conditions.find_one({"_id": library}) or {}
            if condition in doc:
                return False
            await self.conditions.update_one({"_id": library}, {"$set": {condition: at}}, upsert=True)
            return True

    async def conditions_of(self, library: str) -> dict[str, Any]:
        return await self.conditions.find_one({"_id": library}) or {}

    def _budget_lock(self, scheme: str, lease: timedelta = timedelta(seconds=15)) -> "_LockDocument":
        return _LockDocument(self.locks, f"budget:{scheme}", lease)


class _LockDocument:
    """A mutex across processes: inserting the lock document (a unique `_id`) is the one write
    that is atomic under concurrency on FerretDB (which applies concurrent updates of one document
    without isolation) as on MongoDB. A lock left by a crashed holder expires after its lease."""

    def __init__(self, collection, name: str, lease: timedelta, wait: float = 10.0) -> None:
        self.collection, self.name, self.lease, self.wait = collection, name, lease, wait

    async def __aenter__(self) -> None:
        deadline = asyncio.get_running_loop().time() + self.wait
        while True:
            now = datetime.now(UTC)
            try:
                await self.collection.insert_one({"_id": self.name, "expires_at": now + self.lease})
                return
            except DuplicateKeyError:
                held = await self.collection.find_one({"_id": self.name})
                if held and held["expires_at"] < now:
                    await self.collection.delete_one({"_id": self.name})  # its holder is gone
                    continue
            if asyncio.get_running_loop().time() > deadline:
                raise BudgetBusy(self.name)
            await asyncio.sleep(0.005)

    async def __aexit__(self, *exc: object) -> None:
        await self.collection.delete_one({"_id": self.name})
