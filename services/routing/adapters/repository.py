"""Routing's own database: routing cases (one per help request), referrals (one document each,
carrying their own outbox), routing rules and receiving organisations."""

import time
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.routing.domain.model import RoutingRules
from services.routing.domain.referral import FINAL, Referral, StatusChange
from shared import reference
from shared.events.catalog import HelpRequestRouted
from shared.outbox import OutboxNotifier, PendingEvent, outbox_update, with_outbox

# Rules and response times edited in the database take effect within this many seconds.
REFERENCE_TTL_SECONDS = 60.0
CASES = "routing_cases"
REFERRALS = "referrals"
RULES = "routing_rules"
ORGANISATIONS = "organisations"


class ConcurrentChange(Exception):
    """The referral changed since it was read; the caller reads it again."""


class RoutingRepository(Protocol):
    async def rules(self) -> RoutingRules: ...
    async def response_time(self, organisation: str) -> timedelta: ...
    async def add_referrals(self, referrals: list[Referral]) -> None: ...
    async def add_case(self, routed: HelpRequestRouted, events: list[PendingEvent], sealed: str | None) -> bool: ...
    async def sealed(self, help_request_id: str) -> str | None: ...
    async def forget_sealed(self, help_request_id: str) -> None: ...
    async def referral(self, referral_id: str) -> Referral | None: ...
    async def save_referral(self, referral: Referral, *, expected_version: int, events: list[PendingEvent]) -> None: ...
    async def record_read(self, referral_id: str, read: dict[str, Any], event: PendingEvent) -> None: ...
    async def due_referrals(self, now: datetime, limit: int) -> list[Referral]: ...
    async def all_organisations(self) -> list[dict[str, Any]]: ...
    async def put_organisation(self, code: str, fields: dict[str, Any]) -> None: ...
    async def put_rule(self, rule: dict[str, Any]) -> str: ...


def default_rules() -> list[dict[str, Any]]:
    """The contract's default theme -> organisation table, as rule documents."""
    docs = []
    for theme in reference.THEMES.values():
        docs.append(
            {"_id": f"{theme.code}/", "theme": theme.code, "subtheme": None, "organisation": theme.default_organisation}
        )
        for sub, org in theme.subthemes.items():
            docs.append({"_id": f"{theme.code}/{sub}", "theme": theme.code, "subtheme": sub, "organisation": org})
    return docs


def _referral_document(referral: Referral) -> dict[str, Any]:
    doc = asdict(referral)
    doc["_id"] = doc.pop("referral_id")
    doc["history"] = list(doc["history"])
    return doc


def _referral(doc: dict[str, Any]) -> Referral:
    fields = {k: v for k, v in doc.items() if k in Referral.__dataclass_fields__}
    fields["history"] = tuple(StatusChange(**h) for h in doc.get("history", []))
    return Referral(referral_id=doc["_id"], **fields)


_STATE = ("status", "version", "due_at", "paused_at", "overdue_notified", "history")


class MongoRoutingRepository:
    def __init__(self, db: AsyncDatabase, default_response_time: timedelta, outbox: OutboxNotifier) -> None:
        self.cases = db[CASES]
        self.referrals = db[REFERRALS]
        self.rule_docs = db[RULES]
        self.organisations = db[ORGANISATIONS]
        self.default_response_time = default_response_time
        self._rules: tuple[float, RoutingRules] | None = None
        self._hours: tuple[float, dict[str, int | None]] | None = None
        self.outbox = outbox

    async def prepare(self) -> None:
        await self.referrals.create_index([("agency", 1), ("sent_at", -1)])
        await self.referrals.create_index("due_at")
        # Seed the defaults once; what is edited later in the database is left as it is.
        for code, name in reference.AGENCIES.items():
            org = {"_id": code, "name": name, "kind": "agency"}
            await self.organisations.update_one({"_id": code}, {"$setOnInsert": org}, upsert=True)
        for rule in default_rules():
            await self.rule_docs.update_one({"_id": rule["_id"]}, {"$setOnInsert": rule}, upsert=True)

    async def rules(self) -> RoutingRules:
        # Read at most once a minute: every help request needs them, and they change rarely.
        if self._rules is None or time.monotonic() - self._rules[0] > REFERENCE_TTL_SECONDS:
            docs = [d async for d in self.rule_docs.find({})]
            national = {
                (d["theme"], d.get("subtheme")): d.get("organisation") for d in docs if not d.get("municipality")
            }
            local = {
                (d["municipality"], d["theme"], d.get("subtheme")): d.get("organisation")
                for d in docs
                if d.get("municipality")
            }
            known = frozenset([d["_id"] async for d in self.organisations.find({}, {"_id": 1})])
            self._rules = (time.monotonic(), RoutingRules(national, local, known))
        return self._rules[1]

    async def response_time(self, organisation: str) -> timedelta:
        if self._hours is None or time.monotonic() - self._hours[0] > REFERENCE_TTL_SECONDS:
            docs = [d async for d in self.organisations.find({}, {"response_hours": 1})]
            self._hours = (time.monotonic(), {d["_id"]: d.get("response_hours") for d in docs})
        hours = self._hours[1].get(organisation)
        return timedelta(hours=hours) if hours else self.default_response_time

    async def put_organisation(self, code: str, fields: dict[str, Any]) -> None:
        await self.organisations.update_one({"_id": code}, {"$set": fields}, upsert=True)
        self._rules = self._hours = None  # takes effect at once in this instance

    async def put_rule(self, rule: dict[str, Any]) -> str:
        rule_id = f"{rule.get('municipality') or ''}:{rule['theme']}/{rule.get('subtheme') or ''}".lstrip(":")
        await self.rule_docs.update_one({"_id": rule_id}, {"$set": rule}, upsert=True)
        self._rules = None
        return rule_id

    async def all_organisations(self) -> list[dict[str, Any]]:
        cursor = self.organisations.find({}).sort("_id", 1)
        return [
            {
                "code": d["_id"],
                "name": d["name"],
                "kind": d["kind"],
                "municipality": d.get("municipality"),
                "response_hours": d.get("response_hours"),
            }
            async for d in cursor
        ]

    async def add_referrals(self, referrals: list[Referral]) -> None:
        # $setOnInsert: a replay of the same help request leaves existing referrals untouched.
        for referral in referrals:
            doc = _referral_document(referral)
            await self.referrals.update_one({"_id": doc["_id"]}, {"$setOnInsert": doc}, upsert=True)

    async def add_case(self, routed: HelpRequestRouted, events: list[PendingEvent], sealed: str | None) -> bool:
        """The commit point of routing a help request: the case and all its events in one write.
        `sealed`: the request's personal data as intake sealed it, opened only for a handover."""
        doc = {"_id": routed.help_request_id, **routed.model_dump(mode="python"), "sealed": sealed}
        try:
            await self.cases.insert_one(with_outbox(doc, events))
        except DuplicateKeyError:
            return False  # routed before: a re-delivered HelpRequested has no second effect
        self.outbox.written(CASES, doc["_id"])
        return True

    async def sealed(self, help_request_id: str) -> str | None:
        doc = await self.cases.find_one({"_id": help_request_id}, {"sealed": 1})
        return (doc or {}).get("sealed")

    async def forget_sealed(self, help_request_id: str) -> None:
        async with self.outbox.lock(CASES, help_request_id):
            await self.cases.update_one({"_id": help_request_id}, {"$unset": {"sealed": ""}})

    async def referral(self, referral_id: str) -> Referral | None:
        doc = await self.referrals.find_one({"_id": referral_id}, {"outbox": 0, "reads": 0})
        return _referral(doc) if doc else None

    async def save_referral(self, referral: Referral, *, expected_version: int, events: list[PendingEvent]) -> None:
        doc = _referral_document(referral)
        update = outbox_update(events) | {"$set": {k: doc[k] for k in _STATE}}
        async with self.outbox.lock(REFERRALS, referral.referral_id):
            result = await self.referrals.update_one({"_id": referral.referral_id, "version": expected_version}, update)
        if result.matched_count == 0:
            raise ConcurrentChange(referral.referral_id)
        self.outbox.written(REFERRALS, referral.referral_id)

    async def record_read(self, referral_id: str, read: dict[str, Any], event: PendingEvent) -> None:
        update = outbox_update([event])
        update["$push"]["reads"] = read
        async with self.outbox.lock(REFERRALS, referral_id):
            await self.referrals.update_one({"_id": referral_id}, update)
        self.outbox.written(REFERRALS, referral_id)

    async def due_referrals(self, now: datetime, limit: int = 500) -> list[Referral]:
        query = {"due_at": {"$lte": now}, "overdue_notified": False, "paused_at": None, "status": {"$nin": list(FINAL)}}
        cursor = self.referrals.find(query, {"outbox": 0, "reads": 0}).limit(limit)
        return [_referral(d) async for d in cursor]
