"""Intake on the real PostgreSQL: a visit and its event commit together, an Idempotency-Key
retried at once on two instances gives one visit and one event, erasure leaves nothing
personal in the table, the queries a request runs use their indexes, and registration checks
themes against the taxonomy table as the KB keeps it."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.intake import handlers
from services.intake.adapters.repository import HelpRequests, IntakeUnitOfWork, Themes
from services.intake.domain.model import Listing, RegisterHelpRequest
from services.intake.domain.taxonomy import Theme
from shared.outbox import EventFactory

pytestmark = pytest.mark.infra

EVENTS = EventFactory(service="intake", oin="00000001003214345000", base_url="http://127.0.0.1:8001")
NOTE, PHONE = "Mevrouw wil hulp bij de huurtoeslag", "0612345678"


def command(**overrides) -> RegisterHelpRequest:
    return RegisterHelpRequest.model_validate(
        {
            "channel": "walk_in",
            "questions": [
                {"category": "digital_government", "theme": "toeslagen", "subtheme": "huurtoeslag", "note": NOTE}
            ],
            "referral": {"consent": True, "contact_preference": "phone", "contact": {"name": "J.", "phone": PHONE}},
        }
        | overrides
    )


async def intake_db(migrated):
    """Intake's database as it is after start: migrated, and the taxonomy seeded."""
    db = await migrated("intake")
    await Themes(db).seed()
    return db


async def register(db, cmd=None, key=None, library="katwijk"):
    async with db.unit_of_work() as tx:
        return await handlers.register_help_request(
            cmd or command(),
            library=library,
            idempotency_key=key,
            correlation_id="c",
            uow=IntakeUnitOfWork(tx),
            events=EVENTS,
        )


async def test_a_visit_and_its_event_commit_together(migrated):
    db = await intake_db(migrated)
    hr, created = await register(db)
    assert created
    row = await db.fetchrow("SELECT status, themes FROM help_requests WHERE id = $1", hr.id)
    assert (row["status"], row["themes"]) == ("received", ["toeslagen"])
    [event] = await db.fetch("SELECT topic, key, value FROM outbox")
    assert event["topic"] == "ido.help-requests.v1" and event["key"] == hr.id.encode()
    assert NOTE not in event["value"].decode() and PHONE not in event["value"].decode()


async def test_one_key_retried_at_once_on_two_instances_gives_one_visit_and_one_event(migrated):
    first, second = await intake_db(migrated), await intake_db(migrated)
    results = await asyncio.gather(*(register(db, key="retry-1") for db in [first, second] * 5))
    assert len({hr.id for hr, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 9 + [True]
    assert await first.fetchval("SELECT count(*) FROM help_requests") == 1
    assert await first.fetchval("SELECT count(*) FROM outbox") == 1
    with pytest.raises(handlers.IdempotencyConflict):
        await register(second, command(duration_minutes=12), key="retry-1")


async def test_erasure_leaves_nothing_personal_in_the_table(migrated):
    db = await intake_db(migrated)
    hr, _ = await register(db)
    async with db.unit_of_work() as tx:
        await handlers.erase_personal_data(
            hr.id, library=None, reason="request", uow=IntakeUnitOfWork(tx), events=EVENTS, now=datetime.now(UTC)
        )
    row = await db.fetchrow("SELECT request, data_key, personal_data_erased_at FROM help_requests WHERE id = $1", hr.id)
    stored = json.dumps(row["request"])
    assert NOTE not in stored and PHONE not in stored and "J." not in stored
    assert row["data_key"] is None and row["personal_data_erased_at"] is not None
    assert json.loads(stored)["questions"][0]["theme"] == "toeslagen", "the registration stays for the monitor"


async def test_retention_on_two_instances_erases_each_visit_once(migrated):
    first, second = await intake_db(migrated), await intake_db(migrated)
    for _ in range(20):
        await register(first)

    def start(db):
        from contextlib import asynccontextmanager

        @asynccontextmanager
        async def unit_of_work():
            async with db.unit_of_work() as tx:
                yield IntakeUnitOfWork(tx)

        return unit_of_work

    later = datetime.now(UTC) + timedelta(days=31)
    await asyncio.gather(
        *(
            handlers.purge_expired(retention=timedelta(days=30), start=start(db), events=EVENTS, now=later)
            for db in (first, second)
        )
    )
    assert await first.fetchval("SELECT count(*) FROM help_requests WHERE data_key IS NOT NULL") == 0
    erased = await first.fetchval(
        "SELECT count(*) FROM outbox WHERE convert_from(value, 'UTF8') LIKE '%nl.ido.PersonalDataErased%'"
    )
    assert erased == 20, "one PersonalDataErased per visit, although both instances ran the check"


async def test_listing_pages_through_a_librarys_own_visits_newest_first(migrated):
    db = await intake_db(migrated)
    mine = [(await register(db))[0] for _ in range(5)]
    await register(db, library="venlo")
    repo = HelpRequests(db)
    page1 = await repo.list("katwijk", Listing(limit=3))
    page2 = await repo.list("katwijk", Listing(limit=3, after=(page1[-1].registered_at, page1[-1].id)))
    assert [h.id for h in page1 + page2] == [
        h.id for h in sorted(mine, key=lambda h: (h.registered_at, h.id), reverse=True)
    ]
    assert await repo.list("katwijk", Listing(theme="belastingen")) == []


async def test_the_queries_of_a_request_use_their_indexes(migrated):
    db = await intake_db(migrated)
    plans = {
        "by id": "SELECT * FROM help_requests WHERE id = 'x' AND library = 'katwijk'",
        "listing": "SELECT * FROM help_requests WHERE library = 'katwijk' ORDER BY registered_at DESC, id DESC",
        "retention": "SELECT id FROM help_requests WHERE personal_data_erased_at IS NULL AND registered_at < now()"
        " ORDER BY registered_at",
    }
    async with db.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # on a tiny table the planner would scan anyway
        for name, query in plans.items():
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {query}"))
            assert "Seq Scan" not in plan, f"{name}: {plan}"


def questions(*qs: dict) -> RegisterHelpRequest:
    return command(questions=list(qs), referral=None)


async def put_theme(db, theme: Theme) -> None:
    async with db.unit_of_work() as tx:
        await handlers.put_theme(theme, uow=IntakeUnitOfWork(tx))


async def test_registration_checks_the_taxonomy_table_and_the_seed_keeps_the_kbs_edits(migrated):
    db = await intake_db(migrated)
    with pytest.raises(handlers.InvalidThemes) as refused:
        await register(db, questions({"category": "library_services", "theme": "3ac1aix4qhw0ts4d"}))
    assert [p["name"] for p in refused.value.params] == ["questions.0.theme"]
    assert await db.fetchval("SELECT count(*) FROM help_requests") == 0
    assert await db.fetchval("SELECT count(*) FROM outbox") == 0

    printen = {"category": "library_services", "theme": "printen"}
    visit, _ = await register(db, questions(printen, {"category": "other", "theme": "overig"}))
    themes = Themes(db)
    key = ("library_services", "printen")
    kept = (await themes.of([key]))[key].model_copy(update={"label": "Printen", "retired": True})
    await put_theme(db, kept)
    await themes.seed()  # a restart
    assert await themes.of([key]) == {key: kept}, "the KB's edit survives the seed"
    listed = {(t.category, t.code): t for t in await themes.all()}
    assert listed[("library_services", "printen")].retired and ("digital_government", "toeslagen") in listed

    with pytest.raises(handlers.InvalidThemes) as refused:
        await register(db, questions(printen))
    assert refused.value.params[0]["name"] == "questions.0.theme"
    stored = await HelpRequests(db).get(visit.id, "katwijk")
    assert stored.request.questions[0].theme == "printen", "a visit with a retired theme stays readable"

    await put_theme(db, Theme(category="other", code="bankzaken", label="Bankzaken", subthemes={"app": None}))
    assert (await register(db, questions({"category": "other", "theme": "bankzaken", "subtheme": "app"})))[1]
    with pytest.raises(handlers.InvalidThemes) as refused:
        await register(db, questions({"category": "other", "theme": "bankzaken", "subtheme": "pinpas"}))
    assert refused.value.params[0]["name"] == "questions.0.subtheme"
