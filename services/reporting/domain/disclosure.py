"""Disclosure control for the figures the KB and agencies see: small counts are hidden, and so is
every other figure that would let a reader work a hidden one back.

The model. A *universe* is a set of units (questions of one year, visits of one year, ...) counted
per library in one or more *families*: classifications of the same units (by theme, by channel,
by month, ...). A family's interior cells are (library, leaf) counts; what is published are sums
of leaves (a *grouping*: theme, category and subtheme are groupings of theme/subtheme leaves),
per library and for all libraries together, and, shared by all families of the universe, the
total per library and the grand total. Every answer of the API is cut from these cells.

The rules, each with the reason it is safe:
1. A library's breakdown in a family is shown whole or *withheld* whole: withheld when any of
   its figures is below the threshold. Shown rows then hold no small figure at all.
2. A library's total below the threshold is shown as "<5"; then one more total is hidden ("x")
   and that library's breakdowns are withheld (if every total is small, the largest is "x").
   Moving a unit of one leaf between two libraries whose totals and breakdowns are hidden
   changes no visible figure, so no hidden total is fixed.
3. Every family has no withheld row or at least two, and for every withheld row and every
   group it has units in, another withheld row has units outside that group. Then a rectangle
   (one unit from leaf a to b in one row, from b to a in the other) changes that group's count
   in the row and no published figure: no withheld figure can be worked back, from the national
   ones or anything else.
4. A national figure below the threshold is shown as "<5", and for each a unit can be moved
   between leaves inside a withheld row (which publishes nothing), or inside any row between
   leaves only national figures tell apart (a referral's status), such that every national
   figure that changes is hidden as well ("x" where needed): then it cannot be worked back
   from the grand total or the other groupings. Where too few units can move for that (a year
   with very few), the family's national breakdown is withheld too.
A reader who knows all answers therefore cannot fix any hidden figure (the tests hand them to a
linear-programming reader that tries). Pure and deterministic: same counts, same answers."""

from collections import defaultdict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

ALL = "*"  # the row of figures for all libraries together
TOTAL = "(totaal)"  # the family and grouping name of the shared totals
COMPLEMENTARY = "x"  # a figure hidden so that a small one cannot be worked back from it
CANDIDATES = 12  # leaves tried per national move: enough in practice, bounded in time

Leaf = Hashable
Cell = tuple[str, str, str, Hashable]  # (family, grouping, row, group)


@dataclass(frozen=True)
class Family:
    """One classification of a universe's units: counts per (library, leaf), published through its
    groupings (leaf -> group; a leaf mapped to None is in no group of that grouping)."""

    cells: Mapping[tuple[str, Leaf], int]
    groupings: Mapping[str, Mapping[Leaf, Hashable]]
    national_only: frozenset[str] = frozenset()  # groupings published for all libraries only
    totals: bool = True  # its rows add up to the universe's totals per library


def small(threshold: int) -> str:
    return f"<{threshold}"


@dataclass
class Protected:
    """A universe's published cells with what to hide; answers are cut from it."""

    values: dict[Cell, int]
    hidden: set[Cell]
    threshold: int
    withheld: dict[str, set[str]] = field(default_factory=dict)  # family -> libraries
    open_ended: set[Cell] = field(default_factory=set)  # small, but shown as "x"
    tiny: bool = False  # fewer units than the threshold in all: nothing is shown but that
    libraries: list[str] = field(default_factory=list)

    def figure(self, family: str, grouping: str, row: str, group: Hashable) -> int | str:
        cell = (family, grouping, row, group)
        value = self.values.get(cell, 0)
        if value and (self.tiny or self.is_withheld(family, row)):
            return COMPLEMENTARY
        if cell not in self.hidden:
            return value
        return small(self.threshold) if value < self.threshold and cell not in self.open_ended else COMPLEMENTARY

    def is_withheld(self, family: str, row: str) -> bool:
        """A library's breakdown in this family is not shown (or, in a year with very few units,
        the national one; everything, if the universe is tiny)."""
        return self.tiny or row in self.withheld.get(family, set())

    def counts(self, family: str, grouping: str, row: str) -> dict[str, int | str]:
        """The nonzero figures of one grouping for one row (a library or ALL), by group; empty
        when withheld."""
        if self.is_withheld(family, row):
            return {}
        return {
            str(group): self.figure(family, grouping, row, group)
            for (f, g, r, group) in self.values
            if (f, g, r) == (family, grouping, row)
        }

    def totals(self, library: str | None = None) -> dict[str, int | str]:
        """The total per library (all, or the one asked for)."""
        if self.tiny:
            return {}
        rows = [library] if library is not None else self.libraries
        return {r: self.figure(TOTAL, TOTAL, r, "") for r in rows if (TOTAL, TOTAL, r, "") in self.values}


def protect(families: Mapping[str, Family], threshold: int) -> Protected:
    return _Protection(families, threshold).run()


def exact(families: Mapping[str, Family]) -> Protected:
    """The same cells with nothing hidden: for figures the caller holds anyway."""
    protection = _Protection(families, 1)
    return Protected(dict(protection.values), set(), 0, libraries=protection.libraries)


class _Protection:
    def __init__(self, families: Mapping[str, Family], threshold: int) -> None:
        self.families = dict(sorted(families.items()))
        self.threshold = threshold
        # The family whose rows give the published totals (all totals-families add up alike).
        self.counter = next((name for name, f in self.families.items() if f.totals), None)
        self.values: dict[Cell, int] = defaultdict(int)
        self.leaves: dict[tuple[str, str], dict[Leaf, int]] = defaultdict(dict)  # (family, library) -> leaf counts
        for name, family in self.families.items():
            for (library, leaf), n in family.cells.items():
                if n > 0:
                    self.leaves[(name, library)][leaf] = n
                    for cell in self._cells_of(name, library, leaf):
                        self.values[cell] += n
        self.libraries = sorted({library for (_, library) in self.leaves})
        self.hidden = {c for c, v in self.values.items() if 0 < v < threshold}
        self.withheld: dict[str, set[str]] = {name: set() for name in self.families}
        self.open_ended: set[Cell] = set()

    def _cells_of(self, family: str, library: str, leaf: Leaf) -> list[Cell]:
        """The published cells a unit of this leaf in this library counts in."""
        spec = self.families[family]
        cells: list[Cell] = []
        for grouping, group_of in spec.groupings.items():
            group = group_of.get(leaf)
            if group is not None:
                if grouping not in spec.national_only:
                    cells.append((family, grouping, library, group))
                cells.append((family, grouping, ALL, group))
        if family == self.counter:
            cells += [(TOTAL, TOTAL, library, ""), (TOTAL, TOTAL, ALL, "")]
        return cells

    def run(self) -> Protected:
        grand = self.values.get((TOTAL, TOTAL, ALL, ""), 0) if self.counter else None
        if grand is not None and grand < self.threshold:
            return Protected(dict(self.values), set(self.values), self.threshold, tiny=True, libraries=self.libraries)
        self._withhold_small_rows()
        self._protect_totals()
        for name in self.families:
            self._pair_withheld_rows(name)
        for name in self.families:
            self._protect_national(name)
        self.hidden = {c for c in self.hidden if c[0] == TOTAL or c[2] == ALL}  # rows: withheld whole
        self.hidden |= {c for c in self.values if c[2] == ALL and c[0] != TOTAL and ALL in self.withheld[c[0]]}
        return Protected(
            dict(self.values), self.hidden, self.threshold, self.withheld, self.open_ended, libraries=self.libraries
        )

    # Rule 1 and 2: rows with a small figure, libraries with a small total.

    def _withhold_small_rows(self) -> None:
        for family, _, row, _ in self.hidden:
            if row != ALL and family != TOTAL:
                self.withheld[family].add(row)

    def _protect_totals(self) -> None:
        small_totals = [r for r in self.libraries if (TOTAL, TOTAL, r, "") in self.hidden]
        for library in small_totals:
            self._withhold_everywhere(library)
        if not small_totals:
            return
        # One more, free of the "<5" bound, so units can move between them: the smallest shown
        # total, or if none is shown, the largest small one as "x".
        visible = [r for r in self.libraries if (TOTAL, TOTAL, r, "") not in self.hidden]
        if visible:
            partner = min(visible, key=lambda r: (self.values[(TOTAL, TOTAL, r, "")], r))
            self.hidden.add((TOTAL, TOTAL, partner, ""))
            self._withhold_everywhere(partner)
        else:
            self.open_ended.add(
                (TOTAL, TOTAL, max(small_totals, key=lambda r: (self.values[(TOTAL, TOTAL, r, "")], r)), "")
            )

    def _withhold_everywhere(self, library: str) -> None:
        for family in self.families:
            self.withheld[family].add(library)

    # Rule 3: withheld rows come in groups that can trade units unseen.

    def _pair_withheld_rows(self, family: str) -> None:
        while True:
            rows = self.withheld[family] & {r for (f, r) in self.leaves if f == family}
            if not rows:
                return
            exposed = self._exposed_row(family, rows)
            if exposed is None:
                return
            helper = self._helper(family, rows, *exposed)
            if helper is None:
                return  # every library withheld: nothing more to hide with
            self.withheld[family].add(helper)

    def _exposed_row(self, family: str, rows: set[str]) -> tuple[str, str, Hashable] | None:
        """A withheld row and a group of a grouping it has units in, such that no other withheld
        row has units outside that group (so the row's count in the group could be worked back)."""
        spec = self.families[family]
        if len(rows) < 2:
            return next((r, "", None) for r in sorted(rows))
        for grouping, group_of in spec.groupings.items():
            groups = {r: {group_of.get(leaf) for leaf in self.leaves[(family, r)]} for r in rows}
            for r in sorted(rows):
                for group in groups[r] - {None}:
                    if not any(groups[o] - {group} for o in rows if o != r):
                        return r, grouping, group
        return None

    def _helper(self, family: str, rows: set[str], row: str, grouping: str, group: Hashable) -> str | None:
        """The smallest shown library with units outside `group` (any, for a lone withheld row)."""
        group_of = self.families[family].groupings.get(grouping, {})

        def has_outside(r: str) -> bool:
            return any(group_of.get(leaf) != group for leaf in self.leaves[(family, r)]) if grouping else True

        candidates = [r for (f, r) in self.leaves if f == family and r not in rows and has_outside(r)]
        return min(candidates, key=lambda r: (sum(self.leaves[(family, r)].values()), r)) if candidates else None

    # Rule 4: national figures.

    def _protect_national(self, family: str) -> None:
        protected: set[Cell] = set()
        while pending := sorted(
            (c for c in self.hidden if c[0] == family and c[2] == ALL and c not in protected), key=repr
        ):
            cell = pending[0]
            move = self._cheapest_move(family, cell)
            if move is None and cell not in self.open_ended and self.values[cell] < self.threshold:
                self.open_ended.add(cell)  # "<5" would pin it: show "x", which has no upper bound
                continue
            if move is None:  # too few units to move unseen: the national breakdown is withheld
                self.withheld[family].add(ALL)
                return
            changed, opened = self._needs(family, move)  # type: ignore[misc]
            self.open_ended |= opened
            self.hidden |= set(changed)
            protected |= set(changed)

    def _cheapest_move(self, family: str, cell: Cell) -> tuple[Leaf | None, Leaf | None] | None:
        best = None
        for move in self._moves(family, cell):
            found = self._needs(family, move)
            if found is None:
                continue
            changed, opened = found
            new = [c for c in changed if c not in self.hidden]
            cost = (len(new) + len(opened), sum(self.values.get(c, 0) for c in new))
            if cost[0] == 0:
                return move
            if best is None or cost < best[0]:
                best = (cost, move)
        return best[1] if best else None

    def _moves(self, family: str, cell: Cell) -> list[tuple[Leaf | None, Leaf | None]]:
        """Moves (from leaf, to leaf) that change `cell` and no library's published figure: a
        unit out of the group or into it, inside a withheld row, or inside any row between two
        leaves that only national-only groupings tell apart. Without totals a unit may also
        appear or vanish in a withheld row (None)."""
        _, grouping, _, group = cell
        spec = self.families[family]
        group_of = spec.groupings[grouping]
        withheld, anywhere = self._mass(family, self.withheld[family]), self._mass(family, set(self.libraries))
        leaves = sorted(anywhere, key=repr)
        inside = [x for x in leaves if group_of.get(x) == group]
        outside = sorted(
            (x for x in leaves if group_of.get(x) != group),
            key=lambda x: (not self._hidden_cells(family, x), repr(x)),
        )[:CANDIDATES]

        def movable(source: Leaf, target: Leaf) -> bool:
            return bool(withheld.get(source)) or (bool(anywhere.get(source)) and self._quiet(spec, source, target))

        moves: list[tuple[Leaf | None, Leaf | None]] = []
        moves += [(a, b) for a in inside for b in outside if movable(a, b)]  # out of the group
        moves += [(b, a) for b in outside for a in inside[:CANDIDATES] if movable(b, a)]  # into it
        if not spec.totals:
            moves += [(a, None) for a in inside if withheld.get(a)] + [(None, a) for a in inside[:CANDIDATES]]
        return moves

    @staticmethod
    def _quiet(spec: Family, a: Leaf, b: Leaf) -> bool:
        """Moving a unit from a to b inside a library changes none of its published figures."""
        return all(
            group_of.get(a) == group_of.get(b) for g, group_of in spec.groupings.items() if g not in spec.national_only
        )

    def _mass(self, family: str, libraries: set[str]) -> dict[Leaf, int]:
        mass: dict[Leaf, int] = defaultdict(int)
        for r in libraries:
            for leaf, n in self.leaves.get((family, r), {}).items():
                mass[leaf] += n
        return mass

    def _hidden_cells(self, family: str, leaf: Leaf) -> bool:
        return all(c in self.hidden for c in self._national_cells(family, leaf))

    def _national_cells(self, family: str, leaf: Leaf) -> list[Cell]:
        groupings = self.families[family].groupings.items()
        return [(family, g, ALL, group_of[leaf]) for g, group_of in groupings if group_of.get(leaf) is not None]

    def _needs(self, family: str, move: tuple[Leaf | None, Leaf | None]) -> tuple[list[Cell], set[Cell]] | None:
        """The national figures a move changes, and the "<5" among them it takes to 5; None if it
        takes a listed figure below 1."""
        delta: dict[Cell, int] = defaultdict(int)
        source, target = move
        if source is not None:
            for c in self._national_cells(family, source):
                delta[c] -= 1
        if target is not None:
            for c in self._national_cells(family, target):
                delta[c] += 1
        changed = [c for c, d in delta.items() if d]
        opened: set[Cell] = set()
        for c in changed:
            value = self.values.get(c, 0) + delta[c]
            if value < 1 or not self.values.get(c):  # a listed figure stays listed; zero stays zero
                return None
            if value >= self.threshold and c in self.hidden and self.values[c] < self.threshold:
                opened.add(c)
        return changed, opened - self.open_ended
