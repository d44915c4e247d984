"""The KB's subsidy scheme for libraries that open an IDO: schemes as data, applications checked
against the window and eligibility, the amount computed per inhabitant per year, exactly; the
budget with its ceiling, the application with its decision trail and tranches, and the payment
conditions a library meets. Pure Python: no I/O.

Money is whole euro cents (int). A year's amount is inhabitants x the year's rate in euros,
rounded half up to the cent; the total is the sum of the years."""

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from shared.events.catalog import (
    EventData,
    SubsidyApplied,
    SubsidyGranted,
    SubsidyPaid,
    SubsidyRejected,
    SubsidyRenewed,
)
from shared.values import Timestamp

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Condition = Literal["visitor_registration", "course_offers"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Extension(_Strict):
    """The extension year: paid after a signed renewal confirmation before the deadline."""

    year: int
    rate: Decimal = Field(gt=0, description="euros per inhabitant, e.g. 0.83")
    deadline: Timestamp


class Scheme(_Strict):
    """PUT /v1/schemes/{code} by KB staff. Changing it never alters decisions already taken:
    an application keeps the calculation it was made with."""

    name: str = Field(min_length=1, max_length=200)
    opens: Timestamp
    closes: Timestamp = Field(description="the application deadline")
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
    """A command that is well-formed but not acceptable: names the field (422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


class AlreadyDecided(Exception):
    """A decision on an application that is no longer `applied` (409); carries its status."""


class BudgetExhausted(Exception):
    """The amount does not fit under the scheme's ceiling (409)."""


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


class Budget:
    """A scheme's budget: what grants and renewals reserved, never above the ceiling."""

    def __init__(self, scheme: str, ceiling_cents: int, reserved_cents: int) -> None:
        self.scheme, self.ceiling_cents, self.reserved_cents = scheme, ceiling_cents, reserved_cents

    @property
    def remaining_cents(self) -> int:
        return self.ceiling_cents - self.reserved_cents

    def reserve(self, amount_cents: int) -> None:
        if amount_cents > self.remaining_cents:
            raise BudgetExhausted(self.scheme)
        self.reserved_cents += amount_cents

    def change_ceiling(self, ceiling_cents: int) -> None:
        """A scheme change may lower the ceiling, but not below what is already reserved."""
        if ceiling_cents < self.reserved_cents:
            raise Refused(
                "budget_ceiling_cents", f"{self.reserved_cents} cents are already reserved: the ceiling cannot be lower"
            )
        self.ceiling_cents = ceiling_cents


@dataclass
class LibraryConditions:
    """When a library first met each payment condition (seen in other services' events)."""

    library: str
    met: dict[str, datetime] = field(default_factory=dict)

    def meet(self, condition: Condition, at: datetime) -> bool:
        """Record the condition; True the first time it is met."""
        if condition in self.met:
            return False
        self.met[condition] = at
        return True

    def all_met(self, conditions: list[Condition]) -> bool:
        return all(c in self.met for c in conditions)


@dataclass(frozen=True)
class TrailEntry:
    at: datetime
    by: str
    action: Literal["applied", "granted", "rejected", "renewed"]
    detail: str


@dataclass(frozen=True)
class Payment:
    tranche: Literal["advance", "final", "extension"]
    amount_cents: int
    paid_at: datetime


@dataclass(frozen=True)
class Renewal:
    year: int
    amount_cents: int
    signed_by: str
    signed_on: date


@dataclass
class Application:
    """One library's application for one scheme: its calculation, its one decision, the tranches
    paid and the renewal, each step in its trail. The facts it causes collect in `events`."""

    id: str
    scheme: str
    library: str
    inhabitants: int
    ido_opening_date: date
    planned_course_offers: int
    contact_person: dict[str, str]
    calculation: list[CalculationLine]
    requested_cents: int
    applied_at: datetime
    status: Literal["applied", "granted", "rejected"] = "applied"
    granted_cents: int | None = None
    decision_reason: str | None = None
    renewal: Renewal | None = None
    trail: list[TrailEntry] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    events: list[EventData] = field(default_factory=list, compare=False, repr=False)

    @staticmethod
    def id_for(scheme: str, library: str) -> str:
        return f"{scheme}:{library}"

    @classmethod
    def submit(cls, cmd: Apply, scheme: Scheme | None, *, library: str, now: datetime) -> "Application":
        """A new application, checked against the scheme (Refused naming the field)."""
        lines = check_application(cmd, scheme, now=now)
        requested = sum(line.amount_cents for line in lines)
        application = cls(
            id=cls.id_for(cmd.scheme, library),
            scheme=cmd.scheme,
            library=library,
            inhabitants=cmd.inhabitants,
            ido_opening_date=cmd.ido_opening_date,
            planned_course_offers=cmd.planned_course_offers,
            contact_person=cmd.contact_person.model_dump(mode="json"),
            calculation=lines,
            requested_cents=requested,
            applied_at=now,
        )
        application._step(now, f"library:{library}", "applied", f"{requested} cents")
        application.events.append(
            SubsidyApplied(
                **application._facts(),
                requested_cents=requested,
                ido_opening_date=cmd.ido_opening_date,
                applied_at=now,
            )
        )
        return application

    def reject(self, reason: str, *, by: str, now: datetime) -> None:
        self._undecided()
        self.status, self.decision_reason = "rejected", reason
        self._step(now, by, "rejected", reason)
        self.events.append(SubsidyRejected(**self._facts(), reason=reason, decided_at=now))

    def grant(
        self,
        amount_cents: int | None,
        reason: str,
        *,
        by: str,
        now: datetime,
        scheme: Scheme,
        budget: Budget,
        conditions: LibraryConditions,
    ) -> None:
        """Grant all or part: reserve it under the ceiling, pay the advance, and the final
        tranche at once if the library already meets the scheme's conditions."""
        self._undecided()
        amount = amount_cents or self.requested_cents
        if amount > self.requested_cents:
            raise Refused("amount_cents", "a grant cannot exceed the amount the scheme's rules give")
        budget.reserve(amount)
        self.status, self.granted_cents, self.decision_reason = "granted", amount, reason
        self._step(now, by, "granted", f"{amount} cents: {reason}")
        self.events.append(
            SubsidyGranted(
                **self._facts(),
                granted_cents=amount,
                partial=amount < self.requested_cents,
                reason=reason,
                decided_at=now,
            )
        )
        self._pay("advance", advance(amount, scheme.advance_percent), now)
        self.settle(scheme, conditions, now=now)

    def settle(self, scheme: Scheme, conditions: LibraryConditions, *, now: datetime) -> bool:
        """Pay the final tranche of a grant whose conditions are met; once."""
        if self.status != "granted" or self.granted_cents is None or not conditions.all_met(scheme.conditions):
            return False
        return self._pay("final", self.granted_cents - advance(self.granted_cents, scheme.advance_percent), now)

    def renew(self, cmd: Renew, *, scheme: Scheme | None, budget: Budget, now: datetime) -> bool:
        """The extension year, confirmed before its deadline: reserved under the ceiling and
        paid. False when it was renewed before (the same answer again)."""
        extension = scheme.extension if scheme is not None else None
        if self.status != "granted" or extension is None:
            raise Refused("application", "only a granted application of a scheme with an extension can be renewed")
        if now > extension.deadline:
            raise Refused("signed_on", f"the renewal deadline was {extension.deadline.isoformat()[:10]}")
        if self.renewal is not None:
            return False
        amount = cents(extension.rate * self.inhabitants)
        budget.reserve(amount)
        self.renewal = Renewal(
            year=extension.year, amount_cents=amount, signed_by=cmd.signed_by, signed_on=cmd.signed_on
        )
        self._step(now, f"library:{self.library}", "renewed", f"{amount} cents")
        self.events.append(
            SubsidyRenewed(
                **self._facts(), year=extension.year, amount_cents=amount, signed_by=cmd.signed_by, renewed_at=now
            )
        )
        self._pay("extension", amount, now)
        return True

    def paid(self, tranche: str) -> bool:
        return any(p.tranche == tranche for p in self.payments)

    def _undecided(self) -> None:
        if self.status != "applied":
            raise AlreadyDecided(self.status)

    def _pay(self, tranche: Literal["advance", "final", "extension"], amount: int, now: datetime) -> bool:
        if amount <= 0 or self.paid(tranche):
            return False
        self.payments.append(Payment(tranche=tranche, amount_cents=amount, paid_at=now))
        self.events.append(SubsidyPaid(**self._facts(), tranche=tranche, amount_cents=amount, paid_at=now))
        return True

    def _step(self, at: datetime, by: str, action, detail: str) -> None:
        self.trail.append(TrailEntry(at=at, by=by, action=action, detail=detail))

    def _facts(self) -> dict[str, str]:
        return {"application_id": self.id, "scheme": self.scheme, "library": self.library}
