"""Reporting's API on the real database: events projected by the live handler, then every
monitor view and the exports as a library, an agency and KB staff see them (exact answers for
a library's own figures and an agency's own referrals; protected ones for the others)."""

import csv
import io
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import FastAPI, Header

from services.reporting import handlers
from services.reporting.adapters.repository import ReportingQueries, ReportingUnitOfWork
from services.reporting.entrypoints import http
from shared.auth import Principal
from shared.events import catalog
from shared.http import install_conventions
from shared.outbox import EventFactory

pytestmark = pytest.mark.infra

FACTORY = EventFactory(service="test", oin="00000001003214345000", base_url="http://test")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def event(data: catalog.EventData, at: datetime | None = None):
    created = FACTORY.create(data, correlation_id=None).event
    return (created.model_copy(update={"time": at}) if at else created), data


def visit(hr: str, library: str, on: date, questions: list[tuple], **facts) -> tuple:
    return event(
        catalog.HelpRequested(
            help_request_id=hr,
            library=library,
            questions=[
                catalog.QuestionFacts(index=i, category=c, theme=t, subtheme=s) for i, (c, t, s) in enumerate(questions)
            ],
            registered_at=datetime(on.year, on.month, on.day, 10, tzinfo=UTC),
            **{"channel": "walk_in", "help_given": ["informed"], **facts},
        )
    )


def routed(hr: str, library: str, *decisions: tuple) -> tuple:
    return event(
        catalog.HelpRequestRouted(
            help_request_id=hr,
            library=library,
            decisions=[
                catalog.QuestionDecision(question_index=i, outcome=outcome, organisation=organisation)
                for i, (outcome, organisation) in enumerate(decisions)
            ],
        )
    )


def referral(ref: str, agency: str, library: str = "venlo") -> tuple:
    data = catalog.ReferredToAgency(referral_id=ref, help_request_id="hr-1", agency=agency, library=library, theme="x")
    return event(data, at=T0)


def referral_status(ref: str, agency: str, sequence: int, status: str, hours: float = 0) -> tuple:
    return event(
        catalog.ReferralStatusChanged(
            referral_id=ref,
            help_request_id="hr-1",
            question_index=0,
            agency=agency,
            library="venlo",
            status=status,
            changed_at=T0 + timedelta(hours=hours),
            sequence=sequence,
        )
    )


def overdue(ref: str, agency: str) -> tuple:
    return event(
        catalog.ReferralOverdue(
            referral_id=ref,
            help_request_id="hr-1",
            question_index=0,
            agency=agency,
            library="venlo",
            status="sent",
            due_at=T0,
            detected_at=T0,
        )
    )


def location(code: str, library: str, registered: datetime) -> tuple:
    return event(
        catalog.IdoLocationRegistered(
            location_id=f"{library}:{code}",
            library=library,
            code=code,
            name="IDO",
            postcode="1234 AB",
            city="X",
            opening_hours_per_week=10,
            staff=2,
            volunteers=1,
            registered_at=registered,
        )
    )


def course(kind: type, run: str, library: str, course_type: str, **facts) -> tuple:
    return event(kind(run_id=run, library=library, course_type=course_type, **facts))


def scheduled(run: str, library: str, course_type: str, capacity: int) -> tuple:
    return course(
        catalog.CourseRunScheduled,
        run,
        library,
        course_type,
        location="centrum",
        postcode="1234 AB",
        capacity=capacity,
        first_session_at=T0,
        sessions=3,
    )


def enrolment(kind: type, run: str, library: str, course_type: str, enrolment_id: str, **facts) -> tuple:
    return course(kind, run, library, course_type, enrolment_id=enrolment_id, position=1, at=T0, **facts)


def subsidy(kind: type, application: str, library: str, **facts) -> tuple:
    return event(kind(application_id=application, scheme="s-2026", library=library, **facts))


def scheme(code: str, ceiling: int) -> tuple:
    return event(
        catalog.SubsidySchemePublished(
            scheme=code, name=code.upper(), opens=T0, closes=T0 + timedelta(days=30), budget_ceiling_cents=ceiling
        )
    )


OCT, NOV = date(2026, 10, 5), date(2026, 11, 5)
TOESLAGEN = ("digital_government", "toeslagen", "huurtoeslag")
ZEELAND = [("digital_government", "digid", "app"), ("other", "overig", None)]
EVENTS = [
    *(visit(f"hr-{i}", "venlo", OCT if i <= 3 else NOV, [TOESLAGEN]) for i in range(1, 7)),
    visit(
        "hr-7",
        "zeeland",
        date(2026, 11, 6),
        ZEELAND,
        channel="phone",
        location="middelburg",
        duration_minutes=15,
        help_given=["coached", "informed"],
    ),
    routed("hr-1", "venlo", ("referred", "belastingdienst")),
    *(routed(f"hr-{i}", "venlo", ("informed", None)) for i in range(2, 7)),
    routed("hr-7", "zeeland", ("informed", None), ("helped_at_desk", None)),
    referral("ref-1", "belastingdienst"),
    referral_status("ref-1", "belastingdienst", 2, "got_help", hours=30),  # arrives before the first status
    referral_status("ref-1", "belastingdienst", 1, "accepted", hours=2),
    referral("ref-2", "belastingdienst"),
    overdue("ref-2", "belastingdienst"),
    referral("ref-3", "uwv"),
    referral_status("ref-3", "uwv", 1, "accepted", hours=4),
    location("centrum", "venlo", datetime(2020, 3, 1, tzinfo=UTC)),
    location("noord", "elders", datetime(2021, 6, 1, tzinfo=UTC)),
    location("centrum", "venlo", datetime(2023, 1, 1, tzinfo=UTC)),  # an update: opened in 2020 still
    scheduled("run-1", "venlo", "klik-en-tik", 2),
    enrolment(catalog.ParticipantEnrolled, "run-1", "venlo", "klik-en-tik", "e-1"),
    enrolment(catalog.ParticipantEnrolled, "run-1", "venlo", "klik-en-tik", "e-2"),
    enrolment(catalog.CourseCompleted, "run-1", "venlo", "klik-en-tik", "e-2", sessions_attended=3),
    enrolment(catalog.ParticipantWaitlisted, "run-1", "venlo", "klik-en-tik", "e-3"),
    scheduled("run-2", "venlo", "klik-en-tik", 5),
    course(catalog.CourseRunCancelled, "run-2", "venlo", "klik-en-tik", at=T0),
    scheduled("run-3", "zeeland", "digisterker", 4),
    enrolment(catalog.ParticipantEnrolled, "run-3", "zeeland", "digisterker", "e-4"),
    event(catalog.LibraryReadinessChanged(library="venlo", trained_staff={"klik-en-tik": 3}, at=T0)),
    event(catalog.LibraryReadinessChanged(library="venlo", trained_staff={"klik-en-tik": 4, "digisterker": 1}, at=T0)),
    event(catalog.LibraryReadinessChanged(library="zeeland", trained_staff={"klik-en-tik": 1}, at=T0)),
    scheme("s-2026", 1_000_000),
    scheme("s-2027", 2_000_000),
    subsidy(catalog.SubsidyApplied, "app-1", "venlo", requested_cents=500_000, ido_opening_date=OCT, applied_at=T0),
    subsidy(catalog.SubsidyGranted, "app-1", "venlo", granted_cents=400_000, partial=True, reason="r", decided_at=T0),
    subsidy(catalog.SubsidyPaid, "app-1", "venlo", tranche="advance", amount_cents=200_000, paid_at=T0),
    subsidy(catalog.SubsidyPaid, "app-1", "venlo", tranche="advance", amount_cents=200_000, paid_at=T0),
    subsidy(catalog.SubsidyRenewed, "app-1", "venlo", year=2027, amount_cents=50_000, signed_by="x", renewed_at=T0),
    subsidy(catalog.SubsidyPaid, "app-1", "venlo", tranche="extension", amount_cents=50_000, paid_at=T0),
    subsidy(catalog.SubsidyApplied, "app-2", "zeeland", requested_cents=300_000, ido_opening_date=OCT, applied_at=T0),
    subsidy(catalog.SubsidyRejected, "app-2", "zeeland", reason="r", decided_at=T0),
]


async def project_all(db, events) -> None:
    for created, data in events:
        async with db.unit_of_work() as tx:
            await handlers.on_event(created, data, uow=ReportingUnitOfWork(tx))


YEARLY = {"/v1/monitor/questions", "/v1/monitor/outcomes", "/v1/monitor/help-given", "/v1/monitor/referrals"}


def caller(x_as: Annotated[str, Header()]) -> Principal:
    role, _, organisation = x_as.partition(":")
    return Principal(role, organisation or "kb", "test")  # type: ignore[arg-type]


@asynccontextmanager
async def reporting_client(db):
    """An HTTP client of reporting's API on this database (the caller in header X-As)."""
    app = FastAPI()
    install_conventions(app, "test", 1024)
    app.include_router(http.build_router(authenticated=caller, queries=ReportingQueries(db), threshold=5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reporting") as client:
        yield client


@asynccontextmanager
async def reporting_api(db):
    """`get(path, who, **params)` -> (status, body) against the API on this database."""
    async with reporting_client(db) as client:

        async def get(path: str, who: str = "kb", **params):
            if path in YEARLY and "month_from" not in params and "month_to" not in params:
                params.setdefault("year", 2026)  # the events' year, whatever today is
            answer = await client.get(path, params=params, headers={"X-As": who})
            return answer.status_code, answer.json() if "json" in answer.headers["content-type"] else answer.text

        yield get


# Every view of the API, as KB staff, a library and an agency see it.
VIEWS = [
    *(
        ("/v1/monitor/questions", who, {"by": by})
        for by in ("theme", "month", "library", "location", "subtheme")
        for who in ("kb", "library:venlo", "agency:belastingdienst")
    ),
    *(
        ("/v1/monitor/outcomes", who, {"by": by})
        for by in ("organisation", "outcome")
        for who in ("kb", "library:venlo")
    ),
    ("/v1/monitor/help-given", "kb", {}),
    ("/v1/monitor/help-given", "agency:belastingdienst", {}),
    ("/v1/monitor/referrals", "kb", {}),
    ("/v1/monitor/courses", "kb", {}),
    ("/v1/monitor/courses", "library:venlo", {}),
    ("/v1/monitor/readiness", "kb", {}),
    ("/v1/monitor/subsidy", "kb", {}),
    ("/v1/monitor/rollout", "kb", {}),
    ("/v1/exports/questions.json", "kb", {}),
]


async def all_views(get) -> list:
    return [await get(path, who, **params) for path, who, params in VIEWS]


@pytest.fixture
async def api(migrated):
    db = await migrated("reporting")
    await project_all(db, EVENTS)
    async with reporting_api(db) as get:
        yield get


async def test_questions_by_dimension_for_kb_library_and_agency(api):
    assert await api("/v1/monitor/questions") == (
        200,
        {
            "by": "theme",
            "year": 2026,
            "threshold": 5,
            "withheld": False,
            "counts": {"digid": "<5", "overig": "<5", "toeslagen": "x"},
        },
    ), "8 in all, 2 of them '<5' (each at least 1): the 6 would give both back"
    assert (await api("/v1/monitor/questions", "library:venlo", by="subtheme"))[1] == {
        "by": "subtheme",
        "year": 2026,
        "threshold": None,
        "counts": {"huurtoeslag": 6},
    }
    zeeland = (await api("/v1/monitor/questions", by="subtheme", library="zeeland"))[1]
    assert zeeland["withheld"] is True and zeeland["counts"] == {}, "a breakdown with small figures: withheld"
    venlo = (await api("/v1/monitor/questions", by="subtheme", library="venlo"))[1]
    assert venlo["withheld"] is True, "and a second one, or national minus the shown rows gives it back"
    by_location = (await api("/v1/monitor/questions", by="location"))[1]["counts"]
    assert by_location == {"(geen)": "x", "zeeland:middelburg": "<5"}
    assert (await api("/v1/monitor/questions", by="month"))[1]["counts"] == {"2026-10": "<5", "2026-11": "x"}
    status, problem = await api("/v1/monitor/questions", by="month", month_from="2026-11")
    assert status == 422 and problem["invalid-params"][0]["name"] == "month_from", "ranges would give months away"
    own = await api("/v1/monitor/questions", "library:venlo", by="month", month_from="2026-11")
    assert own[1]["counts"] == {"2026-11": 3}, "a library's own figures: any range of months"
    assert (await api("/v1/monitor/questions", by="channel"))[1]["counts"] == {"phone": "<5", "walk_in": "x"}
    assert (await api("/v1/monitor/questions", by="month", year=2025))[1]["counts"] == {}
    assert (await api("/v1/monitor/questions", "agency:belastingdienst"))[1]["counts"] == {"toeslagen": 6}
    assert (await api("/v1/monitor/questions", "agency:uwv"))[1]["counts"] == {}
    assert (await api("/v1/monitor/questions", "library:venlo", library="zeeland"))[1]["counts"] == {"toeslagen": 6}
    assert (await api("/v1/monitor/questions", "service:routing"))[0] == 403
    assert (await api("/v1/monitor/questions", by="colour"))[0] == 422


async def test_outcomes_and_help_given(api):
    assert (await api("/v1/monitor/outcomes"))[1] == {
        "by": "organisation",
        "year": 2026,
        "threshold": 5,
        "withheld": False,
        "counts": {"(geen)": 7, "belastingdienst": "<5", "uwv": "<5"},
    }
    assert (await api("/v1/monitor/outcomes", by="outcome"))[1]["counts"] == {
        "helped_at_desk": "<5",
        "informed": "x",
        "referred": "<5",
    }
    assert (await api("/v1/monitor/outcomes", "agency:belastingdienst"))[1] == {
        "by": "organisation",
        "year": 2026,
        "threshold": None,
        "withheld": False,
        "counts": {"belastingdienst": 2},
    }, "an agency's own referrals: exact, it received each one"
    assert (await api("/v1/monitor/outcomes", "library:venlo", by="outcome"))[1]["counts"] == {
        "informed": 5,
        "referred": 1,
    }
    assert (await api("/v1/monitor/help-given"))[1] == {
        "by": "help",
        "year": 2026,
        "threshold": 5,
        "withheld": False,
        "counts": {"coached": "<5", "informed": 7},
    }
    assert (await api("/v1/monitor/help-given", "library:zeeland"))[1]["counts"] == {"coached": 1, "informed": 1}


async def test_an_agency_sees_how_visitors_were_helped_only_in_its_own_domain(api):
    """Issue 10.3: an agency's help-given covers the visits with questions in its domain, as its
    other views do, not every library's and theme's."""
    assert (await api("/v1/monitor/help-given", "agency:uwv"))[1]["counts"] == {}, "no uwv questions at all"
    kb = (await api("/v1/monitor/help-given"))[1]["counts"]
    belastingdienst = (await api("/v1/monitor/help-given", "agency:belastingdienst"))[1]["counts"]
    assert set(belastingdienst) <= set(kb) and belastingdienst, "the toeslagen visits only"
    assert belastingdienst != kb


async def test_referrals_per_agency(api):
    # For KB staff: a share or a median of fewer than five referrals would give them away.
    hidden = {"overdue_share": "x", "median_hours_to_accept": "x"}
    belastingdienst = {"statuses": {"got_help": "<5", "sent": "<5"}, **hidden}
    uwv = {"statuses": {"accepted": "<5"}, **hidden}
    assert await api("/v1/monitor/referrals") == (200, {"belastingdienst": belastingdienst, "uwv": uwv})
    # An agency sees its own referrals exactly.
    own = {"statuses": {"accepted": 1}, "overdue_share": 0.0, "median_hours_to_accept": 4.0}
    assert await api("/v1/monitor/referrals", "agency:uwv") == (200, {"uwv": own})
    assert (await api("/v1/monitor/referrals", "agency:belastingdienst"))[1]["belastingdienst"]["overdue_share"] == 0.5
    assert (await api("/v1/monitor/referrals", "library:venlo"))[0] == 403


async def test_courses_readiness_rollout_and_subsidy(api):
    assert await api("/v1/monitor/courses") == (
        200,
        {
            "digisterker": {
                "completed": 0,
                "enrolled": "<5",
                "runs": 1,
                "seats": 4,
                "waitlisted": 0,
                "fill_rate": "x",  # times the seats it would give the enrolled back
            },
            "klik-en-tik": {
                "completed": "<5",
                "enrolled": "<5",
                "runs": 2,
                "seats": 2,
                "waitlisted": "<5",
                "fill_rate": "x",
            },
        },
    )
    assert (await api("/v1/monitor/courses", "library:venlo"))[1] == {
        "klik-en-tik": {"completed": 1, "enrolled": 2, "runs": 2, "seats": 2, "waitlisted": 1, "fill_rate": 1.0}
    }
    assert (await api("/v1/monitor/courses", "agency:uwv"))[0] == 403

    trained = {"venlo": {"klik-en-tik": 4, "digisterker": 1}, "zeeland": {"klik-en-tik": 1}}
    assert await api("/v1/monitor/readiness") == (200, trained)
    assert await api("/v1/monitor/readiness", "library:zeeland") == (200, {"zeeland": trained["zeeland"]})
    assert (await api("/v1/monitor/readiness", "agency:uwv"))[0] == 403

    status, rollout = await api("/v1/monitor/rollout")
    assert status == 200 and rollout == {
        "years": [
            {"year": 2019, "open": 0, "goal": 29},
            {"year": 2020, "open": 1, "goal": 73},
            {"year": 2021, "open": 2, "goal": 439},
            {"year": 2022, "open": 2, "goal": 664},
        ],
        "pilot_locations": 1,
        "other_locations": 1,
    }

    assert await api("/v1/monitor/subsidy") == (
        200,
        {
            "s-2026": {
                "applications": 2,
                "budget_ceiling_cents": 1_000_000,
                "granted_cents": 450_000,
                "paid_cents": 250_000,
                "remaining_cents": 550_000,
                "requested_cents": 800_000,
            },
            "s-2027": {  # published, no applications yet: zeros, so a chart never meets a gap
                "applications": 0,
                "budget_ceiling_cents": 2_000_000,
                "granted_cents": 0,
                "paid_cents": 0,
                "remaining_cents": 2_000_000,
                "requested_cents": 0,
            },
        },
    )
    assert (await api("/v1/monitor/subsidy", "library:venlo"))[0] == 403


async def test_the_registration_form_exports(api):
    status, text = await api("/v1/exports/questions.csv", "library:venlo")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert status == 200 and text.splitlines()[0] == ",".join(http.FORM_COLUMNS)
    assert [r["help_request_id"] for r in rows] == [f"hr-{i}" for i in range(1, 7)]
    assert rows[0] | {} == {
        "help_request_id": "hr-1",
        "question": "1",
        "date": "2026-10-05",
        "library": "venlo",
        "location": "",
        "channel": "walk_in",
        "category": "digital_government",
        "theme": "toeslagen",
        "subtheme": "huurtoeslag",
        "help_given": "informed",
        "outcome": "referred",
        "referred_to": "belastingdienst",
        "duration_minutes": "",
    }
    status, rows = await api("/v1/exports/questions.json", **{"from": "2026-11-06", "library": "zeeland"})
    assert status == 200 and rows == [
        {
            "help_request_id": "hr-7",
            "question": question,
            "date": "2026-11-06",
            "library": "zeeland",
            "location": "zeeland:middelburg",
            "channel": "phone",
            "category": category,
            "theme": theme,
            "subtheme": subtheme,
            "help_given": "coached;informed",
            "outcome": outcome,
            "referred_to": "",
            "duration_minutes": 15,
        }
        for question, category, theme, subtheme, outcome in (
            (1, "digital_government", "digid", "app", "informed"),
            (2, "other", "overig", "", "helped_at_desk"),
        )
    ]
    assert len((await api("/v1/exports/questions.json", **{"to": "2026-10-31"}))[1]) == 3
    assert (await api("/v1/exports/questions.json", **{"from": "2026-11-07"}))[1] == []
    assert (await api("/v1/exports/questions.json", "library:zeeland", library="venlo"))[1][0]["library"] == "zeeland"
    assert (await api("/v1/exports/questions.json", "agency:belastingdienst"))[0] == 403
    status, problem = await api("/v1/exports/questions.json", **{"from": "2026-02-30"})
    assert status == 422 and problem["invalid-params"][0]["name"] == "from"
