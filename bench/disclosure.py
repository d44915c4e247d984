"""How long protecting a year of the whole country takes (services/reporting/domain/disclosure.py):
every answer the KB or an agency gets is cut from a freshly protected universe, so this is the
price of one monitor answer beyond its queries. Baseline, measured in the same run: building
the same published figures with only the small ones hidden (the rule before issue 10.2).

Synthetic years: 150 libraries of very different size (Pareto weights), questions spread over
the taxonomy's themes and subtheme, three channels, three locations, eleven months; six in ten
questions that have a receiving organisation are referred (with a status), the rest answered
at the desk. Pure Python, no database.

    .venv/bin/python bench/disclosure.py [--questions 10000 100000 1000000]
"""

import argparse
import random
import time
from typing import Any

from services.reporting.domain import universes
from services.reporting.domain.disclosure import exact, protect
from shared import reference

THRESHOLD = 5


def year(questions: int, seed: int = 3) -> tuple[list[dict], list[dict], list[dict]]:
    rng = random.Random(seed)
    libraries = [f"lib{i:03d}" for i in range(150)]
    weights = [rng.paretovariate(1.2) for _ in libraries]
    leaves = [
        ("other" if code == "overig" else "digital_government", code, sub)
        for code, theme in reference.THEMES.items()
        for sub in ["", *theme.subthemes]
    ]
    cube: dict[tuple, int] = {}
    answers: dict[tuple, int] = {}
    referrals: dict[tuple, int] = {}
    for _ in range(questions):
        library = rng.choices(libraries, weights)[0]
        category, theme, sub = rng.choice(leaves)
        month = f"2026-{rng.randint(1, 11):02d}"
        location = rng.choice(["centrum", "noord", ""])
        key = (library, location, month, rng.choice(["walk_in", "phone", "email"]), category, theme, sub)
        cube[key] = cube.get(key, 0) + 1
        spec = reference.THEMES[theme]
        organisation = (spec.subthemes.get(sub) if sub else None) or spec.default_organisation
        if organisation in reference.AGENCIES and rng.random() < 0.6:
            status = rng.choice(["sent", "accepted", "got_help", "no_capacity"])
            ref = (library, organisation, status, rng.random() < 0.1, month)
            referrals[ref] = referrals.get(ref, 0) + 1
        else:
            answer = (library, rng.choice(["informed", "helped_at_desk", "course_advised"]), "")
            answers[answer] = answers.get(answer, 0) + 1
    return (
        _rows(cube, ["library", "location", "month", "channel", "category", "theme", "subtheme"]),
        _rows(answers, ["library", "outcome", "organisation"]),
        _rows(referrals, ["library", "agency", "status", "overdue", "month"]),
    )


def _rows(counts: dict[tuple, int], columns: list[str]) -> list[dict]:
    return [dict(zip(columns, key, strict=True), n=n) for key, n in counts.items()]


def timed(work) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(3):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def small_ones_only(rows: tuple) -> set:
    figures = exact(universes.questions(*rows)).values
    return {cell for cell, n in figures.items() if 0 < n < THRESHOLD}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    print("questions  figures  baseline ms  protected ms  ratio  withheld rows (themes)  hidden national")
    for n in args.questions:
        rows = year(n)
        baseline, _ = timed(lambda rows=rows: small_ones_only(rows))
        seconds, protected = timed(lambda rows=rows: protect(universes.questions(*rows), THRESHOLD))
        national = sum(1 for cell in protected.hidden if cell[2] == "*")
        print(
            f"{n:>9,}  {len(protected.values):>7,}  {baseline * 1000:>11.1f}  {seconds * 1000:>12.1f}"
            f"  {seconds / baseline:>5.2f}  {len(protected.withheld['themes']):>22}  {national:>15}"
        )


if __name__ == "__main__":
    main()
