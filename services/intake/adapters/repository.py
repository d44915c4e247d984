"""Help requests in intake's own MongoDB database."""

from datetime import datetime
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.intake.domain.location import RegisteredLocation
from services.intake.domain.model import HelpRequest, Listing
from shared import reference
from shared.outbox import OutboxNotifier, PendingEvent, outbox_update, with_outbox


class AlreadyExists(Exception):
    pass


class HelpRequestRepository(Protocol):
    async def add(
        self, help_request: HelpRequest, events: list[PendingEvent], *, fingerprint: str, data_key: bytes
    ) -> None: ...
    async def get_any(self, request_id: str) -> HelpRequest | None: ...
    async def data_key(self, request_id: str) -> bytes | None: ...
    async def erase(self, erased: HelpRequest, events: list[PendingEvent]) -> None: ...
    async def with_personal_data_before(self, moment: datetime) -> list[str]: ...
    async def get(self, request_id: str, library: str) -> HelpRequest | None: ...
    async def get_with_fingerprint(self, request_id: str, library: str) -> tuple[HelpRequest | None, str | None]: ...
    async def list(self, library: str, listing: Listing) -> list[HelpRequest]: ...
    async def save_progress(self, help_request: HelpRequest) -> None: ...


COLLECTION = "help_requests"
_PROGRESS = ("status", "decisions", "referrals")


def _to_document(hr: HelpRequest) -> dict[str, Any]:
    doc = hr.model_dump(mode="python")
    doc["_id"] = doc.pop("id")
    return doc


def _from_document(doc: dict[str, Any]) -> HelpRequest:
    return HelpRequest.model_validate({**doc, "id": doc["_id"]})


_FIELDS = {"outbox": 0, "data_key": 0}


class MongoHelpRequestRepository:
    def __init__(self, db: AsyncDatabase, outbox: OutboxNotifier) -> None:
        self.collection = db[COLLECTION]
        self.outbox = outbox

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("library", 1), ("registered_at", -1)])

    async def add(
        self, help_request: HelpRequest, events: list[PendingEvent], *, fingerprint: str, data_key: bytes
    ) -> None:
        doc = with_outbox({**_to_document(help_request), "fingerprint": fingerprint, "data_key": data_key}, events)
        try:
            await self.collection.insert_one(doc)
        except DuplicateKeyError:
            raise AlreadyExists from None
        self.outbox.written(COLLECTION, doc["_id"])

    async def _own(self, request_id: str, library: str) -> dict[str, Any] | None:
        # By _id alone, library checked here: FerretDB answers {_id, library} by scanning the
        # whole collection (it pushes the string equality down instead of the _id).
        doc = await self.collection.find_one({"_id": request_id}, _FIELDS)
        return doc if doc and doc["library"] == library else None

    async def get(self, request_id: str, library: str) -> HelpRequest | None:
        doc = await self._own(request_id, library)
        return _from_document(doc) if doc else None

    async def get_any(self, request_id: str) -> HelpRequest | None:
        doc = await self.collection.find_one({"_id": request_id}, _FIELDS)
        return _from_document(doc) if doc else None

    async def data_key(self, request_id: str) -> bytes | None:
        doc = await self.collection.find_one({"_id": request_id}, {"data_key": 1})
        return bytes(doc["data_key"]) if doc and doc.get("data_key") else None

    async def erase(self, erased: HelpRequest, events: list[PendingEvent]) -> None:
        """One write: contact details and notes gone, the data key destroyed, the fact recorded."""
        doc = _to_document(erased)
        update = outbox_update(events) | {
            "$set": {"request": doc["request"], "personal_data_erased_at": doc["personal_data_erased_at"]},
            "$unset": {"data_key": ""},
        }
        async with self.outbox.lock(COLLECTION, erased.id):
            await self.collection.update_one({"_id": erased.id}, update)
        self.outbox.written(COLLECTION, erased.id)

    async def with_personal_data_before(self, moment: datetime) -> list[str]:
        query = {"registered_at": {"$lt": moment}, "personal_data_erased_at": None}
        return [doc["_id"] async for doc in self.collection.find(query, {"_id": 1}).limit(1000)]

    async def get_with_fingerprint(self, request_id: str, library: str) -> tuple[HelpRequest | None, str | None]:
        doc = await self._own(request_id, library)
        return (_from_document(doc), doc.get("fingerprint")) if doc else (None, None)

    async def list(self, library: str, listing: Listing) -> list[HelpRequest]:
        """Newest first; `listing.after` is the (registered_at, id) of the last item seen."""
        query: dict[str, Any] = {"library": library}
        if listing.status:
            query["status"] = listing.status
        if listing.theme:
            query["request.questions.theme"] = listing.theme
        span = {op: at for op, at in (("$gte", listing.registered_from), ("$lt", listing.registered_to)) if at}
        if span:
            query["registered_at"] = span
        if listing.after:
            at, last_id = listing.after
            query["$or"] = [{"registered_at": {"$lt": at}}, {"registered_at": at, "_id": {"$lt": last_id}}]
        cursor = self.collection.find(query, _FIELDS).sort([("registered_at", -1), ("_id", -1)]).limit(listing.limit)
        return [_from_document(doc) async for doc in cursor]

    async def save_progress(self, help_request: HelpRequest) -> None:
        """Store routing's progress. Applying an event again gives the same state (the domain
        ignores repeated and older changes), so a re-delivered event has no second effect;
        one consumer applies a request's events one at a time."""
        doc = _to_document(help_request)
        async with self.outbox.lock(COLLECTION, help_request.id):
            await self.collection.update_one({"_id": help_request.id}, {"$set": {k: doc[k] for k in _PROGRESS}})


LIBRARIES = "libraries"


class MongoLibraryRepository:
    """The libraries that run an IDO. The pilots are seeded on first start; more are added as data."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.collection = db[LIBRARIES]

    async def seed(self) -> None:
        for code, name in reference.PILOT_LIBRARIES.items():
            doc = {"_id": code, "name": name, "pilot": True}
            await self.collection.update_one({"_id": code}, {"$setOnInsert": doc}, upsert=True)

    async def all(self) -> list[dict[str, Any]]:
        return [{"code": d["_id"], "name": d["name"]} async for d in self.collection.find({}).sort("_id", 1)]


LOCATIONS = "locations"


class MongoLocationRepository:
    """A library's IDO locations; `_id` is `<library>:<code>`."""

    def __init__(self, db: AsyncDatabase, outbox: OutboxNotifier) -> None:
        self.collection = db[LOCATIONS]
        self.outbox = outbox

    async def put(self, registered: RegisteredLocation, events: list[PendingEvent]) -> None:
        doc_id = f"{registered.library}:{registered.code}"
        state = registered.model_dump(mode="json") | {"registered_at": registered.registered_at}
        update = outbox_update(events) | {"$set": state}
        async with self.outbox.lock(LOCATIONS, doc_id):
            await self.collection.update_one({"_id": doc_id}, update, upsert=True)
        self.outbox.written(LOCATIONS, doc_id)

    async def get(self, library: str, code: str) -> RegisteredLocation | None:
        doc = await self.collection.find_one({"_id": f"{library}:{code}"}, {"outbox": 0})
        return RegisteredLocation.model_validate(doc) if doc else None

    async def all(self, library: str) -> list[RegisteredLocation]:
        cursor = self.collection.find({"library": library}, {"outbox": 0}).sort("code", 1)
        return [RegisteredLocation.model_validate(doc) async for doc in cursor]
