"""Value types the services' APIs share, pure (no I/O)."""

from typing import Annotated

from pydantic import AwareDatetime, BeforeValidator


def _timestamp_text(value: object) -> object:
    """An RFC 3339 timestamp is text. pydantic would also read a bare number as seconds since
    1970 ("0.5" as a moment in 1970), which no caller means: refused."""
    if isinstance(value, str) and value.strip().lstrip("+-").replace(".", "", 1).isdigit():
        raise ValueError("a timestamp as RFC 3339 text, e.g. 2026-12-06T09:30:00+01:00")
    if isinstance(value, int | float):
        raise ValueError("a timestamp as RFC 3339 text, e.g. 2026-12-06T09:30:00+01:00")
    return value


# A moment with its offset, given as RFC 3339 text.
Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_text)]
