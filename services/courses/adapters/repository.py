"""Courses' own database. A seat is a document with a unique `_id` (`<run>:<seat number>`), and so
is an arrival number: claiming one is a single insert that either succeeds or hits the unique key,
the one write that stays atomic under concurrency on FerretDB and MongoDB alike. So concurrent
enrolments never overbook, without multi-document transactions."""

from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.courses.domain.model import DEFAULT_COURSE_TYPES, CourseType
from shared.outbox import OutboxNotifier, PendingEvent, outbox_update, with_outbox

TYPES, RUNS, ENROLMENTS, TEACHERS = "course_types", "course_runs", "enrolments", "teachers"
READINESS, ADVICE, LOCATIONS = "readiness", "course_advice", "locations"
SEATS, ARRIVALS = "seats", "arrivals"
_HIDE = {"outbox": 0}


class AlreadyEnrolled(Exception):
    pass


class MongoCoursesRepository:
    def __init__(self, db: AsyncDatabase, outbox: OutboxNotifier) -> None:
        self.types, self.runs = db[TYPES], db[RUNS]
        self.enrolments, self.teachers = db[ENROLMENTS], db[TEACHERS]
        self.seats, self.arrivals = db[SEATS], db[ARRIVALS]
        self.readiness, self.advice, self.locations = db[READINESS], db[ADVICE], db[LOCATIONS]
        self.outbox = outbox

    async def prepare(self) -> None:
        await self.enrolments.create_index([("run_id", 1), ("status", 1), ("position", 1)])
        for course in DEFAULT_COURSE_TYPES:
            doc = {"_id": course.code, **course.model_dump()}
            await self.types.update_one({"_id": course.code}, {"$setOnInsert": doc}, upsert=True)

    async def course_type(self, code: str) -> CourseType | None:
        doc = await self.types.find_one({"_id": code})
        return CourseType.model_validate(doc) if doc else None

    async def put_course_type(self, course: CourseType) -> None:
        await self.types.update_one({"_id": course.code}, {"$set": course.model_dump()}, upsert=True)

    async def course_types(self) -> list[CourseType]:
        return [CourseType.model_validate(d) async for d in self.types.find({}).sort("_id", 1)]

    async def teacher_certified(self, teacher: str, course_type: str) -> bool:
        doc = await self.teachers.find_one({"_id": teacher})
        return bool(doc and course_type in doc.get("certified_for", []))

    async def put_teacher(self, teacher: str, fields: dict[str, Any]) -> None:
        await self.teachers.update_one({"_id": teacher}, {"$set": fields}, upsert=True)

    async def teacher_runs(self, teacher: str) -> list[dict[str, Any]]:
        return [d async for d in self.runs.find({"teacher": teacher, "status": "scheduled"}, _HIDE)]

    async def add_run(self, run: dict[str, Any], events: list[PendingEvent]) -> None:
        await self.runs.insert_one(with_outbox(run, events))
        self.outbox.written(RUNS, run["_id"])

    async def run(self, run_id: str) -> dict[str, Any] | None:
        return await self.runs.find_one({"_id": run_id}, _HIDE)

    async def arrival(self, run_id: str) -> int:
        """The next arrival number of a run, atomically: a unique insert is the one write FerretDB
        keeps atomic under concurrency (concurrent guarded $inc on one document lose updates)."""
        number = await self.arrivals.count_documents({"run_id": run_id}) + 1
        while True:
            try:
                await self.arrivals.insert_one({"_id": f"{run_id}:{number}", "run_id": run_id})
                return number
            except DuplicateKeyError:
                number += 1

    async def claim_seat(self, run_id: str, capacity: int, holder: str, first_choice: int | None = None) -> int | None:
        """Claim one of the run's seats 1..capacity for `holder` by unique insert; None when full."""
        seats = list(range(1, capacity + 1))
        if first_choice in seats:
            seats.remove(first_choice)
            seats.insert(0, first_choice)
        for seat in seats:
            try:
                await self.seats.insert_one({"_id": f"{run_id}:{seat}", "run_id": run_id, "holder": holder})
                return seat
            except DuplicateKeyError:
                continue
        return None

    async def release_seat(self, run_id: str, seat: int) -> None:
        await self.seats.delete_one({"_id": f"{run_id}:{seat}"})

    async def seats_taken(self, run_id: str) -> int:
        return await self.seats.count_documents({"run_id": run_id})

    async def exists(self, enrolment_id: str) -> bool:
        return await self.enrolments.find_one({"_id": enrolment_id}, {"_id": 1}) is not None

    async def add_enrolment(self, enrolment: dict[str, Any], events: list[PendingEvent]) -> None:
        try:
            await self.enrolments.insert_one(with_outbox(enrolment, events))
        except DuplicateKeyError:
            raise AlreadyEnrolled from None
        self.outbox.written(ENROLMENTS, enrolment["_id"])

    async def enrolment(self, enrolment_id: str) -> dict[str, Any] | None:
        return await self.enrolments.find_one({"_id": enrolment_id}, _HIDE)

    async def enrolments_of(self, run_id: str) -> list[dict[str, Any]]:
        cursor = self.enrolments.find({"run_id": run_id}, _HIDE).sort("position", 1)
        return [d async for d in cursor]

    async def move(
        self, enrolment_id: str, *, expected: str, fields: dict[str, Any], events: list[PendingEvent]
    ) -> bool:
        """Change an enrolment's status only if it still has the expected one (one atomic write)."""
        async with self.outbox.lock(ENROLMENTS, enrolment_id):
            result = await self.enrolments.update_one(
                {"_id": enrolment_id, "status": expected}, outbox_update(events) | {"$set": fields}
            )
        if result.modified_count:
            self.outbox.written(ENROLMENTS, enrolment_id)
        return bool(result.modified_count)

    async def first_waiting(self, run_id: str) -> dict[str, Any] | None:
        cursor = self.enrolments.find({"run_id": run_id, "status": "waitlisted"}, _HIDE).sort("position", 1)
        first = await cursor.limit(1).to_list(1)
        return first[0] if first else None

    async def expired_offers(self, now: datetime) -> list[dict[str, Any]]:
        cursor = self.enrolments.find({"status": "offered", "offered_until": {"$lte": now}}, _HIDE)
        return [d async for d in cursor]

    async def update_run(self, run_id: str, fields: dict[str, Any], events: list[PendingEvent]) -> None:
        async with self.outbox.lock(RUNS, run_id):
            await self.runs.update_one({"_id": run_id}, outbox_update(events) | ({"$set": fields} if fields else {}))
        self.outbox.written(RUNS, run_id)

    async def attend(self, enrolment_id: str, session: int) -> list[int]:
        """Add a session to an enrolment's attendance; the sessions attended so far."""
        async with self.outbox.lock(ENROLMENTS, enrolment_id):
            await self.enrolments.update_one({"_id": enrolment_id}, {"$addToSet": {"attended": session}})
            doc = await self.enrolments.find_one({"_id": enrolment_id}, {"attended": 1})
        return sorted((doc or {}).get("attended", []))

    async def staff_trained(self, library: str, training: str, staff_member: str, event_for: Any) -> dict[str, int]:
        """Record a staff member's completed training; returns the library's readiness and stores
        `event_for(readiness)` with it."""
        async with self.outbox.lock(READINESS, library):
            doc = await self.readiness.find_one({"_id": library}) or {"trained": {}}
            trained = {k: set(v) for k, v in doc["trained"].items()}
            trained.setdefault(training, set()).add(staff_member)
            counts = {k: len(v) for k, v in sorted(trained.items())}
            update = outbox_update([event_for(counts)]) | {
                "$set": {"trained": {k: sorted(v) for k, v in trained.items()}}
            }
            await self.readiness.update_one({"_id": library}, update, upsert=True)
        self.outbox.written(READINESS, library)
        return counts

    async def put_advice(self, advice: dict[str, Any]) -> None:
        # $setOnInsert: the same routing event delivered again changes nothing.
        await self.advice.update_one({"_id": advice["_id"]}, {"$setOnInsert": advice}, upsert=True)

    async def advice_for(self, help_request_id: str) -> list[dict[str, Any]]:
        cursor = self.advice.find({"help_request_id": help_request_id}).sort("question_index", 1)
        return [d async for d in cursor]

    async def upcoming_runs(self, library: str, course_types: list[str], now: datetime) -> list[dict[str, Any]]:
        cursor = self.runs.find({"library": library, "status": "scheduled"}, _HIDE)
        runs = [
            r
            async for r in cursor
            if r["course_type"] in course_types and min(s["starts_at"] for s in r["sessions"]) > now
        ]
        return sorted(
            runs, key=lambda r: (course_types.index(r["course_type"]), min(s["starts_at"] for s in r["sessions"]))
        )

    async def put_location(self, location: dict[str, Any]) -> None:
        """An IDO location as intake announced it (IdoLocationRegistered); the newest wins."""
        await self.locations.update_one({"_id": location["_id"]}, {"$set": location}, upsert=True)

    async def location(self, library: str, code: str) -> dict[str, Any] | None:
        return await self.locations.find_one({"_id": f"{library}:{code}"})

    async def runs_with_participants_ended_before(self, moment: datetime) -> list[str]:
        cursor = self.runs.find({"participants_erased_at": None}, {"sessions": 1})
        return [r["_id"] async for r in cursor if max(s["ends_at"] for s in r["sessions"]) < moment]

    async def erase_participants(self, run_id: str, now: datetime) -> int:
        """Remove names and contact details from a run's enrolments; staff ids (the library's own
        pseudonyms) stay for its readiness."""
        erased = 0
        for enrolment in await self.enrolments_of(run_id):
            async with self.outbox.lock(ENROLMENTS, enrolment["_id"]):
                await self.enrolments.update_one(
                    {"_id": enrolment["_id"]},
                    {"$set": {"participant.name": None, "participant.contact": None, "personal_data_erased_at": now}},
                )
            erased += 1
        await self.update_run(run_id, {"participants_erased_at": now}, [])
        return erased
