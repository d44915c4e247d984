"""Reporting's HTTP API: the monitor (questions and visits by dimension), referral outcomes per
agency, the rollout against the coverage goal, and the registration-form export.

Who sees what: a library its own figures (no suppression); an agency the questions of its domain
across libraries; KB staff everything. Outside the library itself figures are per calendar year
and protected (domain/disclosure.py): a count below the threshold is shown as "<5", and any
figure that would let a reader work one back is shown as "x", in every answer alike."""

import asyncio
import csv
import io
import json
import statistics
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.reporting.adapters.repository import ActiveReadModels, ReportingQueries
from services.reporting.domain import universes
from services.reporting.domain.disclosure import ALL, COMPLEMENTARY, Family, Protected, exact, protect, small
from services.reporting.domain.projections import agency_themes, labels
from services.reporting.entrypoints.rebuild import Incomplete
from shared import reference
from shared.auth import Principal
from shared.http import Problem, invalid_field

Dimension = Literal["month", "library", "location", "category", "theme", "subtheme", "channel"]
# The KB's registration form, one row per question.
FORM_COLUMNS = [
    "help_request_id",
    "question",
    "date",
    "library",
    "location",
    "channel",
    "category",
    "theme",
    "subtheme",
    "help_given",
    "outcome",
    "referred_to",
    "duration_minutes",
]
Month = Annotated[str | None, Query(pattern=r"^[0-9]{4}-[0-9]{2}$")]
DAY = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
From = Annotated[str | None, Query(alias="from", pattern=DAY)]
To = Annotated[str | None, Query(alias="to", pattern=DAY)]
Library = Annotated[str | None, Query(max_length=64)]
Year = Annotated[int, Path(ge=2000, le=2100)]
InYear = Annotated[int | None, Query(ge=2000, le=2100)]
# Where each `by` of the protected views is cut from: (family, grouping); None: the totals.
QUESTION_VIEWS: dict[str, tuple[str, str] | None] = {
    "theme": ("themes", "theme"),
    "category": ("themes", "category"),
    "subtheme": ("themes", "subtheme"),
    "channel": ("channels", "channel"),
    "location": ("locations", "location"),
    "month": ("months", "month"),
    "library": None,
}
OUTCOME_VIEWS: dict[str, tuple[str, str] | None] = {
    "organisation": ("outcomes", "organisation"),
    "outcome": ("outcomes", "outcome"),
    "month": ("months", "month"),
    "library": None,
}


class RolloutGoal(BaseModel):
    """The number of IDO locations the KB aims to have open at the end of the year."""

    model_config = ConfigDict(extra="forbid")

    goal: int = Field(ge=0, le=100_000, strict=True)


def build_router(*, authenticated, queries: ReportingQueries, threshold: int) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Principal, Depends(authenticated)]

    @router.get("/labels", tags=["monitor"])
    async def label_table() -> dict[str, dict[str, str]]:
        """Dutch labels per code: referral statuses, routing outcomes, themes, course types,
        organisations and libraries (public: labels, no figures). The dashboard draws these."""
        return labels()

    @router.get("/monitor/questions", tags=["monitor"])
    async def questions(
        caller: Caller,
        by: Dimension = "theme",
        library: Annotated[str | None, Query(max_length=64)] = None,
        year: InYear = None,
        month_from: Month = None,
        month_to: Month = None,
    ) -> dict[str, Any]:
        """Questions counted by one dimension for a calendar year (default: this one) and (KB,
        agencies) one library or all. A library may also ask its own for a range of months."""
        scope = _scope(caller, library)
        if caller.role == "library":
            month_from, month_to = _months(year, month_from, month_to)
            async with queries.active() as read:
                rows = await read.question_totals(by, library=scope, month_from=month_from, month_to=month_to)
            return _totals(rows, by, year=year)
        _no_month_ranges(month_from, month_to)
        year = year or _this_year()
        async with queries.active() as read:
            protected = await _questions_universe(read, caller, year, threshold)
        return _protected(protected, QUESTION_VIEWS[by], by, scope, year)

    @router.get("/monitor/outcomes", tags=["monitor"])
    async def outcomes(
        caller: Caller,
        by: Literal["organisation", "outcome", "month", "library"] = "organisation",
        library: Annotated[str | None, Query(max_length=64)] = None,
        year: InYear = None,
    ) -> dict[str, Any]:
        """How questions were answered: per receiving organisation or per outcome (helped at the
        desk, course advised, informed, referred; `(open)` not yet). An agency: the questions
        referred to it."""
        scope = _scope(caller, library)
        if caller.role == "library":
            async with queries.active() as read:
                rows = await read.outcome_totals(by, library=scope, year=year)
            return _totals(rows, by, year=year)
        year = year or _this_year()
        async with queries.active() as read:
            if caller.role == "agency":
                protected = await _agency_universe(read, caller.organisation, year)
            else:
                protected = await _questions_universe(read, caller, year, threshold)
        return _protected(protected, OUTCOME_VIEWS[by], by, scope, year)

    @router.get("/monitor/help-given", tags=["monitor"])
    async def help_given(
        caller: Caller, library: Annotated[str | None, Query(max_length=64)] = None, year: InYear = None
    ) -> dict[str, Any]:
        """How visitors were helped: informed, coached, helped at the desk, course advised. An
        agency counts the visits with a question in its domain."""
        scope = _scope(caller, library)
        if caller.role == "library":
            async with queries.active() as read:
                rows = await read.help_given_totals(library=scope, year=year)
            return _totals(rows, "help", year=year)
        year = year or _this_year()
        themes = agency_themes(caller.organisation) if caller.role == "agency" else None
        async with queries.active() as read:
            rows = await read.help_given_cube(year, themes)
        protected = await _protected_universe(universes.help_given(rows), threshold)
        return _protected(protected, ("help", "help"), "help", scope, year)

    @router.get("/monitor/referrals", tags=["monitor"])
    async def referrals(caller: Caller, year: InYear = None) -> dict[str, Any]:
        """Referral outcomes per agency for the referrals sent in a year: the latest status of
        each, the overdue share and the median hours until accepted."""
        if caller.role not in ("agency", "kb"):
            raise Problem(403, "Referral outcomes are for agencies and KB staff")
        year = year or _this_year()
        async with queries.active() as read:
            if caller.role == "agency":
                protected = await _agency_universe(read, caller.organisation, year)
            else:
                protected = await _questions_universe(read, caller, year, threshold)
            accepted = await read.referral_waits_in(year, caller.organisation if caller.role == "agency" else None)
        waits: dict[str, list[float]] = {}
        for row in accepted:
            waits.setdefault(row["agency"], []).append((row["accepted_at"] - row["sent_at"]).total_seconds() / 3600)
        statuses: dict[str, dict[str, int | str]] = {}
        for key, shown in protected.counts("outcomes", "status", ALL).items():
            agency, status = key.split(":", 1)
            statuses.setdefault(agency, {})[status] = shown
        return {
            agency: {
                "statuses": dict(sorted(mix.items())),
                "overdue_share": _share(protected, agency),
                # A median of fewer waits than the threshold would be someone's own wait.
                "median_hours_to_accept": (
                    round(statistics.median(waits[agency]), 1)
                    if len(waits.get(agency, [])) >= (protected.threshold or 1)
                    else (COMPLEMENTARY if agency in waits else None)
                ),
            }
            for agency, mix in sorted(statuses.items())
        }

    @router.get("/monitor/courses", tags=["monitor"])
    async def courses(caller: Caller) -> dict[str, Any]:
        """Per course type: runs, seats, enrolled, waitlisted, completed and the fill rate."""
        own = caller.role == "library"
        if caller.role not in ("library", "kb"):
            raise Problem(403, "Course figures are for libraries (their own) and KB staff")
        async with queries.active() as read:
            rows = await read.course_figures(caller.organisation if own else None)
        answer = {}
        for r in rows:
            figures: dict[str, int | str] = {k: r[k] for k in ("runs", "seats", "enrolled", "waitlisted", "completed")}
            if not own:
                for k in ("enrolled", "waitlisted", "completed"):
                    figures[k] = _small(r[k], threshold)
            enrolled, seats = figures["enrolled"], r["seats"]
            # The fill rate times the seats gives the enrolled back: hidden when they are.
            rate = round(enrolled / seats, 2) if isinstance(enrolled, int) and seats else None
            answer[r["course_type"]] = {**dict(sorted(figures.items())), "fill_rate": rate if seats else None}
            if seats and not isinstance(enrolled, int):
                answer[r["course_type"]]["fill_rate"] = COMPLEMENTARY
        return dict(sorted(answer.items()))

    @router.get("/monitor/readiness", tags=["monitor"])
    async def readiness(caller: Caller) -> dict[str, dict[str, int]]:
        """Per library: how many staff completed each training (a library sees its own)."""
        if caller.role not in ("library", "kb"):
            raise Problem(403, "Readiness is for libraries (their own) and KB staff")
        async with queries.active() as read:
            trained = await read.readiness(caller.organisation if caller.role == "library" else None)
        return dict(sorted(trained.items()))

    @router.get("/monitor/subsidy", tags=["monitor"])
    async def subsidy(caller: Caller) -> dict[str, dict[str, int]]:
        """Per scheme: the ceiling, requested, granted (awarded), paid and remaining (euro cents) and
        the applications (KB staff)."""
        if caller.role != "kb":
            raise Problem(403, "Subsidy figures are for KB staff")
        async with queries.active() as read:
            rows = await read.subsidy_figures()
            ceilings = await read.scheme_ceilings()
        # Every scheme answers every figure: one without applications has zeros, not gaps.
        amounts = ("applications", "requested_cents", "granted_cents", "paid_cents")
        per_scheme: dict[str, Counter[str]] = {r["scheme"]: Counter({k: r[k] for k in amounts}) for r in rows}
        for scheme, ceiling in ceilings.items():
            figures = per_scheme.setdefault(scheme, Counter(dict.fromkeys(amounts, 0)))
            figures["budget_ceiling_cents"] = ceiling
            figures["remaining_cents"] = ceiling - figures["granted_cents"]
        return {scheme: dict(sorted(f.items())) for scheme, f in sorted(per_scheme.items())}

    @router.get("/monitor/rollout", tags=["monitor"])
    async def rollout(caller: Caller) -> dict[str, Any]:
        """IDO locations open at the end of each year against the national-coverage goal, and the
        15 pilot libraries compared with the rest."""
        async with queries.active() as read:
            locations = await read.locations()
            goals = await read.rollout_goals()
        years = sorted(set(goals) | {opened_at.year for _, opened_at in locations})
        open_by = {y: sum(1 for _, opened_at in locations if opened_at.year <= y) for y in years}
        pilots = sum(1 for library, _ in locations if library in reference.PILOT_LIBRARIES)
        return {
            "years": [{"year": y, "open": open_by[y], "goal": goals.get(y)} for y in years],
            "pilot_locations": pilots,
            "other_locations": len(locations) - pilots,
        }

    @router.put("/monitor/rollout/goals/{year}", tags=["monitor"])
    async def set_rollout_goal(caller: Caller, year: Year, body: RolloutGoal) -> dict[str, int]:
        """Set the coverage goal for a year: IDO locations open at its end (KB staff)."""
        if caller.role != "kb":
            raise Problem(403, "Rollout goals are set by KB staff")
        await queries.set_rollout_goal(year, body.goal)
        return {"year": year, "goal": body.goal}

    @router.get(
        "/exports/questions.csv",
        tags=["exports"],
        summary="Registration-form export as CSV",
        responses={200: {"description": "One row per question", "content": {"text/csv": {}}}},
    )
    async def export_csv(
        caller: Caller,
        date_from: From = None,
        date_to: To = None,
        library: Library = None,
    ) -> Response:
        return await export("csv", caller, date_from, date_to, library)

    @router.get("/exports/questions.json", tags=["exports"], summary="Registration-form export as JSON")
    async def export_json(
        caller: Caller,
        date_from: From = None,
        date_to: To = None,
        library: Library = None,
    ) -> Response:
        return await export("json", caller, date_from, date_to, library)

    async def export(
        fmt: Literal["csv", "json"],
        caller: Principal,
        date_from: str | None,
        date_to: str | None,
        library: str | None,
    ) -> Response:
        """One row per question, columns as on the KB's registration form (no personal data)."""
        if caller.role not in ("library", "kb"):
            raise Problem(403, "Exports are for libraries (their own) and KB staff")
        scope = caller.organisation if caller.role == "library" else library
        start, end = _day("from", date_from), _day("to", date_to)
        async with queries.active() as read:
            rows = [_form_row(r) for r in await read.question_rows(start, end, scope)]
        if fmt == "json":
            return Response(
                content=_json(rows),
                media_type="application/json",
                headers={"Content-Disposition": 'attachment; filename="ido-registraties.json"'},
            )
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=FORM_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        return Response(
            content=out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="ido-registraties.csv"'},
        )

    return router


def _day(field: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise invalid_field(field, "not a calendar date") from None


def _form_row(row: Any) -> dict[str, Any]:
    """A question row with the form's columns, in order; empty where the form leaves it empty."""
    values = dict(row)
    values["date"] = values["date"].isoformat()
    values["duration_minutes"] = values["duration_minutes"] or ""
    return {c: values[c] for c in FORM_COLUMNS}


def _totals(rows: list[tuple[str, int]], by: str, *, year: int | None) -> dict[str, Any]:
    """A library's own figures: exact."""
    totals: Counter[str] = Counter()
    for value, count in rows:
        totals[value or "(geen)"] += count
    return {"by": by, "year": year, "threshold": None, "counts": dict(sorted(totals.items()))}


async def _questions_universe(read: ActiveReadModels, caller: Principal, year: int, threshold: int) -> Protected:
    """The protected questions of a year: all (KB, with how they were answered) or an agency's
    domain. Every view of the caller is cut from this one set, so none gives another away."""
    if caller.role == "agency":
        cube = await read.question_cube(year, agency_themes(caller.organisation))
        return await _protected_universe(universes.questions(cube), threshold)
    cube = await read.question_cube(year, None)
    answers = await read.answer_cube(year)
    referred = await read.referral_cube(year, None)
    return await _protected_universe(universes.questions(cube, answers, referred), threshold)


async def _protected_universe(families: dict[str, Family], threshold: int) -> Protected:
    # Pure CPU (0.1-0.5 s for a year of the whole country): in a thread, so the event loop
    # keeps answering other requests and health checks meanwhile.
    return await asyncio.to_thread(protect, families, threshold)


async def _agency_universe(read: ActiveReadModels, agency: str, year: int) -> Protected:
    """The referrals an agency received in a year: exact, as it received each one (with its
    library, theme and status)."""
    return exact(universes.agency_referrals(await read.referral_cube(year, agency), agency))


def _protected(
    protected: Protected, view: tuple[str, str] | None, by: str, library: str | None, year: int
) -> dict[str, Any]:
    """One view cut from a protected universe. `withheld`: this library's breakdown is not shown,
    as some of its figures are below the threshold (its total, by=library, still is)."""
    if view is None:
        counts, withheld = protected.totals(library), protected.tiny
    else:
        counts = protected.counts(*view, library or ALL)
        withheld = protected.is_withheld(view[0], library or ALL)
    return {
        "by": by,
        "year": year,
        "threshold": protected.threshold or None,  # None: exact figures
        "withheld": withheld,
        "counts": dict(sorted(counts.items())),
    }


def _share(protected: Protected, agency: str) -> float | str | None:
    """Overdue referrals as a share of all referrals: shown only when both counts are."""
    overdue = protected.figure("outcomes", "overdue", ALL, agency)
    total = protected.figure("outcomes", "referrals", ALL, agency)
    if not isinstance(overdue, int) or not isinstance(total, int):
        return COMPLEMENTARY
    return round(overdue / total, 2) if total else None


def _small(count: int, threshold: int) -> int | str:
    return small(threshold) if 0 < count < threshold else count


def _this_year() -> int:
    return datetime.now(UTC).year


def _months(year: int | None, month_from: str | None, month_to: str | None) -> tuple[str | None, str | None]:
    """A library's own range of months; a year stands for its twelve."""
    if year is None:
        return month_from, month_to
    return month_from or f"{year:04d}-01", month_to or f"{year:04d}-12"


def _no_month_ranges(month_from: str | None, month_to: str | None) -> None:
    # Two overlapping ranges would give the months between them: protection works per year.
    for name, value in (("month_from", month_from), ("month_to", month_to)):
        if value is not None:
            raise invalid_field(name, "month ranges are for a library's own figures; choose a calendar year (year=)")


def _scope(caller: Principal, library: str | None) -> str | None:
    """The library whose figures the caller may see: a library its own, others the one asked for."""
    if caller.role == "library":
        return caller.organisation
    if caller.role in ("kb", "agency"):
        return library
    raise Problem(403, "Not for this credential")


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False)


DASHBOARD = (FilePath(__file__).parent / "static" / "dashboard.html").read_text(encoding="utf-8")


def dashboard_router() -> APIRouter:
    """The dashboard page (in Dutch, for KB staff). It holds no data: it reads the monitor API
    with the credential given to it, so it needs no authentication of its own."""
    router = APIRouter()

    @router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        return HTMLResponse(DASHBOARD)

    return router


def admin_router(*, authenticated, rebuild) -> APIRouter:
    """Rebuilding the read models (KB staff); `ido reporting rebuild` drives it with a progress bar."""
    router = APIRouter(prefix="/v1/admin")
    Caller = Annotated[Principal, Depends(authenticated)]

    @router.post("/rebuild", status_code=202, tags=["admin"])
    async def start_rebuild(caller: Caller) -> dict[str, Any]:
        """Rebuild every read model from the start of every topic into a new version, which
        replaces the active one when complete (one rebuild at a time)."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff rebuild the read models")
        try:
            started = await rebuild.start()
        except Incomplete as incomplete:
            raise Problem(409, "The topics no longer hold every event", str(incomplete)) from None
        if not started:
            raise Problem(409, "A rebuild is already running")
        return await rebuild.status()

    @router.get("/rebuild", tags=["admin"])
    async def rebuild_status(caller: Caller) -> dict[str, Any]:
        """Progress of the last rebuild: state, events processed of the total, versions."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff rebuild the read models")
        return await rebuild.status()

    return router
