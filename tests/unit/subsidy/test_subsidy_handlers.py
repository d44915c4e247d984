"""Subsidy's use cases on fakes (no database): what each decides, stores and emits."""

from copy import deepcopy
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.subsidy import handlers
from services.subsidy.domain.model import (
    AlreadyDecided,
    Application,
    Apply,
    Budget,
    BudgetExhausted,
    Decide,
    LibraryConditions,
    Refused,
    Renew,
    Scheme,
)
from shared.auth import Principal
from shared.events.catalog import CourseRunScheduled, HelpRequested, QuestionFacts
from shared.outbox import EventFactory

NOW = datetime(2019, 9, 1, tzinfo=UTC)
KB = Principal(role="kb", organisation="kb", credential_id="kb-1")
EVENTS = EventFactory(service="subsidy", oin="00000001003214345000", base_url="http://subsidy")
SCHEME = Scheme(
    name="Test",
    opens=datetime(2019, 7, 1, tzinfo=UTC),
    closes=datetime(2019, 10, 11, tzinfo=UTC),
    rates={2019: Decimal("0.05")},
    budget_ceiling_cents=10**9,
    advance_percent=40,
    extension={"year": 2022, "rate": "0.83", "deadline": "2021-12-01T00:00:00+00:00"},
)


class FakeSchemes:
    def __init__(self) -> None:
        self.terms: dict[str, Scheme] = {}
        self.reserved: dict[str, int] = {}

    async def get(self, code):
        return self.terms.get(code)

    async def budget_for_update(self, code):
        if code not in self.terms:
            return None
        return Budget(code, self.terms[code].budget_ceiling_cents, self.reserved[code])

    async def save_budget(self, budget):
        self.reserved[budget.scheme] = budget.reserved_cents

    async def put(self, code, scheme):
        self.terms[code] = scheme
        self.reserved.setdefault(code, 0)


class FakeApplications:
    """Stores copies, as a database would: a use case that fails before `save` leaves nothing."""

    def __init__(self) -> None:
        self.rows: dict[str, Application] = {}

    def _stored(self, application):
        return replace(deepcopy(application), events=[])

    async def add(self, application):
        if application.id in self.rows:
            return False
        self.rows[application.id] = self._stored(application)
        return True

    async def library_of(self, application_id):
        found = self.rows.get(application_id)
        return found.library if found else None

    async def get_for_update(self, application_id):
        found = self.rows.get(application_id)
        return deepcopy(found) if found else None

    async def granted_for_update(self, library):
        return [deepcopy(a) for _, a in sorted(self.rows.items()) if a.library == library and a.status == "granted"]

    async def save(self, application):
        self.rows[application.id] = self._stored(application)


class FakeConditions:
    def __init__(self) -> None:
        self.rows: dict[str, LibraryConditions] = {}

    async def met(self, library):
        return set(self.rows[library].met) if library in self.rows else set()

    async def lock(self, library):
        return deepcopy(self.rows.get(library, LibraryConditions(library)))

    async def save(self, conditions):
        self.rows[conditions.library] = deepcopy(conditions)


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.schemes, self.applications, self.conditions = FakeSchemes(), FakeApplications(), FakeConditions()
        self.emitted: list = []

    def emit(self, *events) -> None:
        self.emitted.extend(events)

    def names(self) -> list[str]:
        names = [e.event.name for e in self.emitted]
        self.emitted.clear()
        return names


def apply_cmd(scheme: str = "test", **changes) -> Apply:
    body = {
        "scheme": scheme,
        "inhabitants": 40_001,
        "ido_opening_date": "2019-11-01",
        "planned_course_offers": 2,
        "contact_person": {"name": "X", "email": "x@example.nl"},
    }
    return Apply.model_validate(body | changes)


async def with_application(scheme: Scheme = SCHEME, library: str = "venlo") -> tuple[FakeUnitOfWork, Application]:
    uow = FakeUnitOfWork()
    await handlers.put_scheme("test", scheme, uow=uow, events=EVENTS)
    application = await handlers.apply(apply_cmd(), library=library, uow=uow, events=EVENTS, now=NOW)
    uow.emitted.clear()
    return uow, application


async def grant(uow, application_id, amount=None, reason="voldoet"):
    cmd = Decide(decision="grant", reason=reason, amount_cents=amount)
    return await handlers.decide(application_id, cmd, caller=KB, uow=uow, events=EVENTS, now=NOW)


async def test_a_scheme_is_published_and_an_application_shows_its_calculation():
    uow = FakeUnitOfWork()
    await handlers.put_scheme("test", SCHEME, uow=uow, events=EVENTS)
    assert uow.names() == ["SubsidySchemePublished"]
    application = await handlers.apply(apply_cmd(), library="venlo", uow=uow, events=EVENTS, now=NOW)
    assert application.id == "test:venlo" and application.status == "applied"
    assert application.requested_cents == 200005  # 40,001 x 0.05 = 2000.05 euros
    assert [(t.action, t.by, t.detail) for t in application.trail] == [("applied", "library:venlo", "200005 cents")]
    [applied] = uow.emitted
    assert applied.event.name == "SubsidyApplied" and applied.event.data["requested_cents"] == 200005
    assert applied.event.subject == "test:venlo" and applied.event.correlationid == "test:venlo"


async def test_one_application_per_library_per_scheme_and_only_known_schemes():
    uow, _ = await with_application()
    with pytest.raises(Refused) as again:
        await handlers.apply(apply_cmd(), library="venlo", uow=uow, events=EVENTS, now=NOW)
    assert again.value.field == "scheme" and "already applied" in again.value.reason
    with pytest.raises(Refused) as unknown:
        await handlers.apply(apply_cmd("nope"), library="venlo", uow=uow, events=EVENTS, now=NOW)
    assert unknown.value.field == "scheme"
    assert uow.emitted == []


async def test_a_grant_reserves_the_amount_and_pays_the_advance_in_one_go():
    uow, application = await with_application()
    granted = await grant(uow, application.id)
    assert granted.status == "granted" and granted.granted_cents == 200005
    assert [t.action for t in granted.trail] == ["applied", "granted"]
    assert [(p.tranche, p.amount_cents) for p in granted.payments] == [("advance", 80002)]  # 40 %, half up
    assert uow.schemes.reserved["test"] == 200005
    assert uow.names() == ["SubsidyGranted", "SubsidyPaid"]
    assert uow.applications.rows[application.id] == granted


async def test_a_partial_grant_and_a_grant_above_the_rules_amount():
    uow, application = await with_application()
    with pytest.raises(Refused) as too_much:
        await grant(uow, application.id, amount=200006)
    assert too_much.value.field == "amount_cents"
    granted = await grant(uow, application.id, amount=100000, reason="deels")
    assert granted.granted_cents == 100000
    assert uow.emitted[0].event.data["partial"] is True


async def test_one_decision_per_application():
    uow, application = await with_application()
    await grant(uow, application.id, amount=150000)
    uow.emitted.clear()
    for cmd in (
        Decide(decision="grant", reason="voldoet", amount_cents=150000),  # the same grant again
        Decide(decision="grant", reason="voldoet", amount_cents=120000),  # another amount
        Decide(decision="reject", reason="toch niet"),
    ):
        with pytest.raises(AlreadyDecided, match="granted"):
            await handlers.decide(application.id, cmd, caller=KB, uow=uow, events=EVENTS, now=NOW)
    assert uow.emitted == [] and uow.schemes.reserved["test"] == 150000


async def test_a_rejection_has_its_reason_in_the_trail():
    uow, application = await with_application()
    rejected = await handlers.decide(
        application.id, Decide(decision="reject", reason="geen IDO"), caller=KB, uow=uow, events=EVENTS, now=NOW
    )
    assert rejected.status == "rejected" and rejected.decision_reason == "geen IDO"
    assert [(t.action, t.by, t.detail) for t in rejected.trail][-1] == ("rejected", "kb:kb-1", "geen IDO")
    assert uow.names() == ["SubsidyRejected"] and uow.schemes.reserved["test"] == 0
    with pytest.raises(handlers.NotFound):
        await grant(uow, "test:nobody")


async def test_the_ceiling_is_never_exceeded():
    uow, application = await with_application(SCHEME.model_copy(update={"budget_ceiling_cents": 200004}))
    with pytest.raises(BudgetExhausted):
        await grant(uow, application.id)
    assert uow.applications.rows[application.id].status == "applied" and uow.schemes.reserved["test"] == 0
    assert uow.emitted == []
    await grant(uow, application.id, amount=200004)
    assert uow.schemes.reserved["test"] == 200004
    with pytest.raises(Refused) as lower:  # a scheme change cannot put the ceiling below what is reserved
        await handlers.put_scheme(
            "test", SCHEME.model_copy(update={"budget_ceiling_cents": 200003}), uow=uow, events=EVENTS
        )
    assert lower.value.field == "budget_ceiling_cents"


def visit(library: str = "venlo"):
    data = HelpRequested(
        help_request_id="hr-1",
        library=library,
        channel="walk_in",
        questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
        registered_at=NOW,
    )
    return EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake").create(
        data, correlation_id=None
    ).event, data


def course_run(library: str = "venlo"):
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
    return EventFactory(service="courses", oin="00000001003214345000", base_url="http://courses").create(
        data, correlation_id=None
    ).event, data


async def test_the_final_tranche_is_paid_once_when_both_conditions_are_met():
    uow, application = await with_application()
    await grant(uow, application.id)
    uow.emitted.clear()
    await handlers.on_visit_registered(*visit(), uow=uow, events=EVENTS)
    assert uow.emitted == [], "one condition is not enough"
    for _ in range(2):  # delivered, then the same facts again
        await handlers.on_course_run_scheduled(*course_run(), uow=uow, events=EVENTS)
        await handlers.on_visit_registered(*visit(), uow=uow, events=EVENTS)
    [paid] = uow.emitted
    assert paid.event.name == "SubsidyPaid" and paid.event.data["tranche"] == "final"
    payments = uow.applications.rows[application.id].payments
    assert [(p.tranche, p.amount_cents) for p in payments] == [("advance", 80002), ("final", 120003)]


async def test_a_grant_after_the_conditions_were_met_pays_both_tranches_at_once():
    uow, application = await with_application()
    await handlers.on_visit_registered(*visit(), uow=uow, events=EVENTS)
    await handlers.on_course_run_scheduled(*course_run(), uow=uow, events=EVENTS)
    assert uow.emitted == [], "nothing granted yet"
    granted = await grant(uow, application.id)
    assert [(p.tranche, p.amount_cents) for p in granted.payments] == [("advance", 80002), ("final", 120003)]
    assert uow.names() == ["SubsidyGranted", "SubsidyPaid", "SubsidyPaid"]


async def test_a_renewal_before_the_deadline_reserves_and_pays_the_extension_once():
    uow, application = await with_application()
    renew_cmd = Renew(signed_by="Directeur", signed_on="2021-11-20")
    later = datetime(2021, 11, 20, tzinfo=UTC)
    with pytest.raises(Refused) as not_granted:
        await handlers.renew(application.id, renew_cmd, library="venlo", uow=uow, events=EVENTS, now=later)
    assert not_granted.value.field == "application"
    await grant(uow, application.id)
    uow.emitted.clear()
    with pytest.raises(handlers.NotFound):
        await handlers.renew(application.id, renew_cmd, library="hengelo", uow=uow, events=EVENTS, now=later)
    renewed = await handlers.renew(application.id, renew_cmd, library="venlo", uow=uow, events=EVENTS, now=later)
    assert renewed.renewal.amount_cents == 3320083  # 40,001 x 0.83 = 33,200.83 euros
    assert renewed.trail[-1].action == "renewed" and renewed.payments[-1].tranche == "extension"
    assert uow.names() == ["SubsidyRenewed", "SubsidyPaid"]
    assert uow.schemes.reserved["test"] == 200005 + 3320083
    again = await handlers.renew(application.id, renew_cmd, library="venlo", uow=uow, events=EVENTS, now=later)
    assert again == renewed and uow.emitted == []
    with pytest.raises(Refused, match="deadline was 2021-12-01"):
        await handlers.renew(
            application.id, renew_cmd, library="venlo", uow=uow, events=EVENTS, now=datetime(2021, 12, 2, tzinfo=UTC)
        )


async def test_a_renewal_that_does_not_fit_the_budget_is_refused():
    uow, application = await with_application(SCHEME.model_copy(update={"budget_ceiling_cents": 300000}))
    await grant(uow, application.id)
    uow.emitted.clear()
    with pytest.raises(BudgetExhausted):
        await handlers.renew(
            application.id,
            Renew(signed_by="D", signed_on="2021-11-20"),
            library="venlo",
            uow=uow,
            events=EVENTS,
            now=datetime(2021, 11, 20, tzinfo=UTC),
        )
    assert uow.applications.rows[application.id].renewal is None and uow.emitted == []
