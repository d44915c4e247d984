"""The KB's subsidy scheme for libraries that open an IDO: schemes as data, applications checked
against the window and eligibility, the amount computed per inhabitant per year, exactly.

Money is whole euro cents (int). A year's amount is inhabitants x the year's rate in euros,
rounded half up to the cent; the total is the sum of the years."""

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Condition = Literal["visitor_registration", "course_offers"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Extension(_Strict):
    """The extension year: paid after a signed renewal confirmation before the deadline."""

    year: int
    rate: Decimal = Field(gt=0, description="euros per inhabitant, e.g. 0.83")
    deadline: AwareDatetime


class Scheme(_Strict):
    """PUT /v1/schemes/{code} by KB staff. Changing it never alters decisions already taken:
    an application keeps the calculation it was made with."""

    name: str = Field(min_length=1, max_length=200)
    opens: AwareDatetime
    closes: AwareDatetime = Field(description="the application deadline")
    # Euros per inhabitant per year the IDO is open, e.g. {"2019": "0.03", "2020": "0.05", "2021": "0.08"}
    rates: dict[int, Decimal] = Field(min_length=1)
    budget_ceiling_cents: int = Field(gt=0)
    advance_percent: int = Field(50, ge=0, le=100, description="paid on grant; the rest when the conditions are met")
    conditions: list[Condition] = ["visitor_registration", "course_offers"]
    extension: Extension | None = None

    @model_validator(mode="after")
    def _sane(self) -> "Scheme":
        if self.opens >= self.closes:
            raise ValueError("the window must open before it closes")
        if any(rate <= 0 for rate in self.rates.values()):
            raise ValueError("rates are positive amounts in euros")
        return self


class ContactPerson(_Strict):
    name: str = Field(min_length=1, max_length=200)
    email: EmailStr


class Apply(_Strict):
    """POST /v1/applications by a library."""

    scheme: Slug
    inhabitants: int = Field(gt=0, le=5_000_000, description="inhabitants of the library's service area")
    ido_opening_date: date
    planned_course_offers: int = Field(ge=0, le=1000)
    contact_person: ContactPerson


class CalculationLine(BaseModel):
    year: int
    inhabitants: int
    rate_eur: Decimal
    amount_cents: int


class Refused(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


def cents(euros: Decimal) -> int:
    return int((euros * 100).quantize(Decimal("1"), rounding=ROUND_HALF_UP))


def calculate(scheme: Scheme, inhabitants: int, opening: date) -> list[CalculationLine]:
    """One line per scheme year in which the IDO is open."""
    return [
        CalculationLine(year=year, inhabitants=inhabitants, rate_eur=rate, amount_cents=cents(rate * inhabitants))
        for year, rate in sorted(scheme.rates.items())
        if year >= opening.year
    ]


def check_application(cmd: Apply, scheme: Scheme | None, *, now: datetime) -> list[CalculationLine]:
    """The calculation, or Refused naming the field: unknown scheme, outside the window, or an
    IDO that does not open within the scheme's years."""
    if scheme is None:
        raise Refused("scheme", "unknown scheme; see GET /v1/schemes")
    if now < scheme.opens:
        raise Refused("scheme", f"the application window opens {scheme.opens.date().isoformat()}")
    if now > scheme.closes:
        raise Refused("scheme", f"the deadline was {scheme.closes.date().isoformat()}: applications are closed")
    if cmd.ido_opening_date.year > max(scheme.rates):
        raise Refused("ido_opening_date", f"the scheme covers IDOs opening up to {max(scheme.rates)}")
    return calculate(scheme, cmd.inhabitants, cmd.ido_opening_date)


def advance(granted_cents: int, percent: int) -> int:
    """The advance paid on grant: `percent` of the grant, rounded half up to the cent."""
    return cents(Decimal(granted_cents) * percent / 10000)


class Renew(_Strict):
    """POST /v1/applications/{id}/renewal: the signed renewal confirmation."""

    signed_by: str = Field(min_length=1, max_length=200)
    signed_on: date


class Decide(_Strict):
    """POST /v1/applications/{id}/decision by KB staff: always with a reason."""

    decision: Literal["grant", "reject"]
    reason: str = Field(min_length=3, max_length=1000)
    amount_cents: int | None = Field(default=None, gt=0, description="a partial grant; default the full amount")
