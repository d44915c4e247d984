"""An IDO location of a library: registered once, with its opening hours and staffing, so a
help request can name where the visitor was helped and the KB can follow the rollout."""

import re
from datetime import datetime, time
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


CLOCK = r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?$"


def _clock_text(value: object) -> object:
    """Only "HH:MM" (or "HH:MM:SS") text: pydantic would also take a number of seconds or a time
    with an offset, and opening hours are wall-clock times at the location."""
    if isinstance(value, time):
        return value
    if not isinstance(value, str) or not re.fullmatch(CLOCK, value):
        raise ValueError('a time of day as "HH:MM"')
    return value


# A wall-clock time at the location ("09:30"): no offset, so not JSON Schema's "time" format.
ClockTime = Annotated[
    time,
    BeforeValidator(_clock_text),
    WithJsonSchema({"type": "string", "pattern": CLOCK, "examples": ["09:30"]}),
]


class OpeningHours(_Strict):
    day: Day
    opens: ClockTime
    closes: ClockTime

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
