"""An IDO location of a library: registered once, with its opening hours and staffing, so a
help request can name where the visitor was helped and the KB can follow the rollout."""

from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OpeningHours(_Strict):
    day: Day
    opens: time
    closes: time

    @model_validator(mode="after")
    def _opens_before_closing(self) -> "OpeningHours":
        if self.opens >= self.closes:
            raise ValueError("opens must be before closes")
        return self


class Staffing(_Strict):
    staff: int = Field(0, ge=0, le=500)
    volunteers: int = Field(0, ge=0, le=500)


class IdoLocation(_Strict):
    """The body of PUT /v1/locations/{code}."""

    name: str = Field(min_length=1, max_length=200)
    street: str | None = Field(default=None, max_length=200)
    postcode: str = Field(pattern=r"^[1-9][0-9]{3} ?[A-Z]{2}$")
    city: str = Field(min_length=1, max_length=100)
    municipality: str | None = Field(default=None, max_length=100)
    opening_hours: list[OpeningHours] = Field(default=[], max_length=21)
    staffing: Staffing = Staffing()

    def hours_per_week(self) -> float:
        minutes = sum(
            (datetime.combine(datetime.min, h.closes) - datetime.combine(datetime.min, h.opens)).seconds / 60
            for h in self.opening_hours
        )
        return round(minutes / 60, 2)


class RegisteredLocation(BaseModel):
    code: Slug
    library: str
    location: IdoLocation
    registered_at: datetime
