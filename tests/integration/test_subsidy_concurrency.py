"""Two instances of subsidy on one database (two pools), driving the real handlers and
repositories at the same time: one decision per application, and a final tranche paid exactly
once however the condition events and the grant interleave."""

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

import httpx
import pytest

from services.subsidy.adapters.repository import SubsidyUnitOfWork, SubsidyViews
from services.subsidy.bootstrap import event_handlers
from services.subsidy.domain.model import Apply, Scheme
from services.subsidy.handlers import apply, put_scheme
from shared.consuming import EventConsumer
from shared.events.catalog import COURSES, HELP_REQUESTS, CourseRunScheduled, HelpRequested, QuestionFacts
from shared.outbox import EventFactory
from tests.integration.subsidy_support import EVENTS, KB, subsidy_api

pytestmark = pytest.mark.infra

NOW = datetime(2019, 9, 1, tzinfo=UTC)
SCHEME = Scheme(
    name="Test",
    opens=datetime(2019, 7, 1, tzinfo=UTC),
    closes=datetime(2019, 10, 11, tzinfo=UTC),
    rates={2019: Decimal("0.05")},
    budget_ceiling_cents=10**9,
    advance_percent=40,
)


def instance(db) -> httpx.AsyncClient:
    return subsidy_api(db, NOW)


async def prepare(db, libraries: list[str]) -> list[str]:
    async with db.unit_of_work() as tx:
        await put_scheme("test", SCHEME, uow=SubsidyUnitOfWork(tx), events=EVENTS)
    ids = []
    for library in libraries:
        cmd = Apply(
            scheme="test",
            inhabitants=40_001,  # 2000.05 euros: 800.02 in advance, 1200.03 when the conditions are met
            ido_opening_date="2019-11-01",
            planned_course_offers=1,
            contact_person={"name": "X", "email": "x@example.nl"},
        )
        async with db.unit_of_work() as tx:
            ids.append((await apply(cmd, library=library, uow=SubsidyUnitOfWork(tx), events=EVENTS, now=NOW)).id)
    return ids


async def outbox(db, application_id: str) -> list[str]:
    rows = await db.fetch("SELECT value FROM outbox WHERE key = $1 ORDER BY id", application_id.encode())
    return [json.loads(r["value"])["type"].rsplit(".", 1)[-1] for r in rows]


async def test_six_simultaneous_grants_of_one_application_on_two_instances_give_one_grant(migrated):
    one, two = await migrated("subsidy"), await migrated("subsidy")
    [application_id] = await prepare(one, ["venlo"])
    grant = {"decision": "grant", "reason": "voldoet", "amount_cents": 150000}
    async with instance(one) as a, instance(two) as b:
        answers = await asyncio.gather(
            *(c.post(f"/v1/applications/{application_id}/decision", json=grant, headers=KB) for c in (a, b) * 3)
        )
        assert sorted(r.status_code for r in answers) == [200, 409, 409, 409, 409, 409]
        assert all(r.json()["title"] == "Already decided" for r in answers if r.status_code == 409)
        [won] = [r.json() for r in answers if r.status_code == 200]
        assert won["status"] == "granted" and [t["action"] for t in won["trail"]] == ["applied", "granted"]
        assert [(p["tranche"], p["amount_cents"]) for p in won["payments"]] == [("advance", 60000)]

        # Retried: with another amount refused; with the same amount refused too (the first answer
        # stands; a decision is never taken twice).
        for amount in (120000, 150000):
            again = await b.post(
                f"/v1/applications/{application_id}/decision", json={**grant, "amount_cents": amount}, headers=KB
            )
            assert again.status_code == 409 and again.json()["detail"] == "the application is granted"
        stored = await a.get(f"/v1/applications/{application_id}", headers=KB)
        assert stored.json() == won
        overview = (await b.get("/v1/schemes/test/overview", headers=KB)).json()
    assert overview["reserved_cents"] == 150000 and overview["paid_cents"] == 60000
    assert overview["applications"] == {"granted": 1}
    assert await outbox(one, application_id) == ["SubsidyApplied", "SubsidyGranted", "SubsidyPaid"]


async def test_a_simultaneous_grant_and_reject_on_two_instances_one_wins(migrated):
    one, two = await migrated("subsidy"), await migrated("subsidy")
    libraries = [f"library-{i}" for i in range(10)]
    ids = await prepare(one, libraries)
    grant, reject = {"decision": "grant", "reason": "voldoet"}, {"decision": "reject", "reason": "voldoet niet"}
    async with instance(one) as a, instance(two) as b:
        for application_id in ids:
            granted, rejected = await asyncio.gather(
                a.post(f"/v1/applications/{application_id}/decision", json=grant, headers=KB),
                b.post(f"/v1/applications/{application_id}/decision", json=reject, headers=KB),
            )
            assert sorted([granted.status_code, rejected.status_code]) == [200, 409]
            winner = "granted" if granted.status_code == 200 else "rejected"
            stored = (await a.get(f"/v1/applications/{application_id}", headers=KB)).json()
            assert stored["status"] == winner
            assert [t["action"] for t in stored["trail"]] == ["applied", winner]
            expected = ["SubsidyGranted", "SubsidyPaid"] if winner == "granted" else ["SubsidyRejected"]
            assert await outbox(one, application_id) == ["SubsidyApplied", *expected]
    granted_count = await one.fetchval("SELECT count(*) FROM applications WHERE status = 'granted'")
    assert await one.fetchval("SELECT reserved_cents FROM schemes") == granted_count * 200005


def visit(library: str):
    data = HelpRequested(
        help_request_id=f"hr-{library}",
        library=library,
        channel="walk_in",
        questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
        registered_at=NOW,
    )
    factory = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
    return HELP_REQUESTS, factory.create(data, correlation_id=None).event


def course_run(library: str):
    data = CourseRunScheduled(
        run_id=f"r-{library}",
        library=library,
        course_type="klik-en-tik",
        location="c",
        postcode="5911 AA",
        capacity=8,
        first_session_at=NOW,
        sessions=8,
    )
    factory = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses")
    return COURSES, factory.create(data, correlation_id=None).event


async def deliver(db, topic_and_event) -> None:
    """One instance's idempotent consumer handling the event (as subscribed in bootstrap)."""
    topic, event = topic_and_event
    consumer = EventConsumer(cast(Any, None), db, group_id="ido-subsidy", backoff_seconds=0.01)
    await consumer.process(topic, event.to_bytes(), None, event_handlers(EVENTS)[topic])


async def finals(db) -> dict[str, int]:
    rows = await db.fetch("SELECT application_id, count(*) AS n FROM payments WHERE tranche = 'final' GROUP BY 1")
    return {r["application_id"]: r["n"] for r in rows}


async def test_condition_events_arriving_together_on_two_instances_pay_the_final_tranche_once(migrated):
    one, two = await migrated("subsidy"), await migrated("subsidy")
    libraries = [f"library-{i}" for i in range(12)]
    ids = await prepare(one, libraries)
    grant = {"decision": "grant", "reason": "voldoet"}
    async with instance(one) as a:
        for application_id in ids:
            assert (await a.post(f"/v1/applications/{application_id}/decision", json=grant, headers=KB)).is_success
    # Per library: the visit on one instance, the course run on the other, both at once; and the
    # same course-run event delivered to both instances at once (a rebalance).
    work = []
    for library in libraries:
        registered, scheduled = visit(library), course_run(library)
        work += [deliver(one, registered), deliver(two, scheduled), deliver(one, scheduled)]
    await asyncio.gather(*work)
    assert await finals(one) == {application_id: 1 for application_id in ids}
    for application_id in ids:
        found = await SubsidyViews(two).application(application_id)
        assert [(p.tranche, p.amount_cents) for p in found.payments] == [("advance", 80002), ("final", 120003)]
        assert (await outbox(one, application_id)).count("SubsidyPaid") == 2


async def test_a_grant_while_the_conditions_arrive_on_the_other_instance_pays_the_final_tranche_once(migrated):
    one, two = await migrated("subsidy"), await migrated("subsidy")
    libraries = [f"library-{i}" for i in range(12)]
    ids = await prepare(one, libraries)
    async with instance(one) as a:
        work = []
        for library, application_id in zip(libraries, ids, strict=True):
            work += [
                a.post(
                    f"/v1/applications/{application_id}/decision",
                    json={"decision": "grant", "reason": "voldoet"},
                    headers=KB,
                ),
                deliver(two, visit(library)),
                deliver(two, course_run(library)),
            ]
        results = await asyncio.gather(*work)
    assert all(r.status_code == 200 for r in results if isinstance(r, httpx.Response))
    # Whichever committed first, the final tranche is neither missed nor paid twice.
    assert await finals(one) == {application_id: 1 for application_id in ids}
    overview = await SubsidyViews(two).overview("test")
    assert overview["paid_cents"] == overview["reserved_cents"] == len(ids) * 200005
