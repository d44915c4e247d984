"""The universes the KB's and agencies' figures are cut from (see disclosure.py): a year of
questions classified every way the monitor shows them, a year of one agency's referrals, and a
year of visits by how they were helped. Pure: rows in, families out."""

from collections import Counter
from collections.abc import Iterable
from typing import Any

from services.reporting.domain.disclosure import Family

NONE = "(geen)"  # no location, subtheme or receiving organisation
OPEN = "(open)"  # a question not answered yet (routing has not decided)
REFERRED = "referred"


def questions(
    cube: Iterable[Any], answers: Iterable[Any] | None = None, referrals: Iterable[Any] | None = None
) -> dict[str, Family]:
    """Questions of a year per library: by theme/subtheme (published by theme, category and
    subtheme), channel, location and month; with `answers` and `referrals` (the KB's view) also
    by how they were answered, down to each referral's status."""
    themes: Counter = Counter()
    channels: Counter = Counter()
    locations: Counter = Counter()
    months: Counter = Counter()
    for r in cube:
        library, n = r["library"], r["n"]
        themes[(library, (r["category"], r["theme"], r["subtheme"]))] += n
        channels[(library, r["channel"])] += n
        locations[(library, f"{library}:{r['location']}" if r["location"] else NONE)] += n
        months[(library, r["month"])] += n
    leaves = {leaf for _, leaf in themes}
    families = {
        "themes": Family(
            dict(themes),
            {
                "theme": {leaf: leaf[1] for leaf in leaves},
                "category": {leaf: leaf[0] for leaf in leaves},
                "subtheme": {leaf: leaf[2] or NONE for leaf in leaves},
            },
        ),
        "channels": _identity(channels, "channel"),
        "locations": _identity(locations, "location"),
        "months": _identity(months, "month"),
    }
    if answers is not None and referrals is not None:
        families["outcomes"] = _outcomes(months, answers, referrals)
    return families


def _outcomes(months: Counter, answers: Iterable[Any], referrals: Iterable[Any]) -> Family:
    """How each question was answered; a referred one by its referral's status and whether it is
    overdue (statuses are published for all libraries together only). Questions not answered yet
    are `(open)`, so that every library's row adds up to its questions."""
    cells: Counter = Counter()
    for r in answers:
        cells[(r["library"], (r["outcome"], r["organisation"], "", False))] += r["n"]
    for r in referrals:
        cells[(r["library"], (REFERRED, r["agency"], r["status"], r["overdue"]))] += r["n"]
    totals: Counter = Counter()
    for (library, _), n in months.items():
        totals[library] += n
    answered: Counter = Counter()
    for (library, _), n in cells.items():
        answered[library] += n
    for library, total in totals.items():
        if total > answered[library]:
            cells[(library, (OPEN, "", "", False))] = total - answered[library]
    # Answers can run ahead of the questions for a moment (another topic): then the rows do not
    # add up to the totals, and are not protected as if they did.
    consistent = all(answered[library] <= totals[library] for library in answered)
    return _referral_groupings(cells, totals=consistent)


def agency_referrals(referrals: Iterable[Any], agency: str) -> dict[str, Family]:
    """One agency's referrals of a year per library: by status (for all libraries together) and
    by the month they were sent."""
    cells: Counter = Counter()
    months: Counter = Counter()
    for r in referrals:
        cells[(r["library"], (REFERRED, agency, r["status"], r["overdue"]))] += r["n"]
        months[(r["library"], r["month"])] += r["n"]
    return {"outcomes": _referral_groupings(cells, totals=True), "months": _identity(months, "month")}


def help_given(rows: Iterable[Any]) -> dict[str, Family]:
    """Visits of a year by how the visitor was helped (one visit can count under several: no
    totals)."""
    cells: Counter = Counter()
    for r in rows:
        cells[(r["library"], r["help"])] += r["n"]
    family = _identity(cells, "help")
    return {"help": Family(family.cells, family.groupings, totals=False)}


def _referral_groupings(cells: Counter, *, totals: bool) -> Family:
    leaves = {leaf for _, leaf in cells}
    return Family(
        dict(cells),
        {
            "outcome": {leaf: leaf[0] for leaf in leaves},
            "organisation": {leaf: leaf[1] or NONE for leaf in leaves},
            "status": {leaf: f"{leaf[1]}:{leaf[2]}" for leaf in leaves if leaf[0] == REFERRED},
            # Referrals per organisation (an organisation also counts questions answered with
            # information about it), and the overdue ones: the overdue share.
            "referrals": {leaf: leaf[1] for leaf in leaves if leaf[0] == REFERRED},
            "overdue": {leaf: leaf[1] for leaf in leaves if leaf[0] == REFERRED and leaf[3]},
        },
        national_only=frozenset({"status", "referrals", "overdue"}),
        totals=totals,
    )


def _identity(cells: Counter, grouping: str) -> Family:
    return Family(dict(cells), {grouping: {leaf: leaf for _, leaf in cells}})
