"""Routing decides per question where it goes: helped at the desk, course advised, the visitor
informed where to go (no consent), or a warm referral to the receiving organisation."""

import uuid
from dataclasses import dataclass, field

from shared.events.catalog import QuestionDecision, QuestionFacts, RoutingOutcome

_REFERRAL_NS = uuid.UUID("b4a0e2f4-52a8-4f0a-8f4e-1d2c3b4a5f60")

# (theme, subtheme) -> receiving organisation; subtheme None is the theme's default.
RuleKey = tuple[str, str | None]


@dataclass(frozen=True)
class RoutingRules:
    """Rules as data: loaded from routing's database, editable without code changes."""

    targets: dict[RuleKey, str | None]
    # (municipality, theme, subtheme) -> a local partner (welfare, social legal advice, forms
    # help, the municipality itself) that takes these questions in that municipality.
    local: dict[tuple[str, str, str | None], str | None] = field(default_factory=dict)
    # Every organisation that can receive a referral (agencies and local partners).
    organisations: frozenset[str] = frozenset()

    def organisation_for(self, theme: str, subtheme: str | None, municipality: str | None = None) -> str | None:
        """A local rule of the municipality wins over the national table; a subtheme rule wins
        over the theme's default."""
        if municipality is not None:
            for local_key in ((municipality, theme, subtheme), (municipality, theme, None)):
                if local_key in self.local:
                    return self.local[local_key]
        for key in ((theme, subtheme), (theme, None)):
            if key in self.targets:
                return self.targets[key]
        return None


def referral_id(help_request_id: str, question_index: int) -> str:
    """Deterministic, so routing the same help request twice yields the same referrals."""
    return str(uuid.uuid5(_REFERRAL_NS, f"{help_request_id}:{question_index}"))


def decide(
    help_request_id: str,
    question: QuestionFacts,
    *,
    rules: RoutingRules,
    consent: bool,
    help_given: list[str],
    municipality: str | None = None,
) -> QuestionDecision:
    organisation = rules.organisation_for(question.theme, question.subtheme, municipality)
    rejected = None
    if question.target:
        # Staff named the receiving organisation themselves: honoured if it exists.
        if question.target in rules.organisations:
            organisation = question.target
        else:
            rejected = question.target
    if organisation is None:
        outcome: RoutingOutcome = "course_advised" if "course_advised" in help_given else "helped_at_desk"
        return QuestionDecision(
            question_index=question.index, outcome=outcome, rejected_target=rejected, **_classification(question)
        )
    if not consent:
        # Without consent nothing personal leaves the library: the visitor is told where to go.
        return QuestionDecision(
            question_index=question.index,
            outcome="informed",
            organisation=organisation,
            rejected_target=rejected,
            **_classification(question),
        )
    return QuestionDecision(
        question_index=question.index,
        outcome="referred",
        organisation=organisation,
        referral_id=referral_id(help_request_id, question.index),
        rejected_target=rejected,
        **_classification(question),
    )


def _classification(question: QuestionFacts) -> dict[str, str]:
    return {"category": question.category, "theme": question.theme}
