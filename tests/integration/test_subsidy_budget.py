"""Subsidy on the real database: the budget ceiling holds under concurrent grants from two
instances, a grant and its advance commit together, tranches follow the conditions and a
re-delivered event pays nothing twice."""

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import pytest

from services.subsidy import handlers
from services.subsidy.adapters.repository import SubsidyUnitOfWork, SubsidyViews
from services.subsidy.bootstrap import event_handlers
from services.subsidy.domain.model import Apply, Decide, Refused, Renew, Scheme
from shared.auth import Principal
from shared.consuming import EventConsumer
from shared.events.catalog import COURSES, HELP_REQUESTS, CourseRunScheduled, HelpRequested, QuestionFacts
from shared.outbox import EventFactory
from shared.reference import PILOT_LIBRARIES

pytestmark = pytest.mark.infra

NOW = datetime(2019, 9, 1, tzinfo=UTC)
KB = Principal(role="kb", organisation="kb", credential_id="kb-1")
EVENTS = EventFactory(service="subsidy", oin="00000001003214345000", base_url="http://subsidy")


def scheme(**changes) -> Scheme:
    terms = {
        "name": "Test",
        "opens": datetime(2019, 7, 1, tzinfo=UTC),
        "closes": datetime(2019, 10, 11, tzinfo=UTC),
        "rates": {2019: Decimal("0.03")},
        "budget_ceiling_cents": 10**9,
    }
    return Scheme.model_validate(terms | changes)


def apply_cmd(code: str, inhabitants: int = 100_000) -> Apply:
    return Apply(
        scheme=code,
        inhabitants=inhabitants,
        ido_opening_date="2019-11-01",
        planned_course_offers=1,
        contact_person={"name": "X", "email": "x@example.nl"},
    )


async def put_scheme(db, code: str, terms: Scheme) -> None:
    async with db.unit_of_work() as tx:
        await handlers.put_scheme(code, terms, uow=SubsidyUnitOfWork(tx), events=EVENTS)


async def apply(db, cmd: Apply, library: str):
    async with db.unit_of_work() as tx:
        return await handlers.apply(cmd, library=library, uow=SubsidyUnitOfWork(tx), events=EVENTS, now=NOW)


async def decide(db, application_id: str, cmd: Decide):
    async with db.unit_of_work() as tx:
        return await handlers.decide(application_id, cmd, caller=KB, uow=SubsidyUnitOfWork(tx), events=EVENTS, now=NOW)


async def outbox(db, application_id: str | None = None) -> list[str]:
    """The event types waiting in the outbox (for one application), in publishing order."""
    rows = await db.fetch("SELECT key, value FROM outbox ORDER BY id")
    types = [(json.loads(r["value"])["type"].rsplit(".", 1)[-1], r["key"].decode()) for r in rows]
    return [t for t, key in types if application_id is None or key == application_id]


async def test_thirty_concurrent_grants_on_two_instances_against_a_ceiling_that_fits_twenty(migrated):
    one, two = await migrated("subsidy"), await migrated("subsidy")
    # room for 20 grants of 100,000 x 0.03 = 3000 euros
    await put_scheme(one, "test", scheme(budget_ceiling_cents=20 * 300000))
    libraries = [f"{code}-{i}" for i in range(2) for code in PILOT_LIBRARIES][:30]
    assert len(libraries) == 30
    applications = [(await apply(one, apply_cmd("test"), library)).id for library in libraries]

    async def grant(db, application_id: str) -> str:
        try:
            await decide(db, application_id, Decide(decision="grant", reason="voldoet aan de regeling"))
            return "granted"
        except handlers.BudgetExhausted:
            return "exhausted"

    outcomes = await asyncio.gather(*(grant((one, two)[i % 2], a) for i, a in enumerate(applications)))
    assert outcomes.count("granted") == 20 and outcomes.count("exhausted") == 10
    assert await one.fetchval("SELECT reserved_cents FROM schemes WHERE code = 'test'") == 20 * 300000
    statuses = [a.status for a in await SubsidyViews(two).applications_of(None)]
    assert statuses.count("granted") == 20 and statuses.count("applied") == 10
    overview = await SubsidyViews(one).overview("test")
    assert overview["applications"] == {"granted": 20, "applied": 10}
    assert overview["paid_cents"] == 20 * 150000  # each grant paid its 50 % advance with it
    # Every grant committed with its advance; a refused grant left nothing behind.
    events = await outbox(one)
    assert events.count("SubsidyGranted") == 20 and events.count("SubsidyPaid") == 20
    assert await one.fetchval("SELECT count(*) FROM payments") == 20


def visit(library: str):
    data = HelpRequested(
        help_request_id="hr-1",
        library=library,
        channel="walk_in",
        questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
        registered_at=NOW,
    )
    factory = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
    return factory.create(data, correlation_id=None).event


def course_run(library: str):
    data = CourseRunScheduled(
        run_id="r-1",
        library=library,
        course_type="klik-en-tik",
        location="c",
        postcode="5911 AA",
        capacity=8,
        first_session_at=NOW,
        sessions=8,
    )
    factory = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")
    return factory.create(data, correlation_id=None).event


async def deliver(db, topic: str, event) -> None:
    """Through the idempotent consumer, as subscribed in bootstrap (no broker needed to handle)."""
    consumer = EventConsumer(cast(Any, None), db, group_id="ido-subsidy", backoff_seconds=0.01)
    await consumer.process(topic, event.to_bytes(), None, event_handlers(EVENTS)[topic])


async def test_tranches_follow_the_conditions_and_a_redelivered_event_pays_nothing_twice(migrated):
    db = await migrated("subsidy")
    terms = scheme(
        rates={2019: Decimal("0.05")},
        advance_percent=40,
        extension={"year": 2022, "rate": "0.83", "deadline": "2021-12-01T00:00:00+00:00"},
    )
    await put_scheme(db, "tranches", terms)
    cmd = apply_cmd("tranches", inhabitants=40_001)
    application = await apply(db, cmd, "venlo")
    await decide(db, application.id, Decide(decision="grant", reason="voldoet"))
    views = SubsidyViews(db)
    # 40,001 x 0.05 = 2000.05 euros; 40 % advance = 800.02 euros
    assert [(p.tranche, p.amount_cents) for p in (await views.application(application.id)).payments] == [
        ("advance", 80002)
    ]

    registered, scheduled = visit("venlo"), course_run("venlo")
    await deliver(db, HELP_REQUESTS, registered)
    assert len((await views.application(application.id)).payments) == 1, "one condition is not enough"
    for _ in range(2):  # delivered, then delivered again
        await deliver(db, COURSES, scheduled)
        await deliver(db, HELP_REQUESTS, registered)
    # The same facts in new events (another visit, another run) pay nothing more either.
    await deliver(db, HELP_REQUESTS, visit("venlo"))
    await deliver(db, COURSES, course_run("venlo"))
    found = await views.application(application.id)
    assert [(p.tranche, p.amount_cents) for p in found.payments] == [("advance", 80002), ("final", 120003)]
    assert await outbox(db, application.id) == ["SubsidyApplied", "SubsidyGranted", "SubsidyPaid", "SubsidyPaid"]

    async with db.unit_of_work() as tx:
        renewed = await handlers.renew(
            application.id,
            Renew(signed_by="Directeur", signed_on="2021-11-20"),
            library="venlo",
            uow=SubsidyUnitOfWork(tx),
            events=EVENTS,
            now=datetime(2021, 11, 20, tzinfo=UTC),
        )
    assert renewed.renewal.amount_cents == 3320083  # 40,001 x 0.83 = 33,200.83 euros
    stored = await views.application(application.id)
    assert stored == renewed and [t.action for t in stored.trail] == ["applied", "granted", "renewed"]
    overview = await views.overview("tranches")
    assert overview["reserved_cents"] == 200005 + 3320083 and overview["paid_cents"] == 200005 + 3320083

    other = await apply(db, cmd, "hengelo")
    await decide(db, other.id, Decide(decision="grant", reason="voldoet"))
    with pytest.raises(Refused, match="deadline"):
        async with db.unit_of_work() as tx:
            await handlers.renew(
                other.id,
                Renew(signed_by="D", signed_on="2021-12-02"),
                library="hengelo",
                uow=SubsidyUnitOfWork(tx),
                events=EVENTS,
                now=datetime(2021, 12, 2, tzinfo=UTC),
            )
    assert (await views.application(other.id)).renewal is None
