"""A reader who tries to work hidden figures back: every visible figure is a linear equation over
the unknown interior counts, every marker a bound ("<5": 1..4, "x": at least 1), and every count
is non-negative. For each hidden figure a linear program finds the smallest and largest value
consistent with all of it; if they meet, the figure has been worked back.

Independent of the product's own search (which proves safety with +1/-1 perturbations): this
one uses scipy's HiGHS solver over everything the reader was shown."""

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog

Var = Hashable


@dataclass
class Reader:
    """What a reader was shown, as linear facts over unknown non-negative counts."""

    threshold: int
    variables: dict[Var, int] = field(default_factory=dict)
    equal: list[tuple[dict[int, float], float]] = field(default_factory=list)
    hidden: list[tuple[str, dict[int, float], float, float | None]] = field(default_factory=list)

    def _index(self, terms: Mapping[Var, float]) -> dict[int, float]:
        out: dict[int, float] = {}
        for var, coefficient in terms.items():
            i = self.variables.setdefault(var, len(self.variables))
            out[i] = out.get(i, 0.0) + coefficient
        return out

    def sum_of(self, name: str, variables: Sequence[Var], shown: int | str) -> None:
        """A figure shown as `shown` that is the sum of `variables`."""
        terms = self._index(dict.fromkeys(variables, 1.0))
        if isinstance(shown, int):
            self.equal.append((terms, float(shown)))
        elif shown == f"<{self.threshold}":
            self.hidden.append((name, terms, 1.0, float(self.threshold - 1)))
        else:  # "x": hidden to protect another figure; any value, at least 1 (it is listed)
            self.hidden.append((name, terms, 1.0, None))

    def same(self, left: Sequence[Var], right: Sequence[Var]) -> None:
        """Two sums the reader knows to be equal (two classifications of the same units)."""
        terms = self._index(dict.fromkeys(left, 1.0))
        for var, c in self._index(dict.fromkeys(right, -1.0)).items():
            terms[var] = terms.get(var, 0.0) + c
        self.equal.append((terms, 0.0))

    def worked_back(self) -> dict[str, float]:
        """The hidden figures whose value the facts fix, with that value."""
        n = len(self.variables)
        rows_eq = [self._row(t, n) for t, _ in self.equal]
        b_eq = [v for _, v in self.equal]
        rows_ub: list[np.ndarray] = []
        b_ub: list[float] = []
        for _, terms, low, high in self.hidden:
            rows_ub.append(-self._row(terms, n))
            b_ub.append(-low)
            if high is not None:
                rows_ub.append(self._row(terms, n))
                b_ub.append(high)
        found: dict[str, float] = {}
        for name, terms, _, _ in self.hidden:
            objective = self._row(terms, n)
            least = self._solve(objective, rows_eq, b_eq, rows_ub, b_ub)
            most = self._solve(-objective, rows_eq, b_eq, rows_ub, b_ub)  # minus the largest
            if least is not None and most is not None and -most - least < 1 - 1e-6:
                found[name] = least
        return found

    @staticmethod
    def _row(terms: Mapping[int, float], n: int) -> np.ndarray:
        row = np.zeros(n)
        for i, c in terms.items():
            row[i] = c
        return row

    @staticmethod
    def _solve(c, rows_eq, b_eq, rows_ub, b_ub) -> float | None:
        result = linprog(
            c,
            A_eq=np.array(rows_eq) if rows_eq else None,
            b_eq=b_eq or None,
            A_ub=np.array(rows_ub) if rows_ub else None,
            b_ub=b_ub or None,
            bounds=(0, None),
            method="highs",
        )
        if result.status == 3:  # unbounded: no figure fixed in that direction
            return None
        if result.status != 0:
            raise AssertionError(f"the reader's facts are inconsistent or unbounded: {result.message}")
        return float(result.fun)
