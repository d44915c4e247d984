"""How events become read models: pure functions from an event's data to the rows and counters
to write. Counters are keyed by their dimensions, so an update is an `$inc` upsert by `_id`."""

from dataclasses import dataclass
from datetime import datetime

from shared import reference

# The national-coverage goal: IDO locations open at the end of each year (KB rollout figures).
COVERAGE_GOAL = {2019: 29, 2020: 73, 2021: 439, 2022: 664}
# Shown instead of a count below the threshold outside the library itself.
SUPPRESSED = "<5"


@dataclass(frozen=True)
class Increment:
    """Add `amount` to the counter identified by `measure` and `dimensions`."""

    measure: str
    dimensions: tuple[tuple[str, str], ...]
    amount: int = 1

    @property
    def key(self) -> str:
        return self.measure + "|" + "|".join(f"{k}={v}" for k, v in self.dimensions)


def month(moment: datetime) -> str:
    return moment.strftime("%Y-%m")


def question_rows(data) -> list[dict]:
    """One row per question, as on the KB's registration form (no free text, no contact)."""
    return [
        {
            "_id": f"{data.help_request_id}:{q.index}",
            "help_request_id": data.help_request_id,
            "question": q.index + 1,
            "date": data.registered_at.date().isoformat(),
            "month": month(data.registered_at),
            "library": data.library,
            "location": data.location or "",
            "channel": data.channel,
            "category": q.category,
            "theme": q.theme,
            "subtheme": q.subtheme or "",
            "help_given": ";".join(data.help_given),
            "duration_minutes": data.duration_minutes or "",
            "outcome": "",
            "referred_to": "",
        }
        for q in data.questions
    ]


def help_request_increments(data) -> list[Increment]:
    m = month(data.registered_at)
    increments = [Increment("visits", (("month", m), ("library", data.library), ("channel", data.channel)))]
    for q in data.questions:
        increments.append(
            Increment(
                "questions",
                (
                    ("month", m),
                    ("library", data.library),
                    ("location", data.location or ""),
                    ("channel", data.channel),
                    ("category", q.category),
                    ("theme", q.theme),
                    ("subtheme", q.subtheme or ""),
                ),
            )
        )
    increments += [
        Increment("help_given", (("month", m), ("library", data.library), ("help", help_given)))
        for help_given in data.help_given
    ]
    return increments


def routing_increments(data, at: datetime) -> list[Increment]:
    """Per question routed: where it went (the receiving organisation, or none) and how."""
    return [
        Increment(
            "outcomes",
            (
                ("month", month(at)),
                ("library", data.library),
                ("organisation", d.organisation or ""),
                ("outcome", d.outcome),
            ),
        )
        for d in data.decisions
    ]


def agency_themes(agency: str) -> set[str]:
    """The themes whose questions go to this agency by default: its domain."""
    return {
        t.code
        for t in reference.THEMES.values()
        if t.default_organisation == agency or agency in set(t.subthemes.values())
    }


def suppress(count: int, threshold: int) -> int | str:
    return SUPPRESSED if 0 < count < threshold else count
