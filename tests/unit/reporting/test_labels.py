"""The one label table (`GET /v1/labels`, the dashboard): every code the monitor shows has a
Dutch label."""

from typing import get_args

from services.courses.domain.model import DEFAULT_COURSE_TYPES
from services.reporting.domain.projections import labels
from shared import reference
from shared.events import catalog


def test_every_status_outcome_theme_and_seeded_course_type_has_a_dutch_label():
    table = labels()
    assert set(table["statuses"]) == set(get_args(catalog.ReferralStatus))
    assert set(table["outcomes"]) == set(get_args(catalog.RoutingOutcome))
    assert table["themes"] == {code: t.label for code, t in reference.THEMES.items()}
    assert table["course_types"] == {t.code: t.name for t in DEFAULT_COURSE_TYPES}, "the names courses seeds"
    assert table["statuses"]["got_help"] == "Geholpen" and table["themes"]["digid"] == "DigiD"
