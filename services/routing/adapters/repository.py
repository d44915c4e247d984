"""Routing cases (one per help request, holding its referrals) and routing rules."""

from datetime import UTC, datetime
from typing import Any, Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.routing.domain.model import RoutingRules
from shared import reference
from shared.events.catalog import HelpRequestRouted, ReferredToAgency
from shared.outbox import PendingEvent, with_outbox

CASES = "routing_cases"
RULES = "routing_rules"
ORGANISATIONS = "organisations"


class RoutingRepository(Protocol):
    async def rules(self) -> RoutingRules: ...
    async def add_case(
        self, routed: HelpRequestRouted, referrals: list[ReferredToAgency], events: list[PendingEvent]
    ) -> bool: ...
    async def referral(self, referral_id: str) -> dict[str, Any] | None: ...
    async def all_organisations(self) -> list[dict[str, Any]]: ...


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


class MongoRoutingRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.cases = db[CASES]
        self.rule_docs = db[RULES]
        self.organisations = db[ORGANISATIONS]

    async def prepare(self) -> None:
        await self.cases.create_index("referrals.referral_id")
        # Seed the defaults once; what is edited later in the database is left as it is.
        for code, name in reference.AGENCIES.items():
            org = {"_id": code, "name": name, "kind": "agency"}
            await self.organisations.update_one({"_id": code}, {"$setOnInsert": org}, upsert=True)
        for rule in default_rules():
            await self.rule_docs.update_one({"_id": rule["_id"]}, {"$setOnInsert": rule}, upsert=True)

    async def all_organisations(self) -> list[dict[str, Any]]:
        cursor = self.organisations.find({}).sort("_id", 1)
        return [{"code": d["_id"], "name": d["name"], "kind": d["kind"]} async for d in cursor]

    async def rules(self) -> RoutingRules:
        docs = [d async for d in self.rule_docs.find({})]
        return RoutingRules({(d["theme"], d.get("subtheme")): d.get("organisation") for d in docs})

    async def add_case(
        self, routed: HelpRequestRouted, referrals: list[ReferredToAgency], events: list[PendingEvent]
    ) -> bool:
        now = datetime.now(UTC)
        doc = {
            "_id": routed.help_request_id,
            "library": routed.library,
            "decisions": [d.model_dump() for d in routed.decisions],
            "referrals": [{**r.model_dump(), "status": "sent", "sent_at": now} for r in referrals],
            "routed_at": now,
        }
        try:
            await self.cases.insert_one(with_outbox(doc, events))
        except DuplicateKeyError:
            return False  # routed before: a re-delivered HelpRequested has no second effect
        return True

    async def referral(self, referral_id: str) -> dict[str, Any] | None:
        case = await self.cases.find_one({"referrals.referral_id": referral_id}, {"referrals": 1})
        if not case:
            return None
        return next(r for r in case["referrals"] if r["referral_id"] == referral_id)
