"""Two instances of every service (instance 1 on the port + 100), as `make up INSTANCES=2`
runs them: each API answers on both ports with the same data, and the rules that need the
database's help hold when the requests are split over both instances."""

import asyncio
import os
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from shared import reference
from shared.db import connect
from shared.settings import REPO_ROOT
from tests.e2e.conftest import INSTANCES, INTAKE, SERVICES, credential, instance, url
from tests.e2e.test_courses import register_location, sessions
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra
COURSES, SUBSIDY = url("courses", 8003), url("subsidy", 8004)
VISIT = {
    "channel": "walk_in",
    "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag"}],
    "referral": {"consent": True, "contact_preference": "phone", "contact": {"phone": "0612345678"}},
}


@pytest.fixture(autouse=True)
def two_instances(system):
    if INSTANCES < 2:
        pytest.skip("IDO_E2E_INSTANCES=1: the system runs one instance of each service")


async def test_a_visit_registered_on_one_instance_is_read_and_referred_on_the_other(library_token):
    headers = {"Authorization": f"Bearer {library_token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        created = await http.post(f"{instance(INTAKE, 1)}/v1/help-requests", json=VISIT, headers=headers)
        assert created.status_code == 201
        path = created.headers["Location"]

        async def referred():
            answer = await http.get(f"{instance(INTAKE, 0)}{path}", headers=headers)
            return answer.json()["status"] == "referred" and answer.json()

        seen = await eventually(referred)
    assert seen["referrals"][0]["organisation"] == "belastingdienst"


async def test_fifty_enrolments_split_over_two_instances_seat_exactly_eight(intake):
    library = {"Authorization": f"Bearer {credential('--library', 'gooi-en-meer')}"}
    async with httpx.AsyncClient(base_url=COURSES, timeout=30) as courses:
        await register_location(intake, library, "hilversum", "1211 AA", courses)
        body = {"course_type": "klik-en-tik", "location": "hilversum", "sessions": sessions(12, 8), "capacity": 8}
        run_id = (await courses.post("/v1/course-runs", json=body, headers=library)).json()["id"]

    async def enrol(i: int, http: httpx.AsyncClient) -> str:
        person = {"name": f"Deelnemer {i}", "contact": {"email": f"p{i}@example.nl"}, "consent": True}
        answer = await http.post(
            f"{instance(COURSES, i % 2)}/v1/course-runs/{run_id}/enrolments", json=person, headers=library
        )
        assert answer.status_code == 201, answer.text
        return answer.json()["status"]

    async with httpx.AsyncClient(timeout=30) as http:
        statuses = await asyncio.gather(*(enrol(i, http) for i in range(50)))
        listed = (await http.get(f"{instance(COURSES, 1)}/v1/course-runs/{run_id}/enrolments", headers=library)).json()
    assert statuses.count("enrolled") == 8 and statuses.count("waitlisted") == 42
    assert sum(e["status"] == "enrolled" for e in listed) == 8


async def test_grants_split_over_two_instances_never_pass_the_budget_ceiling():
    """Eight libraries apply; the KB grants all eight at once, half on each instance; the
    ceiling has room for five. Exactly five are granted, three refused, nothing more reserved."""
    libraries = list(reference.PILOT_LIBRARIES)[:8]
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    code, now = f"split-{uuid.uuid4().hex[:6]}", datetime.now(UTC)
    scheme = {
        "name": "Regeling voor de test met twee instanties",
        "opens": (now - timedelta(days=1)).isoformat(),
        "closes": (now + timedelta(days=30)).isoformat(),
        "rates": {str(now.year): "0.05"},
        "budget_ceiling_cents": 5 * 1_000_00,
    }
    async with httpx.AsyncClient(base_url=SUBSIDY, timeout=30) as subsidy:
        assert (await subsidy.put(f"/v1/schemes/{code}", json=scheme, headers=kb)).status_code == 200
        ids = []
        for library in libraries:
            headers = {"Authorization": f"Bearer {credential('--library', library)}"}
            body = {
                "scheme": code,
                "inhabitants": 50_000,
                "ido_opening_date": f"{now.year}-12-01",
                "planned_course_offers": 2,
                "contact_person": {"name": "A. B.", "email": "a.b@bieb.nl"},
            }
            applied = await subsidy.post("/v1/applications", json=body, headers=headers)
            assert applied.status_code == 201, applied.text
            ids.append(applied.json()["id"])

    grant = {"decision": "grant", "reason": "binnen het budget", "amount_cents": 1_000_00}
    async with httpx.AsyncClient(timeout=30) as http:
        answers = await asyncio.gather(
            *(
                http.post(f"{instance(SUBSIDY, i % 2)}/v1/applications/{a}/decision", json=grant, headers=kb)
                for i, a in enumerate(ids)
            )
        )
        same = await asyncio.gather(
            *(
                http.post(f"{instance(SUBSIDY, i % 2)}/v1/applications/{ids[0]}/decision", json=grant, headers=kb)
                for i in range(6)
            )
        )
        overview = (await http.get(f"{instance(SUBSIDY, 1)}/v1/schemes/{code}/overview", headers=kb)).json()
    assert sorted(a.status_code for a in answers) == [200] * 5 + [409] * 3
    assert all(a.status_code == 409 for a in same), "a decided application is never decided again"
    assert overview["reserved_cents"] == 5 * 1_000_00 and overview["remaining_cents"] == 0


async def relaying_port(infra) -> int | None:
    """The port of the intake instance whose outbox relay holds the lock, from pg_stat_activity."""
    admin = await connect(infra.pg_admin_url.rsplit("/", 1)[0] + "/ido_intake", infra.pgpassfile)
    try:
        name = await admin.fetchval(
            """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)
               WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'ido-intake outbox relay%'
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
        )
    finally:
        await admin.close()
    return int(name.rsplit(":", 1)[1]) if name else None


async def test_when_the_relaying_instance_is_killed_another_takes_over(infra, library_token):
    """SIGKILL the intake instance that publishes the outbox: the other instance takes the lock
    within seconds and the visits registered meanwhile still reach routing."""
    headers = {"Authorization": f"Bearer {library_token}"}
    leader = await eventually(lambda: relaying_port(infra))
    k = (leader - int(INTAKE.rsplit(":", 1)[1])) // 100
    survivor = instance(INTAKE, 1 - k)
    pidfile = REPO_ROOT / ".local" / "run" / ("intake.pid" if k == 0 else f"intake-{k}.pid")
    os.killpg(int(pidfile.read_text()), signal.SIGKILL)
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            paths = []
            for _ in range(5):
                created = await http.post(f"{survivor}/v1/help-requests", json=VISIT, headers=headers)
                assert created.status_code == 201
                paths.append(created.headers["Location"])

            async def all_referred():
                answers = [await http.get(f"{survivor}{path}", headers=headers) for path in paths]
                return all(a.json()["status"] == "referred" for a in answers)

            await eventually(all_referred, timeout=30, interval=1.0)  # 5 reads a round: within the rate limit
        assert await relaying_port(infra) == int(survivor.rsplit(":", 1)[1])
    finally:
        env = {**os.environ, "INSTANCES": str(INSTANCES)}  # the killed instance comes back
        subprocess.run([str(SERVICES), "start"], capture_output=True, timeout=300, env=env, check=True)
