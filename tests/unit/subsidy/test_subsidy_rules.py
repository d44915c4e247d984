"""The scheme's rules: the amount per inhabitant per year, exact to the cent, and who may apply when."""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from services.subsidy.domain.model import Apply, Refused, Scheme, calculate, cents, check_application

SCHEME = Scheme(
    name="Tijdelijke regeling IDO",
    opens=datetime(2019, 7, 1, tzinfo=UTC),
    closes=datetime(2019, 10, 11, 22, 0, tzinfo=UTC),
    rates={2019: Decimal("0.03"), 2020: Decimal("0.05"), 2021: Decimal("0.08")},
    budget_ceiling_cents=100_000_00,
)


def application(**changes) -> Apply:
    body = {
        "scheme": "ido-2019",
        "inhabitants": 100_001,
        "ido_opening_date": "2019-11-01",
        "planned_course_offers": 4,
        "contact_person": {"name": "A. Bibliothecaris", "email": "a@bieb.nl"},
    } | changes
    return Apply.model_validate(body)


def test_the_amount_is_inhabitants_times_the_rate_for_every_year_the_ido_is_open():
    lines = calculate(SCHEME, 100_001, date(2019, 11, 1))
    # 100,001 x 0.03 = 3000.03; x 0.05 = 5000.05; x 0.08 = 8000.08 euros
    assert [(line.year, line.amount_cents) for line in lines] == [(2019, 300003), (2020, 500005), (2021, 800008)]
    assert [line.year for line in calculate(SCHEME, 10, date(2021, 1, 1))] == [2021]


def test_cents_are_rounded_half_up_and_never_via_floats():
    assert cents(Decimal("0.005")) == 1 and cents(Decimal("0.004")) == 0
    assert cents(Decimal("0.83") * 12_345) == 1024635  # 10246.35 euros exactly


def test_applications_are_checked_against_the_window_and_the_schemes_years():
    inside = datetime(2019, 9, 1, tzinfo=UTC)
    assert sum(line.amount_cents for line in check_application(application(), SCHEME, now=inside)) == 1600016
    refusals = {
        "late": (application(), datetime(2019, 10, 12, tzinfo=UTC)),
        "early": (application(), datetime(2019, 6, 30, tzinfo=UTC)),
        "too late an IDO": (application(ido_opening_date="2022-01-10"), inside),
    }
    for case, (cmd, now) in refusals.items():
        with pytest.raises(Refused, match=r"deadline|opens|covers"):
            check_application(cmd, SCHEME, now=now)
        assert case
    with pytest.raises(Refused) as unknown:
        check_application(application(), None, now=inside)
    assert unknown.value.field == "scheme"


def test_inhabitants_must_be_positive_and_unknown_fields_are_refused():
    for bad in ({"inhabitants": 0}, {"inhabitants": -5}, {"bsn": "123"}):
        with pytest.raises(ValidationError):
            application(**bad)


def test_a_scheme_needs_a_window_that_opens_before_it_closes_and_positive_rates():
    with pytest.raises(ValidationError):
        Scheme.model_validate(SCHEME.model_dump() | {"closes": SCHEME.opens})
    with pytest.raises(ValidationError):
        Scheme.model_validate(SCHEME.model_dump() | {"rates": {2019: Decimal("0")}})
