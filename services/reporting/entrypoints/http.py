"""Reporting's HTTP API: the monitor (questions and visits by dimension), referral outcomes per
agency, the rollout against the coverage goal, and the registration-form export.

Who sees what: a library its own figures (no suppression); an agency the questions of its domain
across libraries; KB staff everything. Outside the library itself, a count below the threshold
is shown as "<5", so no visitor can be singled out."""

import csv
import io
import json
import statistics
from collections import Counter
from datetime import date
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from services.reporting.adapters.repository import ReportingQueries
from services.reporting.domain.projections import agency_themes, labels, suppress
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
        month_from: Month = None,
        month_to: Month = None,
    ) -> dict[str, Any]:
        """Questions counted by one dimension, for a period and (KB) a library."""
        scope = _scope(caller, library)
        themes = agency_themes(caller.organisation) if caller.role == "agency" else None
        async with queries.active() as read:
            rows = await read.question_totals(
                by, library=scope, month_from=month_from, month_to=month_to, themes=themes
            )
        return _totals(rows, by, own=caller.role == "library", threshold=threshold)

    @router.get("/monitor/outcomes", tags=["monitor"])
    async def outcomes(
        caller: Caller,
        by: Literal["organisation", "outcome", "month", "library"] = "organisation",
        library: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """How questions were answered: per receiving organisation or per outcome (helped at the
        desk, course advised, informed, referred)."""
        scope = _scope(caller, library)
        organisation = caller.organisation if caller.role == "agency" else None
        async with queries.active() as read:
            rows = await read.outcome_totals(by, library=scope, organisation=organisation)
        return _totals(rows, by, own=caller.role == "library", threshold=threshold)

    @router.get("/monitor/help-given", tags=["monitor"])
    async def help_given(caller: Caller, library: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        """How visitors were helped: informed, coached, helped at the desk, course advised. An
        agency counts the visits with a question in its domain."""
        scope = _scope(caller, library)
        themes = agency_themes(caller.organisation) if caller.role == "agency" else None
        async with queries.active() as read:
            rows = await read.help_given_totals(library=scope, themes=themes)
        return _totals(rows, "help", own=caller.role == "library", threshold=threshold)

    @router.get("/monitor/referrals", tags=["monitor"])
    async def referrals(caller: Caller) -> dict[str, Any]:
        """Referral outcomes per agency: the latest status of each referral, and the overdue share."""
        if caller.role not in ("agency", "kb"):
            raise Problem(403, "Referral outcomes are for agencies and KB staff")
        agency = caller.organisation if caller.role == "agency" else None
        async with queries.active() as read:
            statuses = await read.referral_statuses(agency)
            accepted = await read.referral_waits(agency)
        per_agency: dict[str, Counter[str]] = {}
        for row in statuses:
            mix = per_agency.setdefault(row["agency"], Counter())
            mix[row["status"]] += row["referrals"]
            mix["overdue"] += row["overdue"]
        waits: dict[str, list[float]] = {}
        for row in accepted:
            waits.setdefault(row["agency"], []).append((row["accepted_at"] - row["sent_at"]).total_seconds() / 3600)
        return {
            agency: {
                "statuses": {s: suppress(n, threshold) for s, n in sorted(mix.items()) if s != "overdue"},
                "overdue_share": round(mix["overdue"] / sum(n for s, n in mix.items() if s != "overdue"), 2),
                "median_hours_to_accept": round(statistics.median(waits[agency]), 1) if agency in waits else None,
            }
            for agency, mix in sorted(per_agency.items())
        }

    @router.get("/monitor/courses", tags=["monitor"])
    async def courses(caller: Caller) -> dict[str, Any]:
        """Per course type: runs, seats, enrolled, waitlisted, completed and the fill rate."""
        own = caller.role == "library"
        if caller.role not in ("library", "kb"):
            raise Problem(403, "Course figures are for libraries (their own) and KB staff")
        async with queries.active() as read:
            rows = await read.course_figures(caller.organisation if own else None)
        per_type = {
            r["course_type"]: Counter({k: r[k] for k in ("runs", "seats", "enrolled", "waitlisted", "completed")})
            for r in rows
        }
        return {
            course: {
                **{k: v if own or k in ("runs", "seats") else suppress(v, threshold) for k, v in sorted(f.items())},
                "fill_rate": round(f["enrolled"] / f["seats"], 2) if f["seats"] else None,
            }
            for course, f in sorted(per_type.items())
        }

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

    @router.get("/exports/questions.csv", tags=["exports"], summary="Registration-form export as CSV")
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


def _totals(rows: list[tuple[str, int]], by: str, *, own: bool, threshold: int) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    for value, count in rows:
        totals[value or "(geen)"] += count
    return {
        "by": by,
        "threshold": None if own else threshold,
        "counts": {k: v if own else suppress(v, threshold) for k, v in sorted(totals.items())},
    }


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
        if not await rebuild.start():
            raise Problem(409, "A rebuild is already running")
        return await rebuild.status()

    @router.get("/rebuild", tags=["admin"])
    async def rebuild_status(caller: Caller) -> dict[str, Any]:
        """Progress of the last rebuild: state, events processed of the total, versions."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff rebuild the read models")
        return await rebuild.status()

    return router
