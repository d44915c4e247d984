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
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, Response

from services.reporting.adapters.repository import MongoReportingRepository
from services.reporting.domain.projections import COVERAGE_GOAL, agency_themes, suppress
from shared import reference
from shared.auth import Principal
from shared.http import Problem

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


def build_router(*, authenticated, repo: MongoReportingRepository, threshold: int) -> APIRouter:
    router = APIRouter(prefix="/v1")
    Caller = Annotated[Principal, Depends(authenticated)]

    @router.get("/monitor/questions", tags=["monitor"])
    async def questions(
        caller: Caller,
        by: Dimension = "theme",
        library: Annotated[str | None, Query(max_length=64)] = None,
        month_from: Month = None,
        month_to: Month = None,
    ) -> dict[str, Any]:
        """Questions counted by one dimension, for a period and (KB) a library."""
        rows = await repo.counts("questions", **_scope(caller, library))
        if caller.role == "agency":
            domain = agency_themes(caller.organisation)
            rows = [r for r in rows if r["theme"] in domain]
        rows = [
            r for r in rows if (not month_from or r["month"] >= month_from) and (not month_to or r["month"] <= month_to)
        ]
        return _totals(rows, by, own=caller.role == "library", threshold=threshold)

    @router.get("/monitor/outcomes", tags=["monitor"])
    async def outcomes(
        caller: Caller,
        by: Literal["organisation", "outcome", "month", "library"] = "organisation",
        library: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """How questions were answered: per receiving organisation or per outcome (helped at the
        desk, course advised, informed, referred)."""
        rows = await repo.counts("outcomes", **_scope(caller, library))
        if caller.role == "agency":
            rows = [r for r in rows if r["organisation"] == caller.organisation]
        return _totals(rows, by, own=caller.role == "library", threshold=threshold)

    @router.get("/monitor/help-given", tags=["monitor"])
    async def help_given(caller: Caller, library: Annotated[str | None, Query(max_length=64)] = None) -> dict[str, Any]:
        """How visitors were helped: informed, coached, helped at the desk, course advised."""
        rows = await repo.counts("help_given", **_scope(caller, library))
        return _totals(rows, "help", own=caller.role == "library", threshold=threshold)

    @router.get("/monitor/referrals", tags=["monitor"])
    async def referrals(caller: Caller) -> dict[str, Any]:
        """Referral outcomes per agency: the latest status of each referral, and the overdue share."""
        if caller.role not in ("agency", "kb"):
            raise Problem(403, "Referral outcomes are for agencies and KB staff")
        docs = await repo.referrals_of(caller.organisation if caller.role == "agency" else None)
        per_agency: dict[str, Counter[str]] = {}
        waits: dict[str, list[float]] = {}
        for doc in docs:
            statuses = sorted(k for k in doc if k.startswith("status_"))
            latest = doc[statuses[-1]] if statuses else "sent"
            agency = doc.get("agency", "?")
            mix = per_agency.setdefault(agency, Counter())
            mix[latest] += 1
            mix["overdue"] += 1 if doc.get("overdue") else 0
            if doc.get("accepted_at") and doc.get("sent_at"):
                waits.setdefault(agency, []).append((doc["accepted_at"] - doc["sent_at"]).total_seconds() / 3600)
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
        per_type: dict[str, Counter[str]] = {}
        for run in await repo.all_runs():
            if "course_type" not in run or (own and run.get("library") != caller.organisation):
                continue
            figures = per_type.setdefault(run["course_type"], Counter())
            figures["runs"] += 1
            figures["seats"] += run["capacity"] if run.get("status") == "scheduled" else 0
            states = Counter(run.get("enrolments", {}).values())
            figures["enrolled"] += states["enrolled"] + states["completed"]
            figures["waitlisted"] += states["waitlisted"]
            figures["completed"] += states["completed"]
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
        docs = await repo.all_readiness()
        if caller.role == "library":
            docs = [d for d in docs if d["_id"] == caller.organisation]
        elif caller.role != "kb":
            raise Problem(403, "Readiness is for libraries (their own) and KB staff")
        return {d["_id"]: d["trained"] for d in sorted(docs, key=lambda d: d["_id"])}

    @router.get("/monitor/subsidy", tags=["monitor"])
    async def subsidy(caller: Caller) -> dict[str, dict[str, int]]:
        """Per scheme: the ceiling, requested, granted (awarded), paid and remaining (euro cents) and
        the applications (KB staff)."""
        if caller.role != "kb":
            raise Problem(403, "Subsidy figures are for KB staff")
        per_scheme: dict[str, Counter[str]] = {}
        for doc in await repo.all_subsidies():
            figures = per_scheme.setdefault(doc["scheme"], Counter())
            figures["applications"] += 1
            figures["requested_cents"] += doc.get("requested_cents", 0)
            figures["granted_cents"] += doc.get("granted_cents", 0) + doc.get("extension_cents", 0)
            figures["paid_cents"] += sum(doc.get("paid", {}).values())
        for scheme, published in (await repo.all_schemes()).items():
            figures = per_scheme.setdefault(scheme, Counter())
            figures["budget_ceiling_cents"] = published["budget_ceiling_cents"]
            figures["remaining_cents"] = published["budget_ceiling_cents"] - figures["granted_cents"]
        return {scheme: dict(sorted(f.items())) for scheme, f in sorted(per_scheme.items())}

    @router.get("/monitor/rollout", tags=["monitor"])
    async def rollout(caller: Caller) -> dict[str, Any]:
        """IDO locations open at the end of each year against the national-coverage goal, and the
        15 pilot libraries compared with the rest."""
        locations = await repo.all_locations()
        years = sorted(set(COVERAGE_GOAL) | {loc["opened_at"].year for loc in locations})
        open_by = {y: sum(1 for loc in locations if loc["opened_at"].year <= y) for y in years}
        pilots = sum(1 for loc in locations if loc["library"] in reference.PILOT_LIBRARIES)
        return {
            "years": [{"year": y, "open": open_by[y], "goal": COVERAGE_GOAL.get(y)} for y in years],
            "pilot_locations": pilots,
            "other_locations": len(locations) - pilots,
        }

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
        rows = [{c: r.get(c, "") for c in FORM_COLUMNS} for r in await repo.rows_between(date_from, date_to, scope)]
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


def _totals(rows: list[dict[str, Any]], by: str, *, own: bool, threshold: int) -> dict[str, Any]:
    totals: Counter[str] = Counter()
    for r in rows:
        totals[r.get(by, "?") or "(geen)"] += r["count"]
    return {
        "by": by,
        "threshold": None if own else threshold,
        "counts": {k: v if own else suppress(v, threshold) for k, v in sorted(totals.items())},
    }


def _scope(caller: Principal, library: str | None) -> dict[str, str]:
    if caller.role == "library":
        return {"library": caller.organisation}
    if caller.role in ("kb", "agency"):
        return {"library": library} if library else {}
    raise Problem(403, "Not for this credential")


def _json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, ensure_ascii=False)


DASHBOARD = (Path(__file__).parent / "static" / "dashboard.html").read_text(encoding="utf-8")


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
        """Rebuild every read model from the start of every topic into a fresh version, which
        replaces the active one when complete."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff rebuild the read models")
        if not rebuild.start():
            raise Problem(409, "A rebuild is already running")
        return rebuild.status()

    @router.get("/rebuild", tags=["admin"])
    async def rebuild_status(caller: Caller) -> dict[str, Any]:
        """Progress of the last rebuild: state, events processed of the total, versions."""
        if caller.role != "kb":
            raise Problem(403, "Only KB staff rebuild the read models")
        return rebuild.status()

    return router
