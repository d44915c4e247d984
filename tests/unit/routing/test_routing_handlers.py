"""Routing's on_help_requested against an in-memory repository (no database)."""

from datetime import UTC, datetime, timedelta

from services.routing import handlers
from services.routing.adapters.repository import default_rules
from services.routing.domain.model import RoutingRules, referral_id
from services.routing.domain.referral import Referral
from shared.events.catalog import HelpRequested, HelpRequestRouted, QuestionFacts
from shared.outbox import EventFactory, PendingEvent

OIN = "00000001003214345000"
HANDOVER = "http://routing/v1/referrals/{referral_id}"


class FakeRoutingRepository:
    def __init__(self) -> None:
        self._rules = RoutingRules({(d["theme"], d["subtheme"]): d["organisation"] for d in default_rules()})
        self.cases: list[tuple[HelpRequestRouted, list[Referral], list[PendingEvent]]] = []
        self._referrals: list[Referral] = []

    async def rules(self) -> RoutingRules:
        return self._rules

    async def response_time(self, organisation: str) -> timedelta:
        return timedelta(days=5)

    async def add_referrals(self, referrals: list[Referral]) -> None:
        self._referrals = list(referrals)

    async def add_case(self, routed: HelpRequestRouted, events: list[PendingEvent], sealed: str | None) -> bool:
        self.cases.append((routed, self._referrals, list(events)))
        return True


class FakeTopics:
    def __init__(self) -> None:
        self.ensured: list[str] = []

    async def ensure(self, organisation: str) -> None:
        self.ensured.append(organisation)


def help_requested(*, consent: bool) -> HelpRequested:
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
    )


def incoming(data: HelpRequested):
    intake = EventFactory(service="intake", oin=OIN, base_url="http://intake")
    return intake.create(data, correlation_id="corr-9").event


async def route(data: HelpRequested, repo: FakeRoutingRepository, event=None) -> None:
    await handlers.on_help_requested(
        event or incoming(data),
        data,
        repo=repo,
        events=EventFactory(service="routing", oin=OIN, base_url="http://routing"),
        handover_url=HANDOVER,
        topics=FakeTopics(),
        now=datetime(2026, 11, 30, 9, 0, tzinfo=UTC),
    )


async def test_with_consent_routes_and_refers_to_two_agencies():
    repo = FakeRoutingRepository()
    data = help_requested(consent=True)
    await route(data, repo)

    [(routed, referrals, events)] = repo.cases
    assert routed.help_request_id == "hr-1"
    assert [(d.question_index, d.outcome, d.organisation) for d in routed.decisions] == [
        (0, "referred", "belastingdienst"),
        (1, "helped_at_desk", None),
        (2, "referred", "cjib"),
    ]
    assert routed.decisions[0].referral_id == referral_id("hr-1", 0)
    assert routed.decisions[2].referral_id == referral_id("hr-1", 2)
    assert [(r.agency, r.theme, r.subtheme, r.contact_preference) for r in referrals] == [
        ("belastingdienst", "toeslagen", "huurtoeslag", "phone"),
        ("cjib", "verkeer", "verkeersboete", "phone"),
    ]
    assert [e.topic for e in events] == [
        "ido.routing.v1",
        "ido.referrals.belastingdienst.v1",
        "ido.referrals.cjib.v1",
    ]
    assert [e.event.type for e in events] == [
        "nl.ido.HelpRequestRouted",
        "nl.ido.ReferredToAgency",
        "nl.ido.ReferredToAgency",
    ]


async def test_event_envelopes_carry_subject_dataref_and_correlation():
    repo = FakeRoutingRepository()
    data = help_requested(consent=True)
    event = incoming(data)
    await route(data, repo, event)

    [(routed, _, events)] = repo.cases
    routed_event, *referral_events = (p.event for p in events)
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
    repo = FakeRoutingRepository()
    data = help_requested(consent=True)
    event = incoming(data).model_copy(update={"correlationid": None})
    await route(data, repo, event)

    [(_, _, events)] = repo.cases
    assert {p.event.correlationid for p in events} == {str(event.id)}


async def test_without_consent_visitor_is_informed_and_nothing_is_referred():
    repo = FakeRoutingRepository()
    await route(help_requested(consent=False), repo)

    [(routed, referrals, events)] = repo.cases
    assert [(d.outcome, d.organisation, d.referral_id) for d in routed.decisions] == [
        ("informed", "belastingdienst", None),
        ("helped_at_desk", None, None),
        ("informed", "cjib", None),
    ]
    assert referrals == []
    assert [p.event.type for p in events] == ["nl.ido.HelpRequestRouted"]


async def test_same_event_twice_gives_the_same_referral_ids():
    repo = FakeRoutingRepository()
    data = help_requested(consent=True)
    event = incoming(data)
    await route(data, repo, event)
    await route(data, repo, event)

    first, second = ([r.referral_id for r in referrals] for _, referrals, _ in repo.cases)
    assert len(first) == 2
    assert first == second
    subjects = [[p.event.subject for p in events] for _, _, events in repo.cases]
    assert subjects[0] == subjects[1]
