"""The budget ceiling holds under concurrent grants, on the real database."""

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.subsidy import handlers
from services.subsidy.adapters.repository import MongoSubsidyRepository
from services.subsidy.domain.model import Apply, Decide, Scheme
from shared.auth import Principal
from shared.outbox import EventFactory, OutboxRelay
from shared.reference import PILOT_LIBRARIES

pytestmark = pytest.mark.infra

NOW = datetime(2019, 9, 1, tzinfo=UTC)
KB = Principal(role="kb", organisation="kb", credential_id="kb-1")


async def test_thirty_concurrent_grants_against_a_ceiling_that_fits_twenty(db):
    repo = MongoSubsidyRepository(db, OutboxRelay([], publish=None))
    events = EventFactory(service="subsidy", oin="00000001003214345000", base_url="http://subsidy")
    scheme = Scheme(
        name="Test",
        opens=datetime(2019, 7, 1, tzinfo=UTC),
        closes=datetime(2019, 10, 11, tzinfo=UTC),
        rates={2019: Decimal("0.03")},
        budget_ceiling_cents=20 * 300000,  # room for 20 grants of 100,000 x 0.03 = 3000 euros
    )
    await repo.put_scheme("test", scheme.model_dump(mode="json"))
    libraries = [f"{code}-{i}" for i in range(2) for code in PILOT_LIBRARIES][:30]
    applications = []
    for library in libraries:
        cmd = Apply(
            scheme="test",
            inhabitants=100_000,
            ido_opening_date="2019-11-01",
            planned_course_offers=1,
            contact_person={"name": "X", "email": "x@example.nl"},
        )
        applications.append((await handlers.apply(cmd, library=library, repo=repo, events=events, now=NOW))["_id"])

    async def grant(application_id: str) -> str:
        try:
            await handlers.decide(
                application_id,
                Decide(decision="grant", reason="voldoet aan de regeling"),
                caller=KB,
                repo=repo,
                events=events,
                now=NOW,
            )
            return "granted"
        except handlers.BudgetExhausted:
            return "exhausted"

    outcomes = await asyncio.gather(*(grant(a) for a in applications))
    assert outcomes.count("granted") == 20 and outcomes.count("exhausted") == 10
    budget = await repo.budget("test")
    assert budget["reserved_cents"] == 20 * 300000 and len(budget["reservations"]) == 20
    statuses = [(await repo.application(a))["status"] for a in applications]
    assert statuses.count("granted") == 20 and statuses.count("applied") == 10


async def test_tranches_follow_the_conditions_and_a_redelivered_event_pays_nothing_twice(db):
    from services.subsidy.domain.model import Renew
    from shared.events.catalog import CourseRunScheduled, HelpRequested, QuestionFacts

    repo = MongoSubsidyRepository(db, OutboxRelay([], publish=None))
    events = EventFactory(service="subsidy", oin="00000001003214345000", base_url="http://subsidy")
    scheme = Scheme(
        name="Test",
        opens=datetime(2019, 7, 1, tzinfo=UTC),
        closes=datetime(2019, 10, 11, tzinfo=UTC),
        rates={2019: Decimal("0.05")},
        budget_ceiling_cents=10**9,
        advance_percent=40,
        extension={"year": 2022, "rate": "0.83", "deadline": "2021-12-01T00:00:00+00:00"},
    )
    await repo.put_scheme("tranches", scheme.model_dump(mode="json"))
    cmd = Apply(
        scheme="tranches",
        inhabitants=40_001,
        ido_opening_date="2019-11-01",
        planned_course_offers=2,
        contact_person={"name": "X", "email": "x@example.nl"},
    )
    application = await handlers.apply(cmd, library="venlo", repo=repo, events=events, now=NOW)
    await handlers.decide(
        application["_id"], Decide(decision="grant", reason="voldoet"), caller=KB, repo=repo, events=events, now=NOW
    )
    # 40,001 x 0.05 = 2000.05 euros; 40 % advance = 800.02 euros
    assert [(p["tranche"], p["amount_cents"]) for p in (await repo.application(application["_id"]))["payments"]] == [
        ("advance", 80002)
    ]

    intake = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
    visit = intake.create(
        HelpRequested(
            help_request_id="hr-1",
            library="venlo",
            channel="walk_in",
            questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
            registered_at=NOW,
        ),
        correlation_id=None,
    )
    course = EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses").create(
        CourseRunScheduled(
            run_id="r-1",
            library="venlo",
            course_type="klik-en-tik",
            location="c",
            postcode="5911 AA",
            capacity=8,
            first_session_at=NOW,
            sessions=8,
        ),
        correlation_id=None,
    )
    await handlers.on_visit_registered(
        visit.event, HelpRequested.model_validate(visit.event.data), repo=repo, events=events
    )
    assert len((await repo.application(application["_id"]))["payments"]) == 1, "one condition is not enough"
    for _ in range(2):  # delivered, then delivered again
        await handlers.on_course_run_scheduled(
            course.event, CourseRunScheduled.model_validate(course.event.data), repo=repo, events=events
        )
        await handlers.on_visit_registered(
            visit.event, HelpRequested.model_validate(visit.event.data), repo=repo, events=events
        )
    payments = (await repo.application(application["_id"]))["payments"]
    assert [(p["tranche"], p["amount_cents"]) for p in payments] == [("advance", 80002), ("final", 120003)]

    renewed = await handlers.renew(
        application["_id"],
        Renew(signed_by="Directeur", signed_on="2021-11-20"),
        library="venlo",
        repo=repo,
        events=events,
        now=datetime(2021, 11, 20, tzinfo=UTC),
    )
    assert renewed["renewal"]["amount_cents"] == 3320083  # 40,001 x 0.83 = 33,200.83 euros
    with pytest.raises(Exception, match="deadline"):
        other = await handlers.apply(cmd.model_copy(update={}), library="hengelo", repo=repo, events=events, now=NOW)
        await handlers.decide(
            other["_id"], Decide(decision="grant", reason="voldoet"), caller=KB, repo=repo, events=events, now=NOW
        )
        await handlers.renew(
            other["_id"],
            Renew(signed_by="D", signed_on="2021-12-02"),
            library="hengelo",
            repo=repo,
            events=events,
            now=datetime(2021, 12, 2, tzinfo=UTC),
        )
