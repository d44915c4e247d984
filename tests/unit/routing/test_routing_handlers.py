"""Routing's handlers against a fake unit of work (in-memory repositories, a list of emitted
events): no database."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.routing import handlers
from services.routing.adapters.repository import default_rules
from services.routing.domain.model import RoutingRules, referral_id
from services.routing.domain.referral import InvalidTransition, Referral
from shared.auth import Principal
from shared.events.catalog import HelpRequested, HelpRequestRouted, PersonalDataErased, QuestionFacts
from shared.outbox import EventFactory, PendingEvent

OIN = "00000001003214345000"
HANDOVER = "http://routing/v1/referrals/{referral_id}"
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DEFAULT_RESPONSE_TIME = timedelta(days=5)
EVENTS = EventFactory(service="routing", oin=OIN, base_url="http://routing")


class FakeRules:
    def __init__(self, organisations: frozenset[str] = frozenset({"uwv", "cjib"})) -> None:
        self.national = {(d["theme"], d["subtheme"]): d["organisation"] for d in default_rules()}
        self.organisations = organisations

    async def matching(self, themes, municipality, targets) -> RoutingRules:
        return RoutingRules(self.national, {}, frozenset(targets) & self.organisations)


class FakeOrganisations:
    def __init__(self, hours: dict[str, int | None] | None = None) -> None:
        self.hours = hours or {}

    async def response_hours(self, codes) -> dict[str, int | None]:
        return {c: self.hours.get(c) for c in codes}


class FakeCases:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[HelpRequestRouted, str | None]] = {}

    async def add(self, routed: HelpRequestRouted, *, sealed: str | None, at: datetime) -> bool:
        if routed.help_request_id in self.rows:
            return False
        self.rows[routed.help_request_id] = (routed, sealed)
        return True

    async def sealed(self, help_request_id: str) -> str | None:
        return self.rows[help_request_id][1] if help_request_id in self.rows else None

    async def forget_sealed(self, help_request_id: str, at: datetime) -> None:
        if help_request_id in self.rows:
            self.rows[help_request_id] = (self.rows[help_request_id][0], None)


class FakeReferrals:
    def __init__(self) -> None:
        self.rows: dict[str, Referral] = {}
        self.reads: list[tuple[str, datetime, str, str]] = []
        self.locked: list[str] = []

    async def add(self, referrals) -> None:
        for r in referrals:
            assert r.referral_id not in self.rows, "primary key"
            self.rows[r.referral_id] = r

    async def get(self, referral_id: str, *, for_update: bool = False) -> Referral | None:
        if for_update:
            self.locked.append(referral_id)
        return self.rows.get(referral_id)

    async def save(self, referral: Referral) -> None:
        assert referral.referral_id in self.locked, "saved without its row lock"
        self.rows[referral.referral_id] = referral

    async def record_read(self, referral_id: str, *, at: datetime, organisation: str, credential_id: str) -> None:
        self.reads.append((referral_id, at, organisation, credential_id))

    async def lock_due(self, now: datetime, limit: int) -> list[Referral]:
        due = [
            r
            for r in self.rows.values()
            if r.due_at is not None and r.due_at <= now and r.paused_at is None and not r.overdue_notified
        ][:limit]
        self.locked += [r.referral_id for r in due]
        return due


class FakeRoutingUnitOfWork:
    def __init__(self, *, hours: dict[str, int | None] | None = None) -> None:
        self.rules = FakeRules()
        self.organisations = FakeOrganisations(hours)
        self.cases = FakeCases()
        self.referrals = FakeReferrals()
        self.emitted: list[PendingEvent] = []

    def emit(self, *events: PendingEvent) -> None:
        self.emitted.extend(events)


class FakeTopics:
    def __init__(self) -> None:
        self.ensured: list[str] = []

    async def ensure(self, organisation: str) -> None:
        self.ensured.append(organisation)


def help_requested(*, consent: bool, sealed: str | None = None) -> HelpRequested:
    return HelpRequested(
        help_request_id="hr-1",
        library="katwijk",
        channel="walk_in",
        questions=[
            QuestionFacts(index=0, category="digital_government", theme="toeslagen", subtheme="huurtoeslag"),
            QuestionFacts(index=1, category="digital_government", theme="digid", subtheme="inloggen"),
            QuestionFacts(index=2, category="digital_government", theme="verkeer", subtheme="verkeersboete"),
        ],
        help_given=["helped_at_desk"],
        referral_consent=consent,
        contact_preference="phone" if consent else None,
        registered_at=datetime.now(UTC),
        sealed=sealed,
    )


def incoming(data: HelpRequested):
    intake = EventFactory(service="intake", oin=OIN, base_url="http://intake")
    return intake.create(data, correlation_id="corr-9").event


async def route(data: HelpRequested, uow: FakeRoutingUnitOfWork, event=None, topics=None) -> bool:
    return await handlers.on_help_requested(
        event or incoming(data),
        data,
        uow=uow,
        events=EVENTS,
        handover_url=HANDOVER,
        topics=topics or FakeTopics(),
        default_response_time=DEFAULT_RESPONSE_TIME,
        now=NOW,
    )


async def test_with_consent_routes_and_refers_to_two_agencies():
    uow = FakeRoutingUnitOfWork(hours={"cjib": 48})
    topics = FakeTopics()
    assert await route(help_requested(consent=True, sealed="sealed-blob"), uow, topics=topics)

    [(routed, sealed)] = uow.cases.rows.values()
    assert (routed.help_request_id, sealed) == ("hr-1", "sealed-blob")
    assert [(d.question_index, d.outcome, d.organisation) for d in routed.decisions] == [
        (0, "referred", "belastingdienst"),
        (1, "helped_at_desk", None),
        (2, "referred", "cjib"),
    ]
    assert routed.decisions[0].referral_id == referral_id("hr-1", 0)
    assert routed.decisions[2].referral_id == referral_id("hr-1", 2)
    referrals = list(uow.referrals.rows.values())
    assert [(r.agency, r.theme, r.subtheme, r.contact_preference) for r in referrals] == [
        ("belastingdienst", "toeslagen", "huurtoeslag", "phone"),
        ("cjib", "verkeer", "verkeersboete", "phone"),
    ]
    # The organisation's own response time, else the default.
    assert [r.due_at for r in referrals] == [NOW + DEFAULT_RESPONSE_TIME, NOW + timedelta(hours=48)]
    assert sorted(topics.ensured) == ["belastingdienst", "cjib"]
    assert [e.topic for e in uow.emitted] == [
        "ido.routing.v1",
        "ido.referrals.belastingdienst.v1",
        "ido.referrals.cjib.v1",
    ]
    assert [e.event.type for e in uow.emitted] == [
        "nl.ido.HelpRequestRouted",
        "nl.ido.ReferredToAgency",
        "nl.ido.ReferredToAgency",
    ]


async def test_event_envelopes_carry_subject_dataref_and_correlation():
    uow = FakeRoutingUnitOfWork()
    data = help_requested(consent=True)
    event = incoming(data)
    await route(data, uow, event)

    [(routed, _)] = uow.cases.rows.values()
    routed_event, *referral_events = (p.event for p in uow.emitted)
    assert routed_event.subject == "hr-1"
    assert routed_event.dataref is None
    assert routed_event.correlationid == event.correlationid == "corr-9"
    expected_ids = [routed.decisions[0].referral_id, routed.decisions[2].referral_id]
    for e, rid in zip(referral_events, expected_ids, strict=True):
        assert e.subject == rid
        assert e.data["referral_id"] == rid
        assert e.dataref == f"http://routing/v1/referrals/{rid}"
        assert e.correlationid == "corr-9"


async def test_without_correlation_id_the_incoming_event_id_is_used():
    uow = FakeRoutingUnitOfWork()
    data = help_requested(consent=True)
    event = incoming(data).model_copy(update={"correlationid": None})
    await route(data, uow, event)

    assert {p.event.correlationid for p in uow.emitted} == {str(event.id)}


async def test_without_consent_visitor_is_informed_and_nothing_is_referred():
    uow = FakeRoutingUnitOfWork()
    await route(help_requested(consent=False), uow)

    [(routed, _)] = uow.cases.rows.values()
    assert [(d.outcome, d.organisation, d.referral_id) for d in routed.decisions] == [
        ("informed", "belastingdienst", None),
        ("helped_at_desk", None, None),
        ("informed", "cjib", None),
    ]
    assert uow.referrals.rows == {}
    assert [p.event.type for p in uow.emitted] == ["nl.ido.HelpRequestRouted"]


async def test_same_event_twice_gives_the_same_referral_ids():
    data = help_requested(consent=True)
    event = incoming(data)
    first, second = FakeRoutingUnitOfWork(), FakeRoutingUnitOfWork()  # e.g. two instances' views
    await route(data, first, event)
    await route(data, second, event)

    assert len(first.referrals.rows) == 2
    assert list(first.referrals.rows) == list(second.referrals.rows)
    assert [p.event.subject for p in first.emitted] == [p.event.subject for p in second.emitted]


async def test_a_help_request_routed_before_is_not_routed_again():
    uow = FakeRoutingUnitOfWork()
    data = help_requested(consent=True)
    assert await route(data, uow)
    emitted, referrals = list(uow.emitted), dict(uow.referrals.rows)
    assert not await route(data, uow)  # another event for the same help request
    assert uow.emitted == emitted and uow.referrals.rows == referrals


async def test_a_named_target_that_exists_is_honoured():
    uow = FakeRoutingUnitOfWork()
    data = help_requested(consent=True).model_copy(
        update={"questions": [QuestionFacts(index=0, category="digital_government", theme="digid", target="uwv")]}
    )
    await route(data, uow)
    [(routed, _)] = uow.cases.rows.values()
    assert (routed.decisions[0].outcome, routed.decisions[0].organisation) == ("referred", "uwv")


async def test_personal_data_erased_drops_the_sealed_copy():
    uow = FakeRoutingUnitOfWork()
    await route(help_requested(consent=True, sealed="sealed-blob"), uow)
    erased = PersonalDataErased(help_request_id="hr-1", library="katwijk", reason="request", erased_at=NOW)
    await handlers.on_personal_data_erased(None, erased, uow=uow)
    assert await uow.cases.sealed("hr-1") is None


# --- the closed loop --------------------------------------------------------------------------

CJIB = Principal(role="agency", organisation="cjib", credential_id="cred-cjib")


def sent_referral(**changes) -> Referral:
    referral = Referral.send(
        sent_at=NOW,
        response_time=timedelta(days=2),
        referral_id="r-1",
        help_request_id="hr-1",
        question_index=2,
        agency="cjib",
        library="katwijk",
        theme="verkeer",
        subtheme="verkeersboete",
        contact_preference="phone",
    )
    return replace(referral, **changes)


def with_referral(referral: Referral) -> FakeRoutingUnitOfWork:
    uow = FakeRoutingUnitOfWork()
    uow.referrals.rows[referral.referral_id] = referral
    return uow


async def report(uow, status, caller=CJIB, at=NOW):
    return await handlers.report_status("r-1", status, "reden", caller=caller, uow=uow, events=EVENTS, now=at)


async def test_a_status_report_is_saved_under_the_row_lock_with_its_event():
    uow = with_referral(sent_referral())
    changed = await report(uow, "accepted")
    assert (changed.status, changed.version) == ("accepted", 2)
    assert uow.referrals.locked == ["r-1"] and uow.referrals.rows["r-1"] == changed
    [pending] = uow.emitted
    assert pending.event.type == "nl.ido.ReferralStatusChanged" and pending.topic == "ido.routing.v1"
    assert (pending.event.subject, pending.event.correlationid) == ("r-1", "hr-1")
    assert (pending.event.data["status"], pending.event.data["sequence"], pending.event.data["reason"]) == (
        "accepted",
        2,
        "reden",
    )


async def test_repeating_the_current_status_changes_nothing():
    uow = with_referral(sent_referral(status="accepted", version=2))
    assert (await report(uow, "accepted")).version == 2
    assert uow.emitted == []


async def test_an_illegal_transition_is_refused_and_nothing_is_emitted():
    uow = with_referral(sent_referral(status="got_help", version=2, due_at=None))
    with pytest.raises(InvalidTransition):
        await report(uow, "accepted")
    assert uow.emitted == [] and uow.referrals.rows["r-1"].status == "got_help"


@pytest.mark.parametrize(
    "caller",
    [
        Principal(role="agency", organisation="uwv", credential_id="c"),
        Principal(role="library", organisation="cjib", credential_id="c"),
    ],
)
async def test_a_referral_of_another_organisation_is_not_found(caller):
    uow = with_referral(sent_referral())
    with pytest.raises(handlers.NotFound):
        await report(uow, "accepted", caller=caller)
    with pytest.raises(handlers.NotFound):
        await handlers.read_handover("r-1", caller=caller, uow=uow, events=EVENTS, now=NOW)
    with pytest.raises(handlers.NotFound):
        await handlers.read_handover("unknown", caller=CJIB, uow=uow, events=EVENTS, now=NOW)
    assert uow.emitted == [] and uow.referrals.reads == []


async def test_a_handover_read_is_recorded_and_reported():
    uow = with_referral(sent_referral())
    referral = await handlers.read_handover("r-1", caller=CJIB, uow=uow, events=EVENTS, now=NOW)
    assert referral.referral_id == "r-1"
    assert uow.referrals.reads == [("r-1", NOW, "cjib", "cred-cjib")]
    [pending] = uow.emitted
    assert pending.event.type == "nl.ido.ReferralHandoverRead"
    assert pending.event.data["credential_id"] == "cred-cjib"


async def test_overdue_referrals_are_marked_and_reported_once():
    uow = with_referral(sent_referral())
    assert await handlers.notify_overdue(uow=uow, events=EVENTS, now=NOW + timedelta(days=1)) == 0
    assert await handlers.notify_overdue(uow=uow, events=EVENTS, now=NOW + timedelta(days=2)) == 1
    assert await handlers.notify_overdue(uow=uow, events=EVENTS, now=NOW + timedelta(days=3)) == 0
    assert uow.referrals.rows["r-1"].overdue_notified
    [pending] = uow.emitted
    assert pending.event.type == "nl.ido.ReferralOverdue"
    assert pending.event.data["due_at"].startswith("2026-12-02T09:00")
