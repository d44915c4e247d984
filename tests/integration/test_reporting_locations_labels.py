"""Reporting (issue 10, reporting): a location is keyed by library and code (two libraries'
`centrum` are two locations everywhere), the Dutch labels the dashboard draws come from one
table the API serves, and the rollout goals per year are data the KB maintains."""

import asyncio
import shutil
from datetime import UTC, date, datetime

import pytest

from services.reporting.entrypoints import http
from shared import migrations, reference
from shared.db import Database
from shared.settings import REPO_ROOT
from tests.integration.test_reporting_api import location, project_all, reporting_client, visit

pytestmark = pytest.mark.infra

DIGID = ("digital_government", "digid", "app")
CENTRA = [
    *(visit(f"v-{i}", "venlo", date(2026, 11, 2), [DIGID], location="centrum") for i in range(6)),
    *(visit(f"z-{i}", "zeeland", date(2026, 11, 3), [DIGID], location="centrum") for i in range(2)),
    visit("z-9", "zeeland", date(2026, 11, 3), [DIGID]),  # no location named
    location("centrum", "venlo", datetime(2020, 3, 1, tzinfo=UTC)),
    location("centrum", "zeeland", datetime(2021, 3, 1, tzinfo=UTC)),
    location("centrum", "zeeland", datetime(2024, 3, 1, tzinfo=UTC)),  # an update: still opened in 2021
]


@pytest.fixture
async def reporting(migrated):
    db = await migrated("reporting")
    await project_all(db, CENTRA)
    async with reporting_client(db) as client:
        yield client, db


def as_(who: str) -> dict[str, str]:
    return {"X-As": who}


async def test_two_libraries_centrum_locations_are_counted_apart(reporting):
    client, _ = reporting
    params = {"by": "location", "year": 2026}
    answer = (await client.get("/v1/monitor/questions", params=params, headers=as_("kb"))).json()
    # Two cells, not one "centrum" (the small ones protected as the other tests prove).
    assert answer["counts"] == {"(geen)": "<5", "venlo:centrum": 6, "zeeland:centrum": "<5"}, answer
    own = await client.get("/v1/monitor/questions", params=params, headers=as_("library:zeeland"))
    assert own.json()["counts"] == {"(geen)": 1, "zeeland:centrum": 2}


async def test_the_exports_name_a_location_by_library_and_code(reporting):
    client, _ = reporting
    rows = (await client.get("/v1/exports/questions.json", headers=as_("kb"))).json()
    assert {(r["library"], r["location"]) for r in rows} == {
        ("venlo", "venlo:centrum"),
        ("zeeland", "zeeland:centrum"),
        ("zeeland", ""),
    }
    text = (await client.get("/v1/exports/questions.csv", headers=as_("library:zeeland"))).text
    assert "zeeland:centrum" in text and "venlo" not in text


async def test_the_rollout_keys_locations_by_library_and_code(reporting):
    client, db = reporting
    async with db.pool.acquire() as conn:
        key = await conn.fetch(
            """SELECT a.attname FROM pg_index i
               JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
               WHERE i.indrelid = 'locations'::regclass AND i.indisprimary ORDER BY a.attname"""
        )
        rows = await conn.fetch("SELECT library, code, opened_at FROM locations ORDER BY library")
    assert [r["attname"] for r in key] == ["code", "library", "version"]
    assert [(r["library"], r["code"], r["opened_at"].year) for r in rows] == [
        ("venlo", "centrum", 2020),
        ("zeeland", "centrum", 2021),
    ]
    rollout = (await client.get("/v1/monitor/rollout", headers=as_("kb"))).json()
    assert [(y["year"], y["open"]) for y in rollout["years"]] == [(2019, 0), (2020, 1), (2021, 2), (2022, 2)]
    assert rollout["pilot_locations"] == 2


async def test_one_label_table_for_statuses_outcomes_themes_and_course_types(reporting):
    client, _ = reporting
    answer = await client.get("/v1/labels")  # public: labels are no figures
    assert answer.status_code == 200
    labels = answer.json()
    assert labels["statuses"]["got_help"] == "Geholpen"
    assert labels["statuses"]["no_longer_interested"] == "Geen interesse meer"
    assert labels["outcomes"]["helped_at_desk"] == "Geholpen aan de balie"
    assert labels["themes"] == {code: t.label for code, t in reference.THEMES.items()}
    assert labels["course_types"]["klik-en-tik-veilig-online"] == "Klik & Tik: Veilig online"
    assert labels["organisations"]["belastingdienst"] == reference.AGENCIES["belastingdienst"]


def test_the_dashboard_draws_labels_from_the_api_with_the_code_in_a_title():
    page = http.DASHBOARD
    assert 'get("/v1/labels")' in page
    assert 'svg("title"' in page


async def test_the_rollout_goals_are_data_the_kb_maintains(reporting):
    client, _ = reporting
    goals = [
        (y["year"], y["goal"]) for y in (await client.get("/v1/monitor/rollout", headers=as_("kb"))).json()["years"]
    ]
    assert goals == [(2019, 29), (2020, 73), (2021, 439), (2022, 664)], "seeded"

    answer = await client.put("/v1/monitor/rollout/goals/2023", json={"goal": 800}, headers=as_("kb"))
    assert answer.status_code == 200 and answer.json() == {"year": 2023, "goal": 800}
    answer = await client.put("/v1/monitor/rollout/goals/2022", json={"goal": 700}, headers=as_("kb"))
    assert answer.status_code == 200
    years = (await client.get("/v1/monitor/rollout", headers=as_("kb"))).json()["years"]
    assert [(y["year"], y["open"], y["goal"]) for y in years][-2:] == [(2022, 2, 700), (2023, 2, 800)]

    for who in ("library:venlo", "agency:uwv", "service:routing"):
        answer = await client.put("/v1/monitor/rollout/goals/2023", json={"goal": 1}, headers=as_(who))
        assert answer.status_code == 403, who
    for year, body in (
        (2023, {"goal": -1}),
        (2023, {"goal": "veel"}),
        (2023, {}),
        (1800, {"goal": 10}),
        ("volgend-jaar", {"goal": 10}),
    ):
        answer = await client.put(f"/v1/monitor/rollout/goals/{year}", json=body, headers=as_("kb"))
        assert answer.status_code == 422, (year, body)
        assert answer.headers["content-type"].startswith("application/problem+json")
    years = (await client.get("/v1/monitor/rollout", headers=as_("kb"))).json()["years"]
    assert years[-1] == {"year": 2023, "open": 2, "goal": 800}, "bad input changes nothing"


async def test_the_migration_keys_existing_locations_by_library_and_code(infra, database_url, tmp_path):
    """0003 on a database that holds locations keyed by `location_id` (`<library>:<code>`)."""
    source = REPO_ROOT / "services" / "reporting" / "migrations"
    for applied in ("0001.read-models.sql", "0002.questions-by-theme.sql"):
        shutil.copy(source / applied, tmp_path / applied)
    await asyncio.to_thread(migrations.apply, database_url, infra.pgpassfile, tmp_path)
    db = Database(database_url, infra.pgpassfile)
    await db.connect()
    try:
        async with db.pool.acquire() as conn:
            await conn.execute(
                """INSERT INTO locations (version, location_id, library, opened_at) VALUES
                   (1, 'venlo:centrum', 'venlo', '2020-03-01Z'), (1, 'zeeland:centrum', 'zeeland', '2021-03-01Z')"""
            )
        await asyncio.to_thread(migrations.apply, database_url, infra.pgpassfile, source)
        async with db.pool.acquire() as conn:
            rows = await conn.fetch("SELECT library, code FROM locations ORDER BY library")
            goals = await conn.fetch("SELECT year, goal FROM rollout_goals ORDER BY year")
    finally:
        await db.close()
    assert [tuple(r) for r in rows] == [("venlo", "centrum"), ("zeeland", "centrum")]
    assert [tuple(r) for r in goals] == [(2019, 29), (2020, 73), (2021, 439), (2022, 664)]
