"""Routing on the real database, with two pools as two instances of the service: a help
request is routed in one unit of work and once; reference data is seeded once and edits are
kept; an erasure removes the sealed personal data from the table."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.routing.adapters.repository import (
    Organisations,
    RoutingUnitOfWork,
    Rules,
    default_organisations,
    default_rules,
    seed_reference_data,
)
from services.routing.domain.model import referral_id
from services.routing.entrypoints.consumers import help_request_handlers
from shared.consuming import EventConsumer
from shared.events.catalog import HelpRequested, PersonalDataErased, QuestionFacts
from shared.outbox import EventFactory

pytestmark = pytest.mark.infra

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
GROUP = "ido-routing"
INTAKE = EventFactory(service="intake", oin="00000001003214345000", base_url="http://127.0.0.1:8001")
ROUTING = EventFactory(service="routing", oin="00000001003214345000", base_url="http://127.0.0.1:8002")
HANDOVER = "http://127.0.0.1:8002/v1/referrals/{referral_id}"


class Topics:
    """Stands in for the Kafka admin: records which organisations' topics were ensured."""

    def __init__(self, fail: bool = False) -> None:
        self.ensured: list[str] = []
        self.fail = fail

    async def ensure(self, organisation: str) -> None:
        if self.fail:
            raise ConnectionError("broker away")
        self.ensured.append(organisation)


def help_requested(help_request_id: str, *, municipality: str | None = None, sealed: str | None = "sealed-blob"):
    return HelpRequested(
        help_request_id=help_request_id,
        library="katwijk",
        municipality=municipality,
        channel="walk_in",
        questions=[
            QuestionFacts(index=0, category="digital_government", theme="toeslagen", subtheme="huurtoeslag"),
            QuestionFacts(index=1, category="digital_government", theme="digid", subtheme="inloggen"),
            QuestionFacts(index=2, category="digital_government", theme="verkeer", subtheme="verkeersboete"),
        ],
        referral_consent=True,
        contact_preference="phone",
        registered_at=NOW,
        sealed=sealed,
    )


async def seeded(migrated):
    db = await migrated("routing")
    async with db.unit_of_work() as tx:
        await seed_reference_data(RoutingUnitOfWork(tx))
    return db


def consumer_on(db, topics=None) -> tuple[EventConsumer, dict]:
    """The consumer's unit of work around routing's real handlers, without Kafka."""
    handlers = help_request_handlers(ROUTING, HANDOVER, topics or Topics(), timedelta(hours=120), lambda: NOW)
    return EventConsumer(None, db, group_id=GROUP), handlers  # type: ignore[arg-type]


async def deliver(db, data, event=None, topics=None) -> bool:
    consumer, handlers = consumer_on(db, topics)
    event = event or INTAKE.create(data, correlation_id="corr-1").event
    return await consumer._handle_once(handlers[event.name], event, data)


async def counts(db) -> dict[str, int]:
    return {
        table: await db.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("routing_cases", "referrals", "outbox", "processed_events")
    }


async def outbox(db) -> list[tuple[str, dict]]:
    rows = await db.fetch("SELECT topic, value FROM outbox ORDER BY id")
    return [(r["topic"], json.loads(r["value"])) for r in rows]


async def test_a_help_request_is_routed_in_one_unit_of_work_and_a_redelivery_has_no_effect(migrated):
    db = await seeded(migrated)
    data = help_requested("hr-1")
    event = INTAKE.create(data, correlation_id="corr-1").event
    topics = Topics()
    assert await deliver(db, data, event, topics)

    case = await db.fetchrow("SELECT library, decisions, sealed FROM routing_cases WHERE help_request_id = 'hr-1'")
    assert (case["library"], case["sealed"]) == ("katwijk", "sealed-blob")
    assert [d["outcome"] for d in case["decisions"]] == ["referred", "helped_at_desk", "referred"]
    referrals = await db.fetch(
        "SELECT referral_id, agency, status, version, due_at FROM referrals ORDER BY question_index"
    )
    assert [(r["referral_id"], r["agency"], r["status"], r["version"]) for r in referrals] == [
        (referral_id("hr-1", 0), "belastingdienst", "sent", 1),
        (referral_id("hr-1", 2), "cjib", "sent", 1),
    ]
    assert {r["due_at"] for r in referrals} == {NOW + timedelta(hours=120)}
    assert sorted(topics.ensured) == ["belastingdienst", "cjib"]
    published = await outbox(db)
    assert [(topic, e["type"], e["subject"]) for topic, e in published] == [
        ("ido.routing.v1", "nl.ido.HelpRequestRouted", "hr-1"),
        ("ido.referrals.belastingdienst.v1", "nl.ido.ReferredToAgency", referral_id("hr-1", 0)),
        ("ido.referrals.cjib.v1", "nl.ido.ReferredToAgency", referral_id("hr-1", 2)),
    ]
    assert published[1][1]["dataref"] == HANDOVER.format(referral_id=referral_id("hr-1", 0))
    assert {e["correlationid"] for _, e in published} == {"corr-1"}

    before = await counts(db)
    assert before == {"routing_cases": 1, "referrals": 2, "outbox": 3, "processed_events": 1}
    assert not await deliver(db, data, event), "the same event again: the consumer skips it"
    assert await counts(db) == before


async def test_a_failure_while_routing_stores_nothing_and_the_retry_routes_it(migrated):
    db = await seeded(migrated)
    data = help_requested("hr-2")
    event = INTAKE.create(data, correlation_id="corr-2").event
    with pytest.raises(ConnectionError):
        await deliver(db, data, event, Topics(fail=True))
    assert await counts(db) == {"routing_cases": 0, "referrals": 0, "outbox": 0, "processed_events": 0}
    assert await deliver(db, data, event)
    assert await counts(db) == {"routing_cases": 1, "referrals": 2, "outbox": 3, "processed_events": 1}


async def test_two_instances_routing_one_help_request_at_once_route_it_once(migrated):
    first = await seeded(migrated)
    second = await migrated("routing")
    data = help_requested("hr-3")
    # Intake published it more than once (distinct event ids), and each copy is delivered twice.
    copies = [INTAKE.create(data, correlation_id="corr-3").event for _ in range(4)]
    handled = await asyncio.gather(*(deliver(db, data, e) for e in copies for db in (first, second)))

    assert sorted(handled) == [False] * 4 + [True] * 4, "each event id processed once"
    assert await counts(second) == {"routing_cases": 1, "referrals": 2, "outbox": 3, "processed_events": 4}
    assert [e["type"] for _, e in await outbox(first)] == ["nl.ido.HelpRequestRouted"] + ["nl.ido.ReferredToAgency"] * 2


async def test_personal_data_erased_removes_the_sealed_copy_from_the_table(migrated):
    db = await seeded(migrated)
    await deliver(db, help_requested("hr-4"))
    await deliver(db, help_requested("hr-5"))
    erased = PersonalDataErased(help_request_id="hr-4", library="katwijk", reason="request", erased_at=NOW)
    assert await deliver(db, erased)

    rows = {
        r["help_request_id"]: (r["sealed"], r["erased_at"])
        for r in await db.fetch("SELECT help_request_id, sealed, erased_at FROM routing_cases")
    }
    assert rows == {"hr-4": (None, NOW), "hr-5": ("sealed-blob", None)}
    assert await db.fetchval("SELECT count(*) FROM routing_cases WHERE sealed LIKE '%sealed-blob%'") == 1


async def test_reference_data_is_seeded_once_by_instances_starting_together_and_edits_are_kept(migrated):
    first, second = await migrated("routing"), await migrated("routing")

    async def seed(db):
        async with db.unit_of_work() as tx:
            await seed_reference_data(RoutingUnitOfWork(tx))

    await asyncio.gather(seed(first), seed(second), seed(first))
    assert await first.fetchval("SELECT count(*) FROM organisations") == len(default_organisations())
    assert await first.fetchval("SELECT count(*) FROM routing_rules") == len(default_rules())

    await Organisations(first).put("cjib", {"name": "CJIB (edited)", "kind": "agency", "response_hours": 24})
    await Rules(first).put({"theme": "verkeer", "subtheme": "verkeersboete", "organisation": "rdw"})
    await seed(second)  # a restart
    assert await second.fetchval("SELECT name FROM organisations WHERE code = 'cjib'") == "CJIB (edited)"
    rule = await second.fetchval(
        "SELECT organisation FROM routing_rules WHERE theme = 'verkeer' AND subtheme = 'verkeersboete'"
    )
    assert rule == "rdw"
    assert await second.fetchval("SELECT count(*) FROM routing_rules") == len(default_rules())


async def test_a_local_partner_and_rule_added_as_data_take_effect_at_once_in_every_instance(migrated):
    first = await seeded(migrated)
    second = await migrated("routing")
    partner = {"name": "Welzijn Katwijk", "kind": "partner", "municipality": "katwijk", "response_hours": 72}
    await Organisations(first).put("welzijn-katwijk", partner)
    await Rules(first).put({"theme": "toeslagen", "municipality": "katwijk", "organisation": "welzijn-katwijk"})

    topics = Topics()
    await deliver(second, help_requested("hr-6", municipality="katwijk"), topics=topics)
    referrals = await second.fetch("SELECT agency, sent_at, due_at FROM referrals ORDER BY question_index")
    assert [r["agency"] for r in referrals] == ["welzijn-katwijk", "cjib"]
    assert referrals[0]["due_at"] == NOW + timedelta(hours=72), "the partner's own response time"
    assert "welzijn-katwijk" in topics.ensured

    await deliver(second, help_requested("hr-7", municipality="elders"))
    assert await second.fetchval(
        "SELECT agency FROM referrals WHERE help_request_id = 'hr-7' AND question_index = 0"
    ) == ("belastingdienst"), "elsewhere the national rule"


async def test_a_rule_naming_an_unknown_organisation_is_refused_by_the_database(migrated):
    import asyncpg

    db = await seeded(migrated)
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await Rules(db).put({"theme": "digid", "organisation": "nobody"})
