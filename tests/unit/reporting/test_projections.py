"""Reporting's projections: rows as on the registration form, counters by dimension, suppression."""

from datetime import UTC, datetime

from services.reporting.domain.projections import (
    SUPPRESSED,
    agency_themes,
    help_request_increments,
    question_rows,
    suppress,
)
from shared.events.catalog import HelpRequested, QuestionFacts

VISIT = HelpRequested(
    help_request_id="hr-1",
    library="zeeland",
    location="middelburg",
    channel="phone",
    questions=[
        QuestionFacts(index=0, category="digital_government", theme="digid", subtheme="app"),
        QuestionFacts(index=1, category="digital_government", theme="toeslagen", subtheme="huurtoeslag"),
    ],
    help_given=["informed", "coached"],
    registered_at=datetime(2026, 11, 3, 10, 0, tzinfo=UTC),
)


def test_one_row_per_question_with_the_forms_columns():
    rows = question_rows(VISIT)
    assert [(r["_id"], r["question"], r["theme"]) for r in rows] == [("hr-1:0", 1, "digid"), ("hr-1:1", 2, "toeslagen")]
    assert rows[0]["date"] == "2026-11-03" and rows[0]["help_given"] == "informed;coached"


def test_one_visit_counter_and_one_question_counter_per_question():
    increments = help_request_increments(VISIT)
    assert [i.measure for i in increments] == ["visits", "questions", "questions", "help_given", "help_given"]
    expected = "questions|month=2026-11|library=zeeland|location=middelburg|channel=phone"
    assert increments[1].key == expected + "|category=digital_government|theme=digid|subtheme=app"
    assert len({i.key for i in increments}) == 5


def test_small_counts_are_suppressed_but_zero_and_larger_counts_are_shown():
    assert [suppress(n, 5) for n in (0, 1, 4, 5, 12)] == [0, SUPPRESSED, SUPPRESSED, 5, 12]


def test_an_agencys_domain_is_the_themes_that_go_to_it():
    assert agency_themes("belastingdienst") == {"belastingen", "toeslagen"}
    assert agency_themes("cjib") == {"verkeer"} and "digid" not in agency_themes("uwv")
