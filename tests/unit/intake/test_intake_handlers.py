"""Intake's handlers against an in-memory unit of work (no database)."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import handlers
from services.intake.domain.location import IdoLocation, RegisteredLocation
from services.intake.domain.model import HelpRequest, RegisterHelpRequest
from services.intake.domain.taxonomy import SEED, Theme
from shared.events.catalog import HelpRequestRouted, QuestionDecision
from shared.outbox import EventFactory, PendingEvent
from shared.sealing import unseal

NOTE = "Hulp bij het aanvragen van huurtoeslag voor mevrouw"
NAME = "J. Jansen"
PHONE = "+31 6 1234 5678"
EMAIL = "j.jansen@example.org"


class FakeHelpRequestRepository:
    def __init__(self) -> None:
        self.stored: dict[str, tuple[HelpRequest, str]] = {}
        self.progress: list[HelpRequest] = []
        self.keys: dict[str, bytes] = {}
        self.erased: dict[str, HelpRequest] = {}

    async def add(self, help_request: HelpRequest, *, fingerprint: str, data_key: bytes) -> bool:
        if help_request.id in self.stored:
            return False
        self.stored[help_request.id] = (help_request, fingerprint)
        self.keys[help_request.id] = data_key
        return True

    async def get(self, request_id: str, library: str, *, for_update: bool = False) -> HelpRequest | None:
        hr, _ = self.stored.get(request_id, (None, None))
        return hr if hr is not None and hr.library == library else None

    async def fingerprint(self, request_id: str, library: str) -> str | None:
        return self.stored[request_id][1] if await self.get(request_id, library) else None

    async def save_progress(self, help_request: HelpRequest) -> None:
        self.progress.append(help_request)

    async def get_any(self, request_id: str, *, for_update: bool = False) -> HelpRequest | None:
        found = self.stored.get(request_id)
        return found[0] if found else None

    async def erase(self, erased: HelpRequest) -> None:
        self.erased[erased.id] = erased
        self.stored[erased.id] = (erased, self.stored[erased.id][1])
        self.keys.pop(erased.id, None)

    async def with_personal_data_before(self, moment: datetime) -> list[str]:
        return [
            i for i, (h, _) in self.stored.items() if h.registered_at < moment and h.personal_data_erased_at is None
        ]


def command(**overrides) -> RegisterHelpRequest:
    return RegisterHelpRequest.model_validate(
        {
            "channel": "walk_in",
            "questions": [
                {"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag", "note": NOTE},
                {"category": "library_services", "theme": "e-books"},
            ],
            "help_given": ["informed"],
            "referral": {
                "consent": True,
                "contact_preference": "phone",
                "contact": {"name": NAME, "phone": PHONE, "email": EMAIL},
            },
            **overrides,
        }
    )


def intake_events() -> EventFactory:
    return EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")


class FakeLocations:
    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], RegisteredLocation] = {}

    async def put(self, registered: RegisteredLocation) -> None:
        self.stored[(registered.library, registered.code)] = registered

    async def get(self, library: str, code: str) -> RegisteredLocation | None:
        return self.stored.get((library, code))


class FakeThemes:
    """The taxonomy table, seeded as intake seeds it at start."""

    def __init__(self) -> None:
        self.stored: dict[tuple[str, str], Theme] = {(t.category, t.code): t for t in SEED}

    async def of(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Theme]:
        return {key: self.stored[key] for key in keys if key in self.stored}

    async def put(self, theme: Theme) -> None:
        self.stored[(theme.category, theme.code)] = theme


class FakeUnitOfWork:
    """What a transaction holds: the repositories, and the events emitted in it."""

    def __init__(self) -> None:
        self.help_requests = FakeHelpRequestRepository()
        self.locations = FakeLocations()
        self.themes = FakeThemes()
        self.emitted: list[PendingEvent] = []

    def emit(self, *events: PendingEvent) -> None:
        self.emitted.extend(events)

    @property
    def stored(self):
        return self.help_requests.stored

    def events_of(self, request_id: str) -> list[PendingEvent]:
        return [e for e in self.emitted if e.event.subject == request_id]

    @asynccontextmanager
    async def start(self):
        yield self


async def register(uow, cmd=None, *, library="katwijk", key=None, correlation_id="corr-1"):
    return await handlers.register_help_request(
        cmd or command(),
        library=library,
        idempotency_key=key,
        correlation_id=correlation_id,
        uow=uow,
        events=intake_events(),
    )


async def test_a_registered_location_can_be_named_and_an_unknown_one_is_refused():
    uow = FakeUnitOfWork()
    location = IdoLocation(
        name="Bibliotheek Katwijk",
        postcode="2221 KG",
        city="Katwijk",
        opening_hours=[{"day": "tue", "opens": "10:00", "closes": "12:00"}],
    )
    registered = await handlers.register_location(
        "centrum", location, library="katwijk", uow=uow, events=intake_events()
    )
    [pending] = uow.emitted
    assert pending.topic == "ido.libraries.v1" and pending.event.subject == "katwijk:centrum"
    assert pending.event.data["opening_hours_per_week"] == 2.0 and registered.code == "centrum"

    hr, created = await register(uow, command(location="centrum"))
    assert created and hr.request.location == "centrum"
    with pytest.raises(handlers.UnknownLocation):
        await register(uow, command(location="elders"))
    with pytest.raises(handlers.UnknownLocation):  # another library's location is not yours
        await register(uow, command(location="centrum"), library="venlo")


async def test_register_stores_request_with_one_help_requested_event():
    uow = FakeUnitOfWork()
    hr, created = await register(uow, correlation_id="corr-42")

    assert created is True
    stored, _ = uow.stored[hr.id]
    assert stored == hr
    events = uow.events_of(hr.id)
    assert len(events) == 1
    [pending] = events
    assert pending.topic == "ido.help-requests.v1"
    assert pending.event.type == "nl.ido.HelpRequested"
    assert pending.event.subject == hr.id
    assert pending.event.correlationid == "corr-42"


async def test_event_carries_classification_and_referral_choices():
    uow = FakeUnitOfWork()
    hr, _ = await register(uow)
    data = uow.events_of(hr.id)[0].event.data

    assert data["help_request_id"] == hr.id
    assert data["library"] == "katwijk"
    assert data["questions"] == [
        {"index": 0, "category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag", "target": None},
        {"index": 1, "category": "library_services", "theme": "e-books", "subtheme": None, "target": None},
    ]
    assert data["referral_consent"] is True
    assert data["contact_preference"] == "phone"


async def test_event_without_referral_has_no_consent_and_no_preference():
    uow = FakeUnitOfWork()
    hr, _ = await register(uow, command(referral=None))
    data = uow.events_of(hr.id)[0].event.data
    assert data["referral_consent"] is False
    assert data["contact_preference"] is None


async def test_event_bytes_hold_no_note_and_no_contact_details():
    uow = FakeUnitOfWork()
    hr, _ = await register(uow)
    raw = uow.events_of(hr.id)[0].event.to_bytes()
    # The stored request itself does hold them: the check below is meaningful.
    assert NOTE in hr.model_dump_json()

    for secret in (NOTE, NAME, PHONE, EMAIL):
        assert secret.encode() not in raw
    assert "note" not in json.dumps(json.loads(raw)["data"]["questions"])
    assert "contact" not in json.loads(raw)["data"]


async def test_same_key_and_command_returns_the_first_request():
    uow = FakeUnitOfWork()
    first, created_first = await register(uow, key="k-1")
    second, created_second = await register(uow, key="k-1")

    assert (created_first, created_second) == (True, False)
    assert second.id == first.id
    assert second == first
    assert len(uow.stored) == 1
    assert len(uow.events_of(first.id)) == 1, "the retry emits no second event"


async def test_same_key_with_different_command_is_a_conflict():
    uow = FakeUnitOfWork()
    await register(uow, key="k-1")
    with pytest.raises(handlers.IdempotencyConflict):
        await register(uow, command(duration_minutes=30), key="k-1")
    assert len(uow.stored) == 1


async def test_same_key_in_two_libraries_gives_two_requests():
    uow = FakeUnitOfWork()
    a, created_a = await register(uow, library="katwijk", key="k-1")
    b, created_b = await register(uow, library="venlo", key="k-1")
    assert a.id != b.id
    assert created_a and created_b
    assert len(uow.stored) == 2


async def test_without_key_every_call_creates_a_new_request():
    uow = FakeUnitOfWork()
    a, _ = await register(uow)
    b, _ = await register(uow)
    assert a.id != b.id
    assert len(uow.stored) == 2


def with_questions(*questions: dict) -> RegisterHelpRequest:
    return command(questions=list(questions), referral=None)


async def refused_fields(uow, cmd) -> list[tuple[str, str]]:
    with pytest.raises(handlers.InvalidThemes) as refused:
        await register(uow, cmd)
    assert not uow.stored and not uow.emitted, "nothing is stored or emitted for a refused visit"
    return [(p["name"], p["reason"]) for p in refused.value.params]


@pytest.mark.parametrize("category", ["library_services", "other"])
@pytest.mark.parametrize("theme", ["0", "t", "3ac1aix4qhw0ts4d"])
async def test_a_theme_outside_the_taxonomy_is_refused_in_every_category(category, theme):
    uow = FakeUnitOfWork()
    cmd = with_questions({"category": "digital_government", "theme": "digid"}, {"category": category, "theme": theme})
    [(field, reason)] = await refused_fields(uow, cmd)
    assert field == "questions.1.theme"
    assert theme not in reason.split(), "the reason does not echo the input"


async def test_an_unknown_digital_government_theme_is_refused():
    uow = FakeUnitOfWork()
    assert await refused_fields(uow, with_questions({"category": "digital_government", "theme": "ruimtevaart"})) == [
        ("questions.0.theme", "not a theme of category 'digital_government' in the taxonomy; see GET /v1/themes")
    ]


async def test_a_theme_of_another_category_is_refused():
    uow = FakeUnitOfWork()
    [(field, _)] = await refused_fields(uow, with_questions({"category": "other", "theme": "toeslagen"}))
    assert field == "questions.0.theme"


async def test_an_unknown_subtheme_is_refused_also_for_a_theme_without_subthemes():
    uow = FakeUnitOfWork()
    cmd = with_questions(
        {"category": "digital_government", "theme": "toeslagen", "subtheme": "hondenbelasting"},
        {"category": "library_services", "theme": "wifi", "subtheme": "app-installeren"},
        {"category": "other", "theme": "verzonnen"},
    )
    assert [field for field, _ in await refused_fields(uow, cmd)] == [
        "questions.0.subtheme",
        "questions.1.subtheme",
        "questions.2.theme",
    ], "every invalid field is named at once"


async def test_taxonomy_codes_in_every_category_are_accepted():
    uow = FakeUnitOfWork()
    hr, created = await register(
        uow,
        with_questions(
            {"category": "library_services", "theme": "e-books", "subtheme": "app", "note": "Libby op de tablet"},
            {"category": "library_services", "theme": "overig"},
            {"category": "other", "theme": "overig"},
        ),
    )
    assert created
    facts = uow.events_of(hr.id)[0].event.data["questions"]
    assert [(q["category"], q["theme"], q["subtheme"]) for q in facts] == [
        ("library_services", "e-books", "app"),
        ("library_services", "overig", None),
        ("other", "overig", None),
    ]


async def test_registration_follows_the_kbs_edits_to_the_taxonomy():
    uow = FakeUnitOfWork()
    ict = {"category": "library_services", "theme": "ict-spreekuur", "subtheme": "smartphone"}
    await refused_fields(uow, with_questions(ict))

    added = Theme(
        category="library_services", code="ict-spreekuur", label="ICT-spreekuur", subthemes={"smartphone": None}
    )
    await handlers.put_theme(added, uow=uow)
    hr, _ = await register(uow, with_questions(ict))

    await handlers.put_theme(added.model_copy(update={"retired": True}), uow=uow)
    fields = await refused_fields(uow_without_visits(uow), with_questions(ict))
    assert fields == [
        ("questions.0.theme", "a retired theme of category 'library_services' in the taxonomy; see GET /v1/themes")
    ]
    assert uow.stored[hr.id][0].request.questions[0].theme == "ict-spreekuur", "the visit keeps its code"

    await handlers.put_theme(added.model_copy(update={"subthemes": {"tablet": None}}), uow=uow)
    [(field, _)] = await refused_fields(uow_without_visits(uow), with_questions(ict))
    assert field == "questions.0.subtheme", "a subtheme taken out of the theme is refused"


def uow_without_visits(uow: FakeUnitOfWork) -> FakeUnitOfWork:
    """A fresh unit of work on the same taxonomy (to check that a refusal stores nothing)."""
    fresh = FakeUnitOfWork()
    fresh.themes = uow.themes
    return fresh


def stored_request(request_id="hr-1", library="katwijk") -> HelpRequest:
    return HelpRequest(id=request_id, library=library, registered_at=datetime.now(UTC), request=command())


def routed_event(data: HelpRequestRouted):
    events = EventFactory(service="routing", oin="00000001003214345000", base_url="http://routing")
    return events.create(data, correlation_id="corr-1").event


async def test_routed_event_marks_request_referred_with_its_referrals():
    uow = FakeUnitOfWork()
    hr = stored_request()
    uow.stored[hr.id] = (hr, "fp")
    data = HelpRequestRouted(
        help_request_id=hr.id,
        library="katwijk",
        decisions=[
            QuestionDecision(question_index=0, outcome="referred", organisation="belastingdienst", referral_id="r-0"),
            QuestionDecision(question_index=1, outcome="helped_at_desk"),
        ],
    )
    event = routed_event(data)

    await handlers.on_help_request_routed(event, data, uow)
    await handlers.on_help_request_routed(event, data, uow)  # applied again

    progress = uow.help_requests.progress
    assert progress[0] == progress[1], "applying an event again changes nothing"
    saved = progress[0]

    assert saved.id == hr.id
    assert saved.status == "referred"
    assert saved.decisions == data.decisions
    assert [(r.referral_id, r.organisation, r.question_index, r.status) for r in saved.referrals] == [
        ("r-0", "belastingdienst", 0, "sent")
    ]


async def test_routed_event_for_unknown_request_raises_lookup_error():
    uow = FakeUnitOfWork()
    data = HelpRequestRouted(help_request_id="missing", library="katwijk", decisions=[])
    with pytest.raises(LookupError):
        await handlers.on_help_request_routed(routed_event(data), data, uow)
    assert uow.help_requests.progress == []


async def test_routed_event_for_request_of_another_library_raises_lookup_error():
    uow = FakeUnitOfWork()
    hr = stored_request(library="venlo")
    uow.stored[hr.id] = (hr, "fp")
    data = HelpRequestRouted(help_request_id=hr.id, library="katwijk", decisions=[])
    with pytest.raises(LookupError):
        await handlers.on_help_request_routed(routed_event(data), data, uow)
    assert uow.help_requests.progress == []


async def test_personal_data_travels_sealed_with_the_requests_own_key():
    uow = FakeUnitOfWork()
    hr, _ = await register(uow)
    [pending] = uow.events_of(hr.id)
    opened = unseal(uow.help_requests.keys[hr.id], pending.event.data["sealed"], bound_to=hr.id)
    assert opened["contact"]["phone"] == PHONE and NOTE in opened["notes"].values()


async def test_retention_erases_old_personal_data_once_and_keeps_the_registration():
    uow = FakeUnitOfWork()
    hr, _ = await register(uow)
    now = hr.registered_at + timedelta(days=31)

    def purge(days: int):
        return handlers.purge_expired(retention=timedelta(days=days), start=uow.start, events=intake_events(), now=now)

    assert await purge(31) == 0
    assert await purge(30) == 1
    assert await purge(30) == 0, "erased once"
    kept = uow.help_requests.erased[hr.id]
    [_, fact] = uow.events_of(hr.id)
    assert kept.request.referral.contact is None and kept.request.questions[0].note is None
    assert kept.request.questions[0].theme == hr.request.questions[0].theme
    assert fact.event.type == "nl.ido.PersonalDataErased" and fact.event.data["reason"] == "retention"
    assert hr.id not in uow.help_requests.keys, "the data key is destroyed"
