"""Reporting's read models in its own database: question rows (the registration form), counters
keyed by their dimensions, referrals with their latest status, and IDO locations."""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.reporting.domain.projections import Increment

ROWS, COUNTERS, REFERRALS, LOCATIONS = "question_rows", "counters", "referrals", "locations"
RUNS, READINESS, SUBSIDIES, SCHEMES = "course_runs", "readiness", "subsidies", "schemes"


class MongoReportingRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.rows, self.counters = db[ROWS], db[COUNTERS]
        self.referrals, self.locations = db[REFERRALS], db[LOCATIONS]
        self.runs, self.readiness, self.subsidies = db[RUNS], db[READINESS], db[SUBSIDIES]
        self.schemes = db[SCHEMES]
        self.applied = db["applied_events"]  # which events this version of the read models holds

    async def put_rows(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:  # $set by _id: writing a row again changes nothing
            await self.rows.update_one({"_id": row["_id"]}, {"$set": row}, upsert=True)

    async def set_row_fields(self, row_id: str, fields: dict[str, Any]) -> None:
        await self.rows.update_one({"_id": row_id}, {"$set": fields})

    async def add(self, increments: list[Increment]) -> None:
        # One consumer applies events one at a time, so these $inc upserts never race (FerretDB
        # loses concurrent updates of one document); the processed-events record makes them once.
        for inc in increments:
            await self.counters.update_one(
                {"_id": inc.key},
                {"$inc": {"count": inc.amount}, "$setOnInsert": {"measure": inc.measure, **dict(inc.dimensions)}},
                upsert=True,
            )

    async def counts(self, measure: str, **equal: str) -> list[dict[str, Any]]:
        return [d async for d in self.counters.find({"measure": measure, **equal})]

    async def rows_between(self, start: str | None, end: str | None, library: str | None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if library:
            query["library"] = library
        span = {op: v for op, v in (("$gte", start), ("$lte", end)) if v}
        if span:
            query["date"] = span
        return [d async for d in self.rows.find(query).sort([("date", 1), ("_id", 1)])]

    async def put_referral(self, referral_id: str, fields: dict[str, Any]) -> None:
        await self.referrals.update_one({"_id": referral_id}, {"$set": fields}, upsert=True)

    async def referrals_of(self, agency: str | None) -> list[dict[str, Any]]:
        return [d async for d in self.referrals.find({"agency": agency} if agency else {})]

    async def put_location(self, location_id: str, library: str, registered_at: datetime) -> None:
        await self.locations.update_one(
            {"_id": location_id}, {"$setOnInsert": {"library": library, "opened_at": registered_at}}, upsert=True
        )

    async def all_locations(self) -> list[dict[str, Any]]:
        return [d async for d in self.locations.find({})]

    async def put_run(self, run_id: str, fields: dict[str, Any]) -> None:
        await self.runs.update_one({"_id": run_id}, {"$set": fields}, upsert=True)

    async def all_runs(self) -> list[dict[str, Any]]:
        return [d async for d in self.runs.find({})]

    async def put_readiness(self, library: str, trained: dict[str, int]) -> None:
        await self.readiness.update_one({"_id": library}, {"$set": {"trained": trained}}, upsert=True)

    async def all_readiness(self) -> list[dict[str, Any]]:
        return [d async for d in self.readiness.find({})]

    async def put_subsidy(self, application_id: str, fields: dict[str, Any]) -> None:
        await self.subsidies.update_one({"_id": application_id}, {"$set": fields}, upsert=True)

    async def all_subsidies(self) -> list[dict[str, Any]]:
        return [d async for d in self.subsidies.find({})]

    async def put_scheme(self, scheme: str, fields: dict[str, Any]) -> None:
        await self.schemes.update_one({"_id": scheme}, {"$set": fields}, upsert=True)

    async def all_schemes(self) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self.schemes.find({})}
