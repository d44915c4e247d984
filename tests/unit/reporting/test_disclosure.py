"""Complementary suppression (issue 10.2): whatever a reader combines from the published figures
of a universe (every grouping, for each library and for all together, and the totals), no hidden
figure can be worked back. The reader is a linear program (tests/attacker.py)."""

import random
from collections import Counter
from collections.abc import Hashable, Mapping

import pytest

from services.reporting.domain import universes
from services.reporting.domain.disclosure import ALL, TOTAL, Family, Protected, protect
from tests.attacker import Reader

THRESHOLD = 5
THEMES = {"digid": "gov", "toeslagen": "gov", "belastingen": "gov", "boeken": "lib", "overig": "other"}
SUBTHEMES = {"digid": ["aanvragen", "app", "machtiging", ""]}
LEAVES = [(t, s) for t in THEMES for s in SUBTHEMES.get(t, [""])]


def question_families(units: list[tuple[str, tuple[str, str], str]]) -> dict[str, Family]:
    """Units as (library, (theme, subtheme), channel), as the monitor classifies questions."""
    by_leaf: dict = {}
    by_channel: dict = {}
    for library, leaf, channel in units:
        by_leaf[(library, leaf)] = by_leaf.get((library, leaf), 0) + 1
        by_channel[(library, channel)] = by_channel.get((library, channel), 0) + 1
    leaves: dict[str, Mapping[Hashable, Hashable]] = {
        "theme": {leaf: leaf[0] for leaf in LEAVES},
        "category": {leaf: THEMES[leaf[0]] for leaf in LEAVES},
        "subtheme": {leaf: leaf[1] or "(geen)" for leaf in LEAVES},
    }
    channels: dict[Hashable, Hashable] = {c: c for c in ("walk_in", "phone", "email")}
    return {"themes": Family(by_leaf, leaves), "channels": Family(by_channel, {"channel": channels})}


def read(protected: Protected, families: dict[str, Family]) -> Reader:
    """Everything a reader of these figures is shown, as facts about the interior counts."""
    reader = Reader(THRESHOLD)
    libraries = sorted({library for f in families.values() for library, _ in f.cells})
    variables = {
        name: {(library, leaf) for library in libraries for leaf in {leaf for _, leaf in f.cells}}
        for name, f in families.items()
    }
    for name, family in families.items():
        for grouping, group_of in family.groupings.items():
            rows = [ALL] if grouping in family.national_only else [ALL, *libraries]
            for row in rows:
                if protected.is_withheld(name, row):
                    continue  # nothing shown, nothing to read
                for group, shown in protected.counts(name, grouping, row).items():
                    members = [
                        (name, library, leaf)
                        for library, leaf in variables[name]
                        if (row in (ALL, library)) and str(group_of.get(leaf)) == group
                    ]
                    reader.sum_of(f"{name}.{grouping}[{row}]={group}", members, shown)
    first, *others = families
    for library in libraries:
        mine = [(first, library, leaf) for lib, leaf in variables[first] if lib == library]
        for other in others:
            reader.same(mine, [(other, library, leaf) for lib, leaf in variables[other] if lib == library])
        total = protected.totals(library).get(library)
        if total is not None:
            reader.sum_of(f"total[{library}]", mine, total)
    grand = protected.figure(TOTAL, TOTAL, ALL, "")
    reader.sum_of("total", [(first, library, leaf) for library, leaf in variables[first]], grand)
    return reader


def random_units(rng: random.Random, libraries: int, units: int) -> list:
    weights = [rng.random() ** 3 for _ in range(libraries)]
    names = [f"lib{i}" for i in range(libraries)]
    return [
        (
            rng.choices(names, weights)[0],
            rng.choice(LEAVES),
            rng.choices(["walk_in", "phone", "email"], [6, 2, 1])[0],
        )
        for _ in range(units)
    ]


@pytest.mark.parametrize("seed", range(12))
def test_no_hidden_figure_can_be_worked_back(seed):
    rng = random.Random(seed)
    families = question_families(random_units(rng, libraries=rng.randint(2, 6), units=rng.randint(20, 120)))
    protected = protect(families, THRESHOLD)
    assert any(protected.withheld.values()), "the data has small figures to hide"
    assert read(protected, families).worked_back() == {}


def test_a_librarys_breakdown_with_a_small_figure_is_withheld_and_so_is_a_second_one():
    """Library a's themes hold a 3: its row is withheld; a lone withheld row would be national
    minus the shown rows, so the smallest other library's row is withheld too."""
    units = [("a", ("toeslagen", ""), "walk_in")] * 3 + [("a", ("boeken", ""), "walk_in")] * 9
    units += [("b", ("toeslagen", ""), "walk_in")] * 7 + [("b", ("boeken", ""), "walk_in")] * 8
    units += [("c", ("toeslagen", ""), "phone")] * 20 + [("c", ("boeken", ""), "phone")] * 30
    families = question_families(units)
    protected = protect(families, THRESHOLD)
    assert protected.counts("themes", "theme", "a") == {} and protected.is_withheld("themes", "a")
    assert protected.is_withheld("themes", "b") and not protected.is_withheld("themes", "c")
    assert protected.counts("themes", "theme", "c") == {"boeken": 30, "toeslagen": 20}
    assert protected.counts("themes", "theme", ALL) == {"boeken": 47, "toeslagen": 30}
    assert protected.counts("channels", "channel", "a") == {"walk_in": 12}, "no small figure by channel"
    assert read(protected, families).worked_back() == {}


def test_the_old_rule_alone_gives_small_figures_back():
    """The reader finds something to work back when only the small figures are hidden: the test
    can fail."""
    units = [("a", ("toeslagen", ""), "walk_in")] * 3 + [("a", ("boeken", ""), "walk_in")] * 9
    families = question_families(units + [("b", ("boeken", ""), "phone")] * 6)
    protected = protect(families, THRESHOLD)
    protected.hidden = {c for c, v in protected.values.items() if 0 < v < THRESHOLD}
    protected.withheld = {}
    assert read(protected, families).worked_back()


def test_fewer_units_than_the_threshold_show_nothing_but_that():
    families = question_families([("a", ("digid", "app"), "phone")] * 2 + [("b", ("overig", ""), "phone")])
    protected = protect(families, THRESHOLD)
    assert protected.counts("themes", "theme", ALL) == {} and protected.totals() == {}


def monitor_year(rng: random.Random) -> dict[str, Family]:
    """A small year as reporting builds it (universes.questions): themes, channels, locations,
    months and how each question was answered, down to referral statuses."""
    libraries = [f"l{i}" for i in range(rng.randint(1, 5))]
    cube: Counter = Counter()
    answers: Counter = Counter()
    referrals: Counter = Counter()
    for _ in range(rng.randint(3, 40)):
        library, month = rng.choice(libraries), f"2026-0{rng.randint(1, 3)}"
        theme, sub = rng.choice(LEAVES)
        cube[(library, rng.choice(["c", ""]), month, rng.choice(["walk_in", "phone"]), THEMES[theme], theme, sub)] += 1
        if rng.random() < 0.5:
            referrals[
                (
                    library,
                    rng.choice(["uwv", "svb", "duo"]),
                    rng.choice(["sent", "accepted"]),
                    rng.random() < 0.2,
                    month,
                )
            ] += 1
        else:
            answers[(library, rng.choice(["informed", "helped_at_desk"]), "")] += 1
    return universes.questions(
        records(cube, "library", "location", "month", "channel", "category", "theme", "subtheme"),
        records(answers, "library", "outcome", "organisation"),
        records(referrals, "library", "agency", "status", "overdue", "month"),
    )


def records(counts: Counter, *columns: str) -> list[dict]:
    """Counted keys as the rows a query gives."""
    return [dict(zip(columns, key, strict=True), n=n) for key, n in counts.items()]


@pytest.mark.parametrize("seed", range(40))
def test_no_figure_of_a_small_monitor_year_can_be_worked_back(seed):
    """Few libraries and few questions, the hard case: rows, totals and national figures."""
    families = monitor_year(random.Random(seed))
    protected = protect(families, THRESHOLD)
    assert protected.tiny or read(protected, families).worked_back() == {}


def test_when_every_total_is_small_one_is_shown_as_x():
    """Two libraries with 4 questions each: '<5' and '<5' adding up to 8 would give both back."""
    families = question_families([("a", ("boeken", ""), "phone")] * 4 + [("b", ("boeken", ""), "phone")] * 4)
    protected = protect(families, THRESHOLD)
    assert sorted(protected.totals().values(), key=str) == ["<5", "x"]
    assert read(protected, families).worked_back() == {}
