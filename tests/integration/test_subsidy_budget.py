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
