"""Versions of the read models. The active version answers the API; a rebuild fills a fresh
version from the start of every topic while the live consumer writes to both, and the fresh
version replaces the active one only when it is complete. Each version records which events it
has applied (a unique `_id` per event), so the replay and the live writes may overlap."""

import contextlib
from datetime import UTC, datetime
from typing import Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

from services.reporting.adapters.repository import MongoReportingRepository

META = "read_model_versions"


class ReadModelVersions:
    def __init__(self, client: AsyncMongoClient, home: str) -> None:
        self.client, self.meta = client, client[home][META]
        self.active_name = home
        self.active = MongoReportingRepository(client[home])
        self.pending: MongoReportingRepository | None = None
        self.pending_name: str | None = None

    async def load(self) -> None:
        doc = await self.meta.find_one({"_id": "active"})
        if doc:
            self.active_name = doc["database"]
            self.active = MongoReportingRepository(self.client[self.active_name])

    def begin(self) -> str:
        self.pending_name = f"{self.meta.database.name}_v{datetime.now(UTC):%Y%m%d%H%M%S}"
        self.pending = MongoReportingRepository(self.client[self.pending_name])
        return self.pending_name

    async def complete(self) -> None:
        assert self.pending is not None and self.pending_name is not None
        await self.meta.update_one({"_id": "active"}, {"$set": {"database": self.pending_name}}, upsert=True)
        replaced = self.active_name
        self.active, self.active_name = self.pending, self.pending_name
        self.pending = self.pending_name = None
        if replaced != self.meta.database.name:  # the home database keeps the service's own records
            await self.client.drop_database(replaced)

    def abandon(self) -> None:
        self.pending = self.pending_name = None

    def targets(self) -> list[MongoReportingRepository]:
        return [self.active] + ([self.pending] if self.pending is not None else [])

    @staticmethod
    async def first_time(repo: MongoReportingRepository, event_id: str) -> bool:
        """True the first time this version sees the event (a unique insert)."""
        try:
            await repo.applied.insert_one({"_id": event_id})
        except DuplicateKeyError:
            return False
        return True

    @staticmethod
    async def forget(repo: MongoReportingRepository, event_id: str) -> None:
        with contextlib.suppress(Exception):
            await repo.applied.delete_one({"_id": event_id})


class ActiveReadModels:
    """Stands for whichever version is active, so the HTTP routes need not know about versions."""

    def __init__(self, versions: ReadModelVersions) -> None:
        self._versions = versions

    def __getattr__(self, name: str) -> Any:
        return getattr(self._versions.active, name)
