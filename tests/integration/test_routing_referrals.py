"""The closed loop on the real database, through routing's HTTP API and with two pools as two
instances: status reports on one referral serialize on its row lock (no lost update, an
illegal transition still answers 409), and every handover read is recorded with its event."""

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx
import pytest
from fastapi import FastAPI, Request

from services.routing import handlers
from services.routing.adapters.repository import RoutingUnitOfWork, seed_reference_data
from services.routing.domain.model import referral_id
from services.routing.domain.referral import InvalidTransition
from services.routing.entrypoints.consumers import help_request_handlers
from services.routing.entrypoints.http import build_router
from shared.auth import Principal, Role
from shared.consuming import EventConsumer
from shared.events.catalog import HelpRequested, PersonalDataErased, QuestionFacts
from shared.http import install_conventions
from shared.outbox import EventFactory
from shared.sealing import new_data_key, seal
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
OIN = "00000001003214345000"
INTAKE = EventFactory(service="intake", oin=OIN, base_url="http://127.0.0.1:8001")
ROUTING = EventFactory(service="routing", oin=OIN, base_url="http://127.0.0.1:8002")
HANDOVER = "http://127.0.0.1:8002/v1/referrals/{referral_id}"
CJIB = Principal(role="agency", organisation="cjib", credential_id="cred-cjib")
KEY = new_data_key()
REFERRAL = referral_id("hr-1", 0)


class Topics:
    async def ensure(self, organisation: str) -> None:
        pass


class Keys:
    """Stands in for intake's data-key endpoint: the key until it is destroyed."""

    def __init__(self) -> None:
        self.keys = {"hr-1": KEY}

    async def fetch(self, help_request_id: str) -> bytes | None:
        return self.keys.get(help_request_id)


def fake_authenticated(request: Request) -> Principal:
    """`Authorization: Bearer <role>:<organisation>` stands in for a signed credential."""
    role, _, organisation = request.headers["authorization"].removeprefix("Bearer ").partition(":")
    return Principal(role=cast(Role, role), organisation=organisation, credential_id=f"cred-{organisation}")


def as_(caller: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller}"}


AS_CJIB, AS_UWV, AS_KB, AS_LIBRARY = as_("agency:cjib"), as_("agency:uwv"), as_("kb:kb"), as_("library:katwijk")


async def routed_help_request(db) -> None:
    """Seed reference data and route hr-1: one question, referred to CJIB, with sealed details."""
    async with db.unit_of_work() as tx:
        await seed_reference_data(RoutingUnitOfWork(tx))
    personal = {
        "contact": {"name": "J. Jansen", "phone": "0612345678", "email": "j@example.nl"},
        "notes": {"0": "boete"},
    }
    data = HelpRequested(
        help_request_id="hr-1",
        library="katwijk",
        channel="walk_in",
        questions=[QuestionFacts(index=0, category="digital_government", theme="verkeer", subtheme="verkeersboete")],
        referral_consent=True,
        contact_preference="phone",
        registered_at=NOW,
        sealed=seal(KEY, personal, bound_to="hr-1"),
    )
    await handle(db, data)


async def handle(db, data) -> bool:
    routing = help_request_handlers(ROUTING, HANDOVER, Topics(), timedelta(days=5), lambda: NOW)
    event = INTAKE.create(data, correlation_id="corr-1").event
    consumer = EventConsumer(None, db, group_id="ido-routing")  # type: ignore[arg-type]
    return await consumer._handle_once(routing[event.name], event, data)


def client_for(db, keys: Keys | None = None, now: datetime = NOW) -> httpx.AsyncClient:
    app = FastAPI()
    install_conventions(app, "1.0.0", 65536)
    router = build_router(
        authenticated=fake_authenticated, db=db, events=ROUTING, keys=keys or Keys(), clock=lambda: now
    )
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing")


async def events_of(db, type_name: str) -> list[dict]:
    rows = await db.fetch("SELECT value FROM outbox ORDER BY id")
    return [e for e in (json.loads(r["value"]) for r in rows) if e["type"] == f"nl.ido.{type_name}"]


@pytest.fixture
async def two(migrated):
    """Two instances of routing on one database, hr-1 routed."""
    first, second = await migrated("routing"), await migrated("routing")
    await routed_help_request(first)
    return first, second


async def test_the_agency_reports_progress_and_a_transition_not_allowed_answers_409(two):
    db, _ = two
    async with client_for(db) as http:
        accepted = await http.post(f"/v1/referrals/{REFERRAL}/status", json={"status": "accepted"}, headers=AS_CJIB)
        assert accepted.status_code == 200, accepted.text
        assert (accepted.json()["status"], accepted.json()["history"][0]["by"]) == ("accepted", "cjib")
        again = await http.post(f"/v1/referrals/{REFERRAL}/status", json={"status": "accepted"}, headers=AS_CJIB)
        assert again.status_code == 200, "repeating the current status is a no-op"
        done = await http.post(
            f"/v1/referrals/{REFERRAL}/status", json={"status": "got_help", "reason": "geholpen"}, headers=AS_CJIB
        )
        assert done.json()["due_at"] is None
        refused = await http.post(f"/v1/referrals/{REFERRAL}/status", json={"status": "accepted"}, headers=AS_CJIB)
        assert refused.status_code == 409
        assert refused.headers["content-type"] == "application/problem+json"
        assert "got_help" in refused.json()["detail"]
        for headers in (AS_UWV, AS_LIBRARY):
            other = await http.post(f"/v1/referrals/{REFERRAL}/status", json={"status": "accepted"}, headers=headers)
            assert other.status_code == 404
        assert (
            await http.post("/v1/referrals/nope/status", json={"status": "accepted"}, headers=AS_CJIB)
        ).status_code == 404
    changes = await events_of(db, "ReferralStatusChanged")
    assert [(e["data"]["status"], e["data"]["sequence"]) for e in changes] == [("accepted", 2), ("got_help", 3)]
    row = await db.fetchrow("SELECT status, version, history FROM referrals WHERE referral_id = $1", REFERRAL)
    assert (row["status"], row["version"], [h["status"] for h in row["history"]]) == (
        "got_help",
        3,
        ["accepted", "got_help"],
    )


async def test_concurrent_reports_on_one_referral_from_two_instances_lose_no_update(two):
    first, second = two
    statuses = ["accepted", "needs_client_action"] * 6

    async def report(db, status):
        async with client_for(db) as http:
            response = await http.post(f"/v1/referrals/{REFERRAL}/status", json={"status": status}, headers=AS_CJIB)
            assert response.status_code == 200, response.text

    await asyncio.gather(*(report(db, s) for s, db in zip(statuses, [first, second] * 6, strict=True)))

    row = await second.fetchrow("SELECT status, version, history FROM referrals WHERE referral_id = $1", REFERRAL)
    changes = await events_of(second, "ReferralStatusChanged")
    # Every change that happened is in the row and has its event, in commit order.
    assert row["version"] == 1 + len(changes) == 1 + len(row["history"])
    assert [e["data"]["sequence"] for e in changes] == list(range(2, row["version"] + 1))
    assert [e["data"]["status"] for e in changes] == [h["status"] for h in row["history"]]
    assert changes[-1]["data"]["status"] == row["status"]


async def test_a_second_report_waits_for_the_first_and_sees_its_result(two):
    first, second = two
    cjib_done, cjib_reported = asyncio.Event(), asyncio.Event()

    async def first_report_held_open():
        async with first.unit_of_work() as tx:
            await handlers.report_status(
                REFERRAL, "got_help", None, caller=CJIB, uow=RoutingUnitOfWork(tx), events=ROUTING, now=NOW
            )
            cjib_reported.set()
            await cjib_done.wait()  # the row stays locked until this transaction commits

    async def second_report():
        async with second.unit_of_work() as tx:
            return await handlers.report_status(
                REFERRAL, "no_capacity", None, caller=CJIB, uow=RoutingUnitOfWork(tx), events=ROUTING, now=NOW
            )

    holder = asyncio.create_task(first_report_held_open())
    await cjib_reported.wait()
    waiting = asyncio.create_task(second_report())

    async def blocked_on_a_lock() -> bool:
        return await first.fetchval(
            "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"
        )

    await eventually(blocked_on_a_lock, timeout=10)
    assert not waiting.done(), "blocked on the referral's row lock"
    cjib_done.set()
    await holder
    with pytest.raises(InvalidTransition, match="'got_help' cannot become 'no_capacity'"):
        await waiting
    assert [e["data"]["status"] for e in await events_of(first, "ReferralStatusChanged")] == ["got_help"]


async def test_every_handover_read_is_recorded_with_its_event_and_shows_what_the_visitor_allowed(two):
    first, second = two
    keys = Keys()

    async def read(db, headers=AS_CJIB):
        async with client_for(db, keys) as http:
            return await http.get(f"/v1/referrals/{REFERRAL}", headers=headers)

    answers = await asyncio.gather(*(read(db) for db in (first, second) * 3))
    assert {a.status_code for a in answers} == {200}
    body = answers[0].json()
    assert body["contact"] == {"name": "J. Jansen", "phone": "0612345678"}, "phone preferred: no e-mail"
    assert body["note"] == "boete" and body["agency"] == "cjib"
    assert (await read(first, AS_UWV)).status_code == 404
    assert (await read(first, AS_LIBRARY)).status_code == 404

    reads = await first.fetch("SELECT organisation, credential_id, read_at FROM referral_reads")
    assert [(r["organisation"], r["credential_id"], r["read_at"]) for r in reads] == [("cjib", "cred-cjib", NOW)] * 6
    reported = await events_of(second, "ReferralHandoverRead")
    assert len(reported) == 6 and {e["subject"] for e in reported} == {REFERRAL}

    # Erased: routing's copy is gone and intake has no key; the handover shows no personal data.
    await handle(first, PersonalDataErased(help_request_id="hr-1", library="katwijk", reason="request", erased_at=NOW))
    del keys.keys["hr-1"]
    after = (await read(second)).json()
    assert (after["contact"], after["note"]) == (None, None)


async def test_organisations_and_rules_are_edited_by_kb_staff(two):
    db, _ = two
    async with client_for(db) as http:
        listed = (await http.get("/v1/organisations", headers=AS_CJIB)).json()
        assert {o["code"] for o in listed} >= {"cjib", "uwv"} and listed == sorted(listed, key=lambda o: o["code"])
        partner = {"name": "Welzijn Tiel", "kind": "partner", "municipality": "tiel", "response_hours": 48}
        assert (await http.put("/v1/organisations/welzijn-tiel", json=partner, headers=AS_LIBRARY)).status_code == 403
        put = await http.put("/v1/organisations/welzijn-tiel", json=partner, headers=AS_KB)
        assert put.status_code == 200 and put.json() == {"code": "welzijn-tiel", **partner}
        changed = await http.put(
            "/v1/organisations/welzijn-tiel", json={**partner, "response_hours": None}, headers=AS_KB
        )
        assert changed.json()["response_hours"] is None
        shown = {o["code"]: o for o in (await http.get("/v1/organisations", headers=AS_KB)).json()}
        assert shown["welzijn-tiel"] == {"code": "welzijn-tiel", **partner, "response_hours": None}

        rule = {"theme": "gemeente", "municipality": "tiel", "organisation": "welzijn-tiel"}
        assert (await http.put("/v1/routing-rules", json=rule, headers=AS_KB)).status_code == 200
        assert (await http.put("/v1/routing-rules", json=rule, headers=AS_LIBRARY)).status_code == 403
        unknown = await http.put("/v1/routing-rules", json={**rule, "organisation": "nobody"}, headers=AS_KB)
        assert unknown.status_code == 422
        assert [p["name"] for p in unknown.json()["invalid-params"]] == ["organisation"]
        desk = await http.put("/v1/routing-rules", json={**rule, "organisation": None}, headers=AS_KB)
        assert desk.status_code == 200
    rules = await db.fetch("SELECT organisation FROM routing_rules WHERE theme = 'gemeente' AND municipality = 'tiel'")
    assert [r["organisation"] for r in rules] == [None], "one rule per key, now: helped at the desk"


async def route_to(db, help_request_id: str, theme: str, subtheme: str) -> None:
    """Route one more help request (one question, with consent) as the consumer would."""
    data = HelpRequested(
        help_request_id=help_request_id,
        library="katwijk",
        channel="walk_in",
        questions=[QuestionFacts(index=0, category="digital_government", theme=theme, subtheme=subtheme)],
        referral_consent=True,
        contact_preference="phone",
        registered_at=NOW,
    )
    assert await handle(db, data)


async def test_an_organisation_lists_its_own_referrals_page_by_page_without_personal_data(two):
    db, _ = two  # hr-1: one referral to CJIB, with contact details and a note (sealed)
    for n in range(2, 6):
        await route_to(db, f"hr-{n}", "verkeer", "verkeersboete")  # CJIB
    await route_to(db, "hr-uwv", "werk-en-uitkering", "ww")  # UWV
    cjib = sorted((referral_id(f"hr-{n}", 0) for n in range(1, 6)), reverse=True)  # one sent_at: id breaks ties
    async with client_for(db) as http:
        seen, after = [], None
        while True:
            params = {"limit": 2, **({"after": after} if after else {})}
            page = await http.get("/v1/referrals", params=params, headers=AS_CJIB)
            assert page.status_code == 200, page.text
            seen += page.json()["items"]
            after = page.json()["next"]
            if after is None:
                break
        assert [item["referral_id"] for item in seen] == cjib, "newest first, each once, only CJIB's"
        for item in seen:
            assert not {"contact", "note", "history"} & set(item), "no personal data in the list"
            assert (item["status"], item["overdue"], item["paused"], item["agency"]) == ("sent", False, False, "cjib")
            assert "accepted" in item["allowed_statuses"] and "sent" not in item["allowed_statuses"]

        accepted = await http.post(f"/v1/referrals/{REFERRAL}/status", json={"status": "accepted"}, headers=AS_CJIB)
        assert "accepted" not in accepted.json()["allowed_statuses"], "offered: what may follow"
        only = (await http.get("/v1/referrals", params={"status": "accepted"}, headers=AS_CJIB)).json()["items"]
        assert [i["referral_id"] for i in only] == [REFERRAL]
        both = await http.get("/v1/referrals", params=[("status", "sent"), ("status", "accepted")], headers=AS_CJIB)
        assert len(both.json()["items"]) == 5
        uwv = (await http.get("/v1/referrals", headers=AS_UWV)).json()["items"]
        assert [i["referral_id"] for i in uwv] == [referral_id("hr-uwv", 0)]
        assert (await http.get("/v1/referrals", headers=AS_LIBRARY)).status_code == 403
        assert (await http.get("/v1/referrals", headers=AS_KB)).status_code == 403
        bad = await http.get("/v1/referrals", params={"after": "not-a-cursor"}, headers=AS_CJIB)
        assert bad.status_code == 422 and bad.json()["invalid-params"][0]["name"] == "after"
        assert (await http.get("/v1/referrals", params={"status": "lost"}, headers=AS_CJIB)).status_code == 422
    assert await db.fetchval("SELECT count(*) FROM referral_reads") == 0, "listing reads no handover"

    # Six days on, past the five-day response time: the open ones are overdue, the clock shows it.
    async with client_for(db, now=NOW + timedelta(days=6)) as later:
        items = (await later.get("/v1/referrals", headers=AS_CJIB)).json()["items"]
        assert all(i["overdue"] for i in items)
