"""Validation of the registration command and routing's effect on a stored help request."""

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.domain.model import MAX_NOTE, MAX_QUESTIONS, HelpRequest, RegisterHelpRequest
from shared.events.catalog import QuestionDecision

VALID_BSN = "123456782"  # 9*1+8*2+7*3+6*4+5*5+4*6+3*7+2*8 = 156 = 2 (mod 11), check digit 2


def question(**overrides):
    return {"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag", **overrides}


def body(**overrides):
    return {
        "channel": "walk_in",
        "questions": [question(note="Hulp bij het aanvragen van huurtoeslag")],
        "help_given": ["informed", "coached"],
        "referral": {
            "consent": True,
            "contact_preference": "email",
            "contact": {"name": "J. Jansen", "phone": "+31 6 1234 5678", "email": "j.jansen@example.org"},
        },
        "duration_minutes": 20,
        "location": "vestiging-centrum",
        **overrides,
    }


def errors_of(data) -> list[Any]:
    with pytest.raises(ValidationError) as exc:
        RegisterHelpRequest.model_validate(data)
    return exc.value.errors()


def test_valid_full_request_is_accepted():
    request = RegisterHelpRequest.model_validate(body())
    assert request.questions[0].subtheme == "huurtoeslag"
    assert request.referral.consent is True
    assert request.referral.contact.email == "j.jansen@example.org"


def test_unknown_top_level_field_is_refused():
    errs = errors_of(body(library="someone-else"))
    assert [(e["type"], e["loc"]) for e in errs] == [("extra_forbidden", ("library",))]


@pytest.mark.parametrize(
    ("data", "loc"),
    [
        (body(questions=[question(bsn="x")]), ("questions", 0, "bsn")),
        (body(referral={"consent": True, "contact": {"address": "Dorpsstraat 1"}}), ("referral", "contact", "address")),
    ],
)
def test_unknown_nested_field_is_refused(data, loc):
    errs = errors_of(data)
    assert any(e["type"] == "extra_forbidden" and e["loc"] == loc for e in errs)


@pytest.mark.parametrize("count", [0, MAX_QUESTIONS + 1])
def test_question_count_out_of_range_is_refused(count):
    errs = errors_of(body(questions=[question() for _ in range(count)]))
    assert errs[0]["loc"] == ("questions",)


def test_ten_questions_are_accepted():
    assert len(RegisterHelpRequest.model_validate(body(questions=[question()] * 10)).questions) == 10


def test_note_over_limit_is_refused_but_limit_itself_accepted():
    RegisterHelpRequest.model_validate(body(questions=[question(note="a" * MAX_NOTE)]))
    errs = errors_of(body(questions=[question(note="a" * (MAX_NOTE + 1))]))
    assert errs[0]["loc"] == ("questions", 0, "note")
    assert errs[0]["type"] == "string_too_long"


@pytest.mark.parametrize("spelling", [VALID_BSN, "123 456 782", "123.45.67.82"])
def test_bsn_in_note_is_refused(spelling):
    errs = errors_of(body(questions=[question(note=f"BSN van klant: {spelling}")]))
    assert errs[0]["loc"] == ("questions", 0, "note")
    assert "BSN" in errs[0]["msg"]


def test_contact_details_without_consent_are_refused():
    errs = errors_of(body(referral={"consent": False, "contact": {"phone": "0612345678"}}))
    assert errs[0]["loc"] == ("referral",)
    assert "consent" in errs[0]["msg"]


def test_no_consent_without_contact_is_accepted():
    assert RegisterHelpRequest.model_validate(body(referral={"consent": False})).referral.contact is None


def test_the_model_leaves_the_taxonomy_to_registration():
    """Themes are checked against the KB's table at registration (test_intake_handlers), so a
    stored visit whose theme was retired since still reads back."""
    request = RegisterHelpRequest.model_validate(body(questions=[question(theme="ruimtevaart", subtheme=None)]))
    assert request.questions[0].theme == "ruimtevaart"


def test_other_categories_still_require_slugs():
    errs = errors_of(body(questions=[question(category="other", theme="Geen Slug!")]))
    assert errs[0]["loc"] == ("questions", 0, "theme")


def test_all_invalid_fields_are_reported_at_once():
    data = body(
        channel="pigeon",
        questions=[question(note="a" * (MAX_NOTE + 1))],
        duration_minutes=0,
    )
    errs = errors_of(data)
    assert len(errs) >= 3
    assert {e["loc"] for e in errs} >= {("channel",), ("questions", 0, "note"), ("duration_minutes",)}


def stored() -> HelpRequest:
    return HelpRequest(
        id="hr-1",
        library="rotterdam",
        registered_at=datetime(2025, 1, 2, tzinfo=UTC),
        request=RegisterHelpRequest.model_validate(
            body(questions=[question(), question(theme="digid", subtheme="app")])
        ),
    )


def test_apply_routing_with_a_referral_is_referred():
    decisions = [
        QuestionDecision(question_index=0, outcome="referred", organisation="belastingdienst", referral_id="ref-1"),
        QuestionDecision(question_index=1, outcome="helped_at_desk"),
    ]
    original = stored()
    routed = original.apply_routing(decisions)
    assert routed.status == "referred"
    assert routed.decisions == decisions
    assert [(r.referral_id, r.organisation, r.question_index, r.status) for r in routed.referrals] == [
        ("ref-1", "belastingdienst", 0, "sent")
    ]
    assert original.status == "received"  # a copy, the original is untouched


def test_apply_routing_without_referral_is_routed():
    decisions = [
        QuestionDecision(question_index=0, outcome="informed", organisation="belastingdienst"),
        QuestionDecision(question_index=1, outcome="course_advised"),
    ]
    routed = stored().apply_routing(decisions)
    assert routed.status == "routed"
    assert routed.referrals == []
    assert routed.decisions == decisions
