"""Webhook subscriptions and deliveries on the real database, to a real HTTP receiver on
127.0.0.1, and the Kafka path that queues them; workers of two instances (two pools) never send
one delivery twice. Time is passed explicitly: no waiting out backoffs."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.routing import webhook_handlers
from services.routing.adapters.webhooks import SEALED, HttpWebhookSender, TokenBox, Webhooks
from services.routing.domain.webhooks import Decision, HttpOutcome
from services.routing.entrypoints import webhooks
from services.routing.entrypoints.webhooks import DeliveryWorker, WebhookSettings, agency_handlers
from shared.consuming import EventConsumer
from shared.events.catalog import ReferredToAgency, referral_topic
from shared.kafka import apply_topology, make_broker, publish_event
from shared.outbox import EventFactory
from shared.sealing import CannotUnseal, new_data_key
from shared.topics import topic_spec
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra

ORIGIN = "routing.ido.test"
AGENCY = "belastingdienst"
TOKEN = "agency-secret-token-0123456789"
T0 = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
BOX = TokenBox(new_data_key())
FACTORY = EventFactory(service="routing", oin="00000001003214345000", base_url="http://127.0.0.1:8002")


class Receiver:
    """An agency's webhook endpoint: answers the handshake with `allowed_origin` (no header if
    None) and successive POSTs with the scripted (status, headers), then 200."""

    def __init__(self, *, allowed_origin: str | None = ORIGIN, answers: tuple[tuple[int, dict], ...] = ()) -> None:
        self.allowed_origin = allowed_origin
        self.answers = list(answers)
        self.handshakes: list[dict[str, str]] = []
        self.posts: list[tuple[dict[str, str], bytes]] = []

    async def endpoint(self, request: Request) -> Response:
        if request.method == "OPTIONS":
            self.handshakes.append(dict(request.headers))
            allowed = {"WebHook-Allowed-Origin": self.allowed_origin} if self.allowed_origin else {}
            return Response(status_code=200, headers={"Allow": "POST", **allowed})
        self.posts.append((dict(request.headers), await request.body()))
        status, headers = self.answers.pop(0) if self.answers else (200, {})
        return Response(status_code=status, headers=headers)


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[str]:
    """Run `receiver` on an ephemeral port; yield its callback URL."""
    app = Starlette(routes=[Route("/hook", receiver.endpoint, methods=["OPTIONS", "POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        assert server.started, "the test receiver did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        server.should_exit = True
        await task
        sock.close()


def free_port_url() -> str:
    """A URL on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/hook"


@pytest.fixture
async def db(migrated):
    """Routing's database (its migrations applied), on the pool as the API and workers use it."""
    return await migrated("routing")


@pytest.fixture
async def repo(db) -> Webhooks:
    return Webhooks(db, BOX)


@pytest.fixture
async def sender() -> AsyncIterator[HttpWebhookSender]:
    http = HttpWebhookSender(timeout_seconds=2, allow_local=True)  # the receivers listen on 127.0.0.1
    yield http
    await http.aclose()


def referral(referral_id: str = "ref-1", agency: str = AGENCY):
    data = ReferredToAgency(
        referral_id=referral_id,
        help_request_id="hr-1",
        agency=agency,
        library="venlo",
        theme="toeslagen",
        subtheme="huurtoeslag",
        contact_preference="phone",
    )
    return FACTORY.create(data, correlation_id="corr-1", dataref=f"http://127.0.0.1:8002/v1/referrals/{referral_id}")


async def register(url: str, repo, sender, event_types: list[str] | None = None, agency: str = AGENCY):
    return await webhook_handlers.register_subscription(
        agency=agency,
        callback_url=url,
        bearer_token=TOKEN,
        event_types=event_types or [],
        repo=repo,
        sender=sender,
        origin=ORIGIN,
        allow_local=True,  # the receivers of these tests listen on 127.0.0.1
    )


async def test_a_callback_on_a_loopback_address_is_refused_outside_tests(repo, sender):
    """Issue 11.4: the real resolver; the callback is on 127.0.0.1, so without allow_local the
    subscription is refused before any handshake (nothing is sent, nothing stored)."""
    http = free_port_url()
    https = http.replace("http://", "https://")
    for url, reason in ((http, "must be https"), (https, r"127\.0\.0\.1, a private, loopback")):
        with pytest.raises(webhook_handlers.SubscriptionRefused, match=reason):
            await webhook_handlers.register_subscription(
                agency=AGENCY,
                callback_url=url,
                bearer_token=TOKEN,
                event_types=[],
                repo=repo,
                sender=sender,
                origin=ORIGIN,
            )
    assert await repo.subscriptions_of(AGENCY) == []


async def deliver(repo, sender, now: datetime, **options) -> int:
    return await webhook_handlers.deliver_due(now, repo=repo, sender=sender, **options)


async def test_every_connection_checks_the_address_it_connects_to(sender):
    """DNS rebinding: a callback host checked when its subscription was made may resolve to a
    private or loopback address later. The production sender resolves and checks per
    connection and connects to the address it checked, so such a host gets nothing."""
    receiver = Receiver()
    strict = HttpWebhookSender(timeout_seconds=2)  # as routing runs outside tests
    async with serving(receiver) as url:
        rebound = url.replace("127.0.0.1", "localhost")  # a name that now resolves to loopback
        for target in (url, rebound):
            outcome = await strict.deliver(target, TOKEN, '{"specversion": "1.0"}')
            assert (outcome.status_code, outcome.error) == (None, "ConnectError")
            assert (await strict.handshake(target, ORIGIN)).refusal
        assert receiver.posts == [] and receiver.handshakes == [], "not one request reached it"
        assert (await sender.deliver(rebound, TOKEN, "{}")).status_code == 200, "allowed locally, it is reached"
    await strict.aclose()


async def test_registration_sends_the_handshake_before_storing(repo, sender):
    receiver = Receiver(allowed_origin="*")
    async with serving(receiver) as url:
        subscription = await register(url, repo, sender)
    assert [h["webhook-request-origin"] for h in receiver.handshakes] == [ORIGIN]
    stored = await repo.subscription(subscription.id)
    assert (stored.agency, stored.callback_url, stored.status, stored.bearer_token) == (AGENCY, url, "active", TOKEN)


@pytest.mark.parametrize("allowed_origin", [None, "someone-else.example"])
async def test_a_receiver_that_refuses_the_handshake_is_not_subscribed(repo, sender, db, allowed_origin):
    async with serving(Receiver(allowed_origin=allowed_origin)) as url:
        with pytest.raises(webhook_handlers.SubscriptionRefused, match="WebHook-Allowed-Origin"):
            await register(url, repo, sender)
    with pytest.raises(webhook_handlers.SubscriptionRefused, match="could not be reached"):
        await register(free_port_url(), repo, sender)
    assert await db.fetchval("SELECT count(*) FROM webhook_subscriptions") == 0


async def test_a_delivery_is_retried_until_the_receiver_takes_it(repo, sender):
    receiver = Receiver(answers=[(503, {}), (429, {"Retry-After": "1"})])
    pending = referral()
    async with serving(receiver) as url:
        subscription = await register(url, repo, sender)
        assert await webhook_handlers.on_agency_event(pending.event, pending.topic, agency=AGENCY, repo=repo, now=T0)

        assert await deliver(repo, sender, T0) == 1  # 503: back off 1 s
        (first,) = await repo.deliveries(subscription.id)
        assert (first.status, first.attempts, first.last_status_code) == ("pending", 1, 503)
        assert first.next_attempt_at == T0 + timedelta(seconds=1)
        assert await deliver(repo, sender, T0 + timedelta(milliseconds=999)) == 0  # not due yet

        assert await deliver(repo, sender, T0 + timedelta(seconds=1)) == 1  # 429, Retry-After: 1
        (second,) = await repo.deliveries(subscription.id)
        assert (second.attempts, second.next_attempt_at) == (2, T0 + timedelta(seconds=2))

        assert await deliver(repo, sender, T0 + timedelta(seconds=2)) == 1  # 200
    (done,) = await repo.deliveries(subscription.id)
    assert (done.status, done.attempts, done.last_status_code, done.last_error) == ("delivered", 3, 200, None)
    assert done.next_attempt_at is None
    assert (done.event_id, done.event_type) == (str(pending.event.id), "nl.ido.ReferredToAgency")

    assert len(receiver.posts) == 3
    headers, body = receiver.posts[-1]
    assert body == done.cloudevent.encode() == pending.event.to_bytes()  # the record as on Kafka
    assert json.loads(body)["id"] == str(pending.event.id)
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert await deliver(repo, sender, T0 + timedelta(days=1)) == 0


async def test_410_gone_disables_the_subscription_and_cancels_its_pending_deliveries(repo, sender):
    receiver = Receiver(answers=[(410, {})])
    first, second = referral("ref-1"), referral("ref-2")
    async with serving(receiver) as url:
        subscription = await register(url, repo, sender)
        for pending in (first, second):
            await webhook_handlers.on_agency_event(pending.event, pending.topic, agency=AGENCY, repo=repo, now=T0)
        assert await deliver(repo, sender, T0, limit=1) == 1
        assert await deliver(repo, sender, T0 + timedelta(days=1)) == 0
    disabled = await repo.subscription(subscription.id)
    assert (disabled.status, disabled.disabled_reason) == ("disabled", "the callback answered 410 Gone")
    states = {d.status: d for d in await repo.deliveries(subscription.id)}
    assert set(states) == {"failed", "cancelled"}
    assert (states["failed"].last_status_code, states["cancelled"].attempts) == (410, 0)
    assert len(receiver.posts) == 1
    later = referral("ref-3")
    assert await webhook_handlers.on_agency_event(later.event, later.topic, agency=AGENCY, repo=repo, now=T0) == 0


async def test_an_event_is_queued_once_per_subscription_and_only_for_types_it_wants(repo, sender, db):
    async with serving(Receiver()) as url:
        everything = await register(url, repo, sender)
        others = await register(url, repo, sender, event_types=["nl.ido.ReferralStatusChanged"])
    pending = referral()
    queue = webhook_handlers.on_agency_event
    assert await queue(pending.event, pending.topic, agency=AGENCY, repo=repo, now=T0) == 1
    assert await queue(pending.event, pending.topic, agency=AGENCY, repo=repo, now=T0) == 0  # Kafka re-delivered it
    assert await queue(pending.event, pending.topic, agency="cak", repo=repo, now=T0) == 0  # not cak's subscriber
    assert [d.id for d in await repo.deliveries(everything.id)] == [f"{everything.id}:{pending.event.id}"]
    assert await repo.deliveries(others.id) == []
    assert await db.fetchval("SELECT count(*) FROM webhook_deliveries") == 1


async def test_deleting_a_subscription_cancels_what_is_still_pending(repo, sender):
    async with serving(Receiver()) as url:
        subscription = await register(url, repo, sender)
        pending = referral()
        await webhook_handlers.on_agency_event(pending.event, pending.topic, agency=AGENCY, repo=repo, now=T0)
        await repo.remove_subscription(subscription.id, T0)
        assert await deliver(repo, sender, T0) == 0
    assert await repo.subscription(subscription.id) is None
    (cancelled,) = await repo.deliveries(subscription.id)
    assert (cancelled.status, cancelled.last_error) == ("cancelled", "subscription deleted")


async def test_events_on_the_agency_topic_are_queued_through_kafka(infra, db, repo, sender, topic, unique, publisher):
    async with serving(Receiver()) as url:
        subscription = await register(url, repo, sender)
    consumer_broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-webhooks")
    consumer = EventConsumer(consumer_broker, db, group_id=f"test-{unique}", backoff_seconds=0.01)
    consumer.subscribe_many({topic: agency_handlers(topic, AGENCY, BOX)})  # as install() does
    pending, later = referral(), referral()  # same subject, so one partition keeps them in order
    await consumer_broker.start()
    try:
        for event in (pending.event, pending.event, later.event):  # the second one a duplicate
            await publish_event(publisher, event, topic)
        queued = await eventually(lambda: _two(repo.deliveries(subscription.id)), timeout=15)
    finally:
        await consumer_broker.stop()
    first = next(d for d in queued if d.event_id == str(pending.event.id))
    assert (first.status, first.topic) == ("pending", topic)
    assert first.cloudevent.encode() == pending.event.to_bytes()  # the value publish_event wrote
    assert await db.fetchval("SELECT count(*) FROM webhook_deliveries") == 2
    assert await db.fetchval("SELECT count(*) FROM processed_events") == 2, "the duplicate was skipped"


async def test_a_partners_topic_made_later_is_read_from_its_start_and_queued(
    infra, db, repo, sender, unique, publisher, monkeypatch
):
    """Routing's webhook consumer subscribes by pattern (webhooks.subscribe, as install() does):
    a local partner's topic, made when its first referral is sent, is found and read whole."""
    monkeypatch.setenv("KAFKA_METADATA_MAX_AGE_MS", "1000")
    partner = f"welzijn-{unique}"
    async with serving(Receiver()) as url:
        subscription = await register(url, repo, sender, agency=partner)
    consumer_broker = make_broker(infra.kafka_bootstrap_servers, client_id="ido-tests-webhooks")
    consumer = EventConsumer(consumer_broker, db, group_id=f"test-{unique}", backoff_seconds=0.01)
    webhooks.subscribe(consumer, BOX)
    await consumer_broker.start()
    try:
        await asyncio.sleep(2)  # the group has its (other) topics: the partner's does not exist yet
        topic = referral_topic(partner)
        await apply_topology(infra.kafka_bootstrap_servers, [topic_spec(infra, topic)])
        sent = referral("ref-partner", agency=partner)
        await publish_event(publisher, sent.event, topic)
        [queued] = await eventually(lambda: repo.deliveries(subscription.id), timeout=30)
    finally:
        await consumer_broker.stop()
    assert (queued.event_id, queued.topic) == (str(sent.event.id), topic)


async def _two(deliveries):
    found = await deliveries
    return found if len(found) == 2 else None


async def test_the_worker_sends_a_queued_event_at_once_and_stops_cleanly(db, repo):
    receiver = Receiver()
    config = WebhookSettings(poll_seconds=30, http_timeout_seconds=2)  # a long poll: only notify() wakes it
    worker = DeliveryWorker(repo, HttpWebhookSender(config.http_timeout_seconds, allow_local=True), config)
    async with serving(receiver) as url:
        await register(url, repo, worker.sender)
        task = asyncio.create_task(worker.run())

        async def first_round_done() -> bool:
            return worker.rounds >= 1  # found nothing; it waits for notify() now

        await eventually(first_round_done)
        pending = referral()
        await webhook_handlers.on_agency_event(pending.event, pending.topic, agency=AGENCY, repo=repo)
        worker.notify()  # what the consumer's on_handled does

        async def posted():
            return receiver.posts

        await eventually(posted, timeout=5, interval=0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert receiver.posts[0][1] == pending.event.to_bytes()
    assert worker.sender._client is None  # closed when the service stops


class SlowReceiver(Receiver):
    """Takes a while per POST, so workers' claims overlap in time."""

    async def endpoint(self, request: Request) -> Response:
        if request.method == "POST":
            await asyncio.sleep(0.02)
        return await super().endpoint(request)


async def test_workers_of_two_instances_never_send_one_delivery_twice(db, repo, sender, migrated):
    other = Webhooks(await migrated("routing"), BOX)  # a second instance's pool on the same database
    other_sender = HttpWebhookSender(timeout_seconds=2, allow_local=True)
    receiver = SlowReceiver()
    async with serving(receiver) as url:
        subscription = await register(url, repo, sender)
        queued = [referral(f"ref-{i}") for i in range(30)]
        for pending in queued:
            await webhook_handlers.on_agency_event(pending.event, pending.topic, agency=AGENCY, repo=repo, now=T0)

        workers = [(repo, sender), (other, other_sender)] * 2  # two workers per instance
        attempted = await asyncio.gather(*(deliver(r, s, T0, limit=30) for r, s in workers))
    await other_sender.aclose()

    assert sum(attempted) == 30 and all(attempted), "every worker took part"
    posted = [json.loads(body)["id"] for _, body in receiver.posts]
    assert sorted(posted) == sorted(str(p.event.id) for p in queued), "each delivery POSTed exactly once"
    done = await repo.deliveries(subscription.id, limit=100)
    assert {(d.status, d.attempts) for d in done} == {("delivered", 1)} and len(done) == 30


async def test_a_claim_holds_for_its_lease_and_an_outcome_after_a_lost_lease_is_not_recorded(repo, sender, migrated):
    other = Webhooks(await migrated("routing"), BOX)
    lease = timedelta(minutes=1)
    async with serving(Receiver()) as url:
        subscription = await register(url, repo, sender)
    pending = referral()
    await webhook_handlers.on_agency_event(pending.event, pending.topic, agency=AGENCY, repo=repo, now=T0)

    claimed = await repo.claim_due(T0, lease)
    assert claimed is not None and claimed.next_attempt_at == T0 + lease
    assert await other.claim_due(T0, lease) is None, "claimed: skipped by the other instance"
    assert await other.claim_due(T0 + lease - timedelta(seconds=1), lease) is None, "still within the lease"

    # The first worker hangs past its lease; the other instance takes the delivery over.
    reclaimed = await other.claim_due(T0 + lease, lease)
    assert reclaimed is not None and reclaimed.claim != claimed.claim
    delivered, ok = Decision("delivered"), HttpOutcome(status_code=200)
    assert not await repo.record_attempt(claimed, delivered, ok, T0 + lease), "no longer its claim"
    assert await other.record_attempt(reclaimed, delivered, ok, T0 + lease)
    (done,) = await repo.deliveries(subscription.id)
    assert (done.status, done.attempts, done.next_attempt_at, done.claim) == ("delivered", 1, None, None)


async def test_bearer_tokens_are_stored_sealed_and_tokens_of_before_are_sealed_at_start(db, repo, sender):
    """Issue 11.4: the database holds no agency's bearer token in plain text; a token stored
    before tokens were sealed is sealed by the next start (seal_legacy), and still works."""
    async with serving(Receiver()) as url:
        subscription = await register(url, repo, sender)
    stored = await db.fetchval("SELECT bearer_token FROM webhook_subscriptions WHERE id = $1", subscription.id)
    assert stored.startswith(SEALED) and TOKEN not in stored
    assert (await repo.subscription(subscription.id)).bearer_token == TOKEN
    with pytest.raises(CannotUnseal):
        TokenBox(new_data_key()).open(stored, subscription.id)  # another key opens nothing

    await db.execute("UPDATE webhook_subscriptions SET bearer_token = $2 WHERE id = $1", subscription.id, TOKEN)
    assert await repo.seal_legacy() == 1 and await repo.seal_legacy() == 0
    resealed = await db.fetchval("SELECT bearer_token FROM webhook_subscriptions WHERE id = $1", subscription.id)
    assert resealed.startswith(SEALED) and (await repo.subscription(subscription.id)).bearer_token == TOKEN


def test_the_key_file_is_made_once_private_and_kept(tmp_path):
    path = tmp_path / "routing" / "webhook-secrets.key"
    first = TokenBox.from_file(path)
    assert path.stat().st_mode & 0o777 == 0o600 and TokenBox.from_file(path).key == first.key
