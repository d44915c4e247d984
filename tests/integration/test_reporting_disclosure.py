"""Issue 10.2: no suppressed figure can be worked back. A year of realistic help requests (five
libraries of very different size, every theme, referrals with statuses) is projected; then, for
KB staff and for every agency, the test asks every monitor view by every dimension, for all
libraries and for each one, and hands everything it was shown to a reader who solves linear
programs (tests/attacker.py) for the value of each "<5" and "x". None may come out fixed.

What the reader knows besides the answers: the taxonomy (theme -> category, subthemes), that a
key missing from an answer is zero, and that every classification counts the same questions
(so each library's rows add up alike, and to its total)."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from shared import reference
from shared.events import catalog
from tests.attacker import Reader
from tests.integration.test_reporting_api import event, project_all, reporting_api, routed, visit

pytestmark = pytest.mark.infra

YEAR = 2026
LIBRARIES = {"groot": 40, "middel": 14, "klein": 6, "dorp": 3, "nieuw": 1}  # weights
CHANNELS = ["walk_in", "phone", "email"]
MONTHS = [f"{YEAR}-{m:02d}" for m in range(1, 13)]
OUTCOMES = ["informed", "helped_at_desk", "course_advised"]
STATUSES = ["accepted", "got_help", "could_not_contact", "no_capacity"]


def leaves() -> list[tuple[str, str, str]]:
    """(category, theme, subtheme or '') as the taxonomy has them."""
    out = []
    for code, theme in reference.THEMES.items():
        category = "other" if code == "overig" else "digital_government"
        out += [(category, code, "")] + [(category, code, s) for s in theme.subthemes]
    return out


def organisation_of(theme: str, subtheme: str) -> str | None:
    spec = reference.THEMES[theme]
    return (spec.subthemes.get(subtheme) if subtheme else None) or spec.default_organisation


def year_of_requests(seed: int = 7) -> list:
    """Events for a year of visits: questions, how they were answered, referrals, statuses."""
    rng = random.Random(seed)
    events: list = []
    names, weights = list(LIBRARIES), list(LIBRARIES.values())
    for i in range(160):
        hr, library = f"hr-{i}", rng.choices(names, weights)[0]
        on = date(YEAR, rng.randint(1, 11), rng.randint(1, 28))
        questions = [rng.choice(leaves()) for _ in range(rng.choice([1, 1, 2]))]
        events.append(
            visit(
                hr,
                library,
                on,
                [(c, t, s or None) for c, t, s in questions],
                channel=rng.choice(CHANNELS),
                location=rng.choice(["centrum", "noord", None]),
                help_given=rng.sample(["informed", "coached", "helped_at_desk"], rng.randint(1, 2)),
            )
        )
        decisions: list[tuple[str, str | None]] = []
        sent = datetime(on.year, on.month, on.day, 11, tzinfo=UTC)
        for index, (_, theme, subtheme) in enumerate(questions):
            agency = organisation_of(theme, subtheme)
            if agency in reference.AGENCIES and rng.random() < 0.7:
                decisions.append(("referred", agency))
                ref = f"ref-{i}-{index}"
                data = catalog.ReferredToAgency(
                    referral_id=ref, help_request_id=hr, agency=agency, library=library, theme=theme
                )
                events.append(event(data, at=sent))
                if rng.random() < 0.8:
                    status = catalog.ReferralStatusChanged(
                        referral_id=ref,
                        help_request_id=hr,
                        question_index=index,
                        agency=agency,
                        library=library,
                        status=rng.choice(STATUSES),
                        changed_at=sent + timedelta(hours=rng.randint(1, 90)),
                        sequence=1,
                    )
                    events.append(event(status))
            else:
                decisions.append((rng.choice(OUTCOMES), None))
        events.append(routed(hr, library, *decisions))
    return events


@pytest.fixture(scope="module")
def year_events():
    return year_of_requests()


@pytest.fixture
async def api(migrated, year_events):
    db = await migrated("reporting")
    await project_all(db, year_events)
    async with reporting_api(db) as get:
        yield get


class Monitor:
    """The reader's model: unknown counts per library and leaf, one set per classification."""

    def __init__(self) -> None:
        self.reader = Reader(threshold=5)
        self.families: dict[str, set] = {}
        self.withheld = 0

    def cell(self, family: str, library: str, leaf) -> tuple:
        self.families.setdefault(family, set()).add(leaf)
        return (family, library, leaf)

    def shown(self, name: str, family: str, libraries: list[str], leaves: list, figure) -> None:
        self.reader.sum_of(name, [self.cell(family, lib, leaf) for lib in libraries for leaf in leaves], figure)

    def same_units(self) -> None:
        """Every classification counts the same questions per library."""
        first, *others = sorted(f for f in self.families if f != "help")
        for library in LIBRARIES:
            mine = [self.cell(first, library, leaf) for leaf in self.families[first]]
            for other in others:
                self.reader.same(mine, [self.cell(other, library, leaf) for leaf in self.families[other]])


# by -> (family, the leaves of a group); the reader's own reading of each answer's keys.
def theme_groups(by: str, themes: set[str] | None) -> dict[str, list]:
    groups: dict[str, list] = {}
    for leaf in leaves():
        if themes is not None and leaf[1] not in themes:
            continue
        key = {"theme": leaf[1], "category": leaf[0], "subtheme": leaf[2] or "(geen)"}[by]
        groups.setdefault(key, []).append(leaf)
    return groups


def outcome_leaves() -> list[tuple]:
    referred = [("referred", a, s) for a in reference.AGENCIES for s in ["sent", *STATUSES]]
    return referred + [(o, "", "") for o in OUTCOMES] + [("(open)", "", "")]


def plain(values: list[str]) -> dict[str, list]:
    return {v: [v] for v in values}


def groups_for(by: str, themes: set[str] | None) -> tuple[str, dict[str, list]]:
    if by in ("theme", "category", "subtheme"):
        return "themes", theme_groups(by, themes)
    if by == "channel":
        return "channels", plain(CHANNELS)
    if by == "month":
        return "months", plain(MONTHS)
    if by == "location":
        locations = [f"{lib}:{code}" for lib in LIBRARIES for code in ("centrum", "noord")] + ["(geen)"]
        return "locations", plain(locations)
    if by == "organisation":
        out: dict[str, list] = {}
        for leaf in outcome_leaves():
            out.setdefault(leaf[1] or "(geen)", []).append(leaf)
        return "outcomes", out
    out = {}
    for leaf in outcome_leaves():
        out.setdefault(leaf[0], []).append(leaf)
    return "outcomes", out


async def read_everything(api, who: str, themes: set[str] | None) -> Monitor:
    monitor = Monitor()
    views = [("/v1/monitor/questions", by) for by in ("theme", "category", "subtheme", "channel", "location", "month")]
    if who == "kb":
        views += [("/v1/monitor/outcomes", by) for by in ("organisation", "outcome")]
    for path, by in views:
        family, groups = groups_for(by, themes)
        for library in [None, *LIBRARIES]:
            status, answer = await api(path, who, by=by, library=library) if library else await api(path, who, by=by)
            assert status == 200, answer
            counts = answer["counts"]
            assert set(counts) <= set(groups), f"{path} by {by}: unexpected keys {set(counts) - set(groups)}"
            if answer["withheld"]:
                assert library and counts == {}, "only a library's breakdown is withheld, whole"
                monitor.withheld += 1
                continue
            rows = [library] if library else list(LIBRARIES)
            for key, members in groups.items():  # a missing key is a zero
                # a location belongs to its library only: elsewhere it is a zero anyway
                monitor.shown(f"{path}?by={by}&library={library}:{key}", family, rows, members, counts.get(key, 0))
        for library in [None, *LIBRARIES]:
            if library is None:
                _, total = await api("/v1/monitor/questions", who, by="library")
            else:
                _, total = await api("/v1/monitor/questions", who, by="library", library=library)
            for lib in [library] if library else LIBRARIES:
                first = "themes"
                members = [leaf for group in theme_groups("theme", themes).values() for leaf in group]
                monitor.shown(f"total[{lib}]", first, [lib], members, total["counts"].get(lib, 0))
    if who == "kb":
        _, referrals = await api("/v1/monitor/referrals", who)
        for agency in reference.AGENCIES:
            for status in ["sent", *STATUSES]:
                shown = referrals.get(agency, {}).get("statuses", {}).get(status, 0)
                monitor.shown(
                    f"referrals[{agency}:{status}]", "outcomes", list(LIBRARIES), [("referred", agency, status)], shown
                )
    # How visitors were helped: another unit (visits, several ways each), its own classification.
    for library in [None, *LIBRARIES]:
        _, answer = (
            await api("/v1/monitor/help-given", who, library=library)
            if library
            else await api("/v1/monitor/help-given", who)
        )
        rows = [library] if library else list(LIBRARIES)
        if answer["withheld"]:
            continue
        for help_kind in ("informed", "coached", "helped_at_desk"):
            monitor.shown(f"help[{library}]:{help_kind}", "help", rows, [help_kind], answer["counts"].get(help_kind, 0))
    monitor.same_units()
    return monitor


async def test_no_figure_the_kb_is_shown_gives_a_hidden_one_back(api):
    monitor = await read_everything(api, "kb", None)
    assert monitor.withheld > 10 and monitor.reader.hidden, "the year has small figures to hide"
    assert monitor.reader.worked_back() == {}


@pytest.mark.parametrize("agency", ["belastingdienst", "uwv", "duo"])
async def test_no_figure_an_agency_is_shown_gives_a_hidden_one_back(api, agency):
    themes = {
        code
        for code, t in reference.THEMES.items()
        if t.default_organisation == agency or agency in t.subthemes.values()
    }
    monitor = await read_everything(api, f"agency:{agency}", themes)
    assert monitor.reader.worked_back() == {}


async def test_rates_are_hidden_with_the_counts_they_are_made_of(api):
    """A rate times its base gives its count: shown only when that count may be shown."""
    _, referrals = await api("/v1/monitor/referrals")
    assert any(f["overdue_share"] == "x" for f in referrals.values())
    for agency, figures in referrals.items():
        share = figures["overdue_share"]
        statuses = list(figures["statuses"].values())
        if share != "x" and all(isinstance(n, int) for n in statuses):  # the share of the statuses' sum
            overdue = round(share * sum(statuses))
            assert overdue == 0 or overdue >= 5, f"{agency}: {overdue} overdue given away by the share"
    _, courses = await api("/v1/monitor/courses")
    for course, figures in courses.items():
        if not isinstance(figures["enrolled"], int):
            assert figures["fill_rate"] in ("x", None), course


async def test_the_reader_works_figures_back_when_only_small_ones_are_hidden(api, monkeypatch):
    """The rule before issue 10.2 ("<5" for small figures, nothing else): the same reader finds
    figures to work back, so the tests above can fail."""
    from services.reporting.domain import disclosure
    from services.reporting.entrypoints import http as reporting_http

    def small_ones_only(families, threshold):
        everything = disclosure.exact(families)
        hidden = {c for c, v in everything.values.items() if 0 < v < threshold}
        return disclosure.Protected(everything.values, hidden, threshold, libraries=everything.libraries)

    monkeypatch.setattr(reporting_http, "protect", small_ones_only)
    monitor = await read_everything(api, "kb", None)
    assert monitor.reader.worked_back()
