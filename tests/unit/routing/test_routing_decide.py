"""Routing rules, referral ids and the per-question decision."""

import pytest

from services.routing.adapters.repository import default_rules
from services.routing.domain.model import RoutingRules, decide, referral_id
from shared.events.catalog import QuestionFacts


def rules_from(docs) -> RoutingRules:
    return RoutingRules({(d["theme"], d["subtheme"]): d["organisation"] for d in docs})


DEFAULTS = rules_from(default_rules())


def facts(theme, subtheme=None, index=0):
    return QuestionFacts(index=index, category="digital_government", theme=theme, subtheme=subtheme)


RULES = RoutingRules({("studie", None): "duo", ("studie", "ov-kaart"): "ov-bureau", ("zorg", "wlz-indicatie"): "ciz"})


def test_subtheme_rule_wins_over_theme_default():
    assert RULES.organisation_for("studie", "ov-kaart") == "ov-bureau"


def test_theme_default_for_unknown_or_missing_subtheme():
    assert RULES.organisation_for("studie", "iets-anders") == "duo"
    assert RULES.organisation_for("studie", None) == "duo"


def test_no_rule_gives_none():
    assert RULES.organisation_for("zorg", "eigen-bijdrage") is None
    assert RULES.organisation_for("onbekend", None) is None


def test_subtheme_rule_to_none_is_not_overridden_by_default():
    rules = RoutingRules({("studie", None): "duo", ("studie", "vraag-aan-balie"): None})
    assert rules.organisation_for("studie", "vraag-aan-balie") is None


def test_referral_id_is_deterministic_and_per_question():
    assert referral_id("hr-1", 0) == referral_id("hr-1", 0)
    assert referral_id("hr-1", 0) != referral_id("hr-1", 1)
    assert referral_id("hr-1", 0) != referral_id("hr-2", 0)


def test_referred_with_consent():
    decision = decide("hr-1", facts("zorg", "wlz-indicatie", index=3), rules=RULES, consent=True, help_given=[])
    assert decision.outcome == "referred"
    assert decision.organisation == "ciz"
    assert decision.question_index == 3
    assert decision.referral_id == referral_id("hr-1", 3)


def test_informed_without_consent():
    decision = decide("hr-1", facts("zorg", "wlz-indicatie"), rules=RULES, consent=False, help_given=["informed"])
    assert decision.outcome == "informed"
    assert decision.organisation == "ciz"
    assert decision.referral_id is None


@pytest.mark.parametrize(
    ("help_given", "outcome"),
    [([], "helped_at_desk"), (["coached"], "helped_at_desk"), (["course_advised"], "course_advised")],
)
def test_no_organisation_stays_at_the_desk(help_given, outcome):
    decision = decide("hr-1", facts("digid", "app"), rules=DEFAULTS, consent=True, help_given=help_given)
    assert decision.outcome == outcome
    assert decision.organisation is None
    assert decision.referral_id is None


@pytest.mark.parametrize(
    ("theme", "subtheme", "organisation"),
    [
        ("toeslagen", "huurtoeslag", "belastingdienst"),
        ("zorg", "eigen-bijdrage", "cak"),
        ("zorg", "wlz-indicatie", "ciz"),
        ("verkeer", "verkeersboete", "cjib"),
        ("verkeer", "rijbewijs", "cbr"),
        ("verkeer", "voertuig", "rdw"),
        ("studie", "studiefinanciering", "duo"),
        ("studie", "lening", "duo"),
        ("studie", "iets-nieuws", "duo"),
        ("studie", None, "duo"),
        ("werk-en-uitkering", "ww", "uwv"),
        ("werk-en-uitkering", "wia", "uwv"),
        ("werk-en-uitkering", "ziektewet", "uwv"),
        ("werk-en-uitkering", "aow", "svb"),
        ("werk-en-uitkering", "kinderbijslag", "svb"),
        ("werk-en-uitkering", "anw", "svb"),
        ("wonen", "huurprijs", "huurcommissie"),
        ("recht", "rechtsbijstand", "rvr"),
        ("recht", "alimentatie", "lbio"),
    ],
)
def test_default_contract_table(theme, subtheme, organisation):
    assert DEFAULTS.organisation_for(theme, subtheme) == organisation


@pytest.mark.parametrize(
    "subtheme", ["aanvragen", "activeren", "app", "inloggen", "wachtwoord-vergeten", "machtigen", None]
)
def test_digid_stays_at_the_desk(subtheme):
    assert DEFAULTS.organisation_for("digid", subtheme) is None


@pytest.mark.parametrize("theme", ["gemeente", "overig"])
def test_gemeente_and_overig_have_no_organisation(theme):
    assert DEFAULTS.organisation_for(theme, None) is None
    assert DEFAULTS.organisation_for(theme, "iets") is None


def test_default_rule_documents_have_the_contract_keys():
    docs = default_rules()
    assert docs
    assert all({"theme", "subtheme", "organisation"} <= d.keys() for d in docs)
    assert len({(d["theme"], d["subtheme"]) for d in docs}) == len(docs)  # no rule defined twice


def test_a_local_partner_of_the_municipality_wins_over_the_national_table():
    rules = RoutingRules(
        {("gemeente", None): None, ("toeslagen", None): "belastingdienst"},
        local={
            ("tiel", "gemeente", None): "welzijn-tiel",
            ("tiel", "toeslagen", "huurtoeslag"): "formulierenhulp-tiel",
        },
        organisations=frozenset({"welzijn-tiel", "formulierenhulp-tiel", "belastingdienst"}),
    )
    assert rules.organisation_for("gemeente", "paspoort", "tiel") == "welzijn-tiel"
    assert rules.organisation_for("toeslagen", "huurtoeslag", "tiel") == "formulierenhulp-tiel"
    assert rules.organisation_for("toeslagen", "zorgtoeslag", "tiel") == "belastingdienst"
    assert rules.organisation_for("gemeente", None, "venlo") is None
    assert rules.organisation_for("gemeente", None, None) is None


def test_a_target_named_by_staff_is_honoured_when_known_and_reported_when_not():
    rules = RoutingRules({("digid", None): None}, organisations=frozenset({"svb", "uwv"}))
    named = QuestionFacts(index=0, category="digital_government", theme="digid", target="svb")
    unknown = QuestionFacts(index=1, category="digital_government", theme="digid", target="nope")
    chosen = decide("hr-9", named, rules=rules, consent=True, help_given=[])
    assert (chosen.outcome, chosen.organisation, chosen.rejected_target) == ("referred", "svb", None)
    refused = decide("hr-9", unknown, rules=rules, consent=True, help_given=[])
    assert (refused.outcome, refused.organisation, refused.rejected_target) == ("helped_at_desk", None, "nope")
