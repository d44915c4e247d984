"""The /v1/webhooks API on a minimal app, with an in-memory repository and a fake sender."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import cast

import httpx
import pytest
from fastapi import FastAPI, Request

from services.routing.adapters.webhooks import Delivery, Handshake
from services.routing.domain.webhooks import Subscription
from services.routing.entrypoints.webhooks import build_router
from shared.auth import Principal, Role
from shared.http import install_conventions

ORIGIN = "routing.ido.test"
TOKEN = "uwv-webhook-secret-0123456789"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class FakeRepository:
    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.delivery_list: list[Delivery] = []
        self.queries: list[tuple[str, str | None, int]] = []

    async def add_subscription(self, subscription: Subscription) -> None:
        self.subscriptions[subscription.id] = subscription

    async def subscription(self, subscription_id: str) -> Subscription | None:
        return self.subscriptions.get(subscription_id)

    async def subscriptions_of(self, agency: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.agency == agency]

    async def remove_subscription(self, subscription_id: str, now: datetime) -> None:
        del self.subscriptions[subscription_id]

    async def deliveries(self, subscription_id: str, *, status: str | None, limit: int) -> list[Delivery]:
        self.queries.append((subscription_id, status, limit))
        found = [d for d in self.delivery_list if d.subscription_id == subscription_id]
        return [d for d in found if status in (None, d.status)][:limit]


class FakeSender:
    def __init__(self, refusal: str | None = None, addresses: list[str] | None = None) -> None:
        self.refusal = refusal
        self.handshakes: list[tuple[str, str]] = []
        self.resolved = addresses if addresses is not None else ["93.184.215.14"]  # a public address

    async def addresses(self, callback_url: str) -> list[str]:
        return self.resolved

    async def handshake(self, callback_url: str, origin: str) -> Handshake:
        self.handshakes.append((callback_url, origin))
        return Handshake(self.refusal)


def fake_authenticated(request: Request) -> Principal:
    """`Authorization: Bearer <role>:<organisation>` stands in for a signed credential."""
    role, _, organisation = request.headers["authorization"].removeprefix("Bearer ").partition(":")
    return Principal(role=cast(Role, role), organisation=organisation, credential_id="cred-1")


def as_(caller: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {caller}"}


UWV, CAK, LIBRARY = as_("agency:uwv"), as_("agency:cak"), as_("library:venlo")


@pytest.fixture
def repo() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def sender() -> FakeSender:
    return FakeSender()


@pytest.fixture
async def client(repo, sender):
    app = FastAPI()
    install_conventions(app, "1.0.0", 65536)
    app.include_router(build_router(authenticated=fake_authenticated, repo=repo, sender=sender, origin=ORIGIN))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://routing") as http:
        yield http


def new(url: str = "https://uwv.example/ido", **fields) -> dict:
    return {"callback_url": url, "bearer_token": TOKEN, "event_types": ["nl.ido.ReferredToAgency"], **fields}


async def subscribe(client, headers=UWV, **fields) -> dict:
    response = await client.post("/v1/webhooks", json=new(**fields), headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_an_agency_subscribes_after_the_handshake_and_never_sees_its_token_again(client, repo, sender):
    response = await client.post("/v1/webhooks", json=new(), headers=UWV)
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/webhooks/{body['id']}"
    assert sender.handshakes == [("https://uwv.example/ido", ORIGIN)]
    assert (body["agency"], body["status"], body["event_types"]) == ("uwv", "active", ["nl.ido.ReferredToAgency"])
    assert repo.subscriptions[body["id"]].bearer_token == TOKEN
    for answer in (response, await client.get("/v1/webhooks", headers=UWV)):
        assert TOKEN not in answer.text and "bearer_token" not in answer.text
    assert TOKEN not in (await client.get(f"/v1/webhooks/{body['id']}", headers=UWV)).text


async def test_a_refused_handshake_answers_422_and_stores_nothing(client, repo, sender):
    sender.refusal = "the callback URL does not allow origin routing.ido.test (WebHook-Allowed-Origin)"
    response = await client.post("/v1/webhooks", json=new(), headers=UWV)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == sender.refusal
    assert repo.subscriptions == {}


async def test_only_an_agency_manages_webhooks(client, repo):
    mine = await subscribe(client)
    for method, path in [
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks"),
        ("GET", f"/v1/webhooks/{mine['id']}"),
        ("DELETE", f"/v1/webhooks/{mine['id']}"),
        ("GET", f"/v1/webhooks/{mine['id']}/deliveries"),
    ]:
        response = await client.request(method, path, json=new() if method == "POST" else None, headers=LIBRARY)
        assert response.status_code == 403, (method, path)
        assert response.headers["content-type"] == "application/problem+json"
    assert list(repo.subscriptions) == [mine["id"]]


async def test_another_agencys_subscription_is_not_found(client, repo):
    mine = await subscribe(client)
    for method, path in [
        ("GET", f"/v1/webhooks/{mine['id']}"),
        ("DELETE", f"/v1/webhooks/{mine['id']}"),
        ("GET", f"/v1/webhooks/{mine['id']}/deliveries"),
        ("GET", "/v1/webhooks/no-such-id"),
    ]:
        assert (await client.request(method, path, headers=CAK)).status_code == 404, (method, path)
    assert (await client.get("/v1/webhooks", headers=CAK)).json() == []
    assert mine["id"] in repo.subscriptions


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (new(secret="x"), "secret"),
        (new(url="ftp://uwv.example/ido"), "callback_url"),
        (new(bearer_token="short"), "bearer_token"),
        (new(bearer_token="has spaces in it, not a b64token"), "bearer_token"),
        (new(event_types=["nl.ido.Unknown"]), "event_types"),
        ({"bearer_token": TOKEN}, "callback_url"),
    ],
)
async def test_invalid_subscriptions_list_the_field_and_do_not_echo_it(client, repo, sender, body, field):
    response = await client.post("/v1/webhooks", json=body, headers=UWV)
    assert response.status_code == 422
    assert field in [p["name"] for p in response.json()["invalid-params"]]
    assert "short" not in response.text and "has spaces" not in response.text
    assert repo.subscriptions == {} and sender.handshakes == []


async def test_a_body_that_is_not_json_is_refused_before_parsing(client):
    response = await client.post("/v1/webhooks", content=b"callback_url=x", headers=UWV)
    assert response.status_code == 415


async def test_deleting_a_subscription(client, repo):
    mine = await subscribe(client)
    assert (await client.delete(f"/v1/webhooks/{mine['id']}", headers=UWV)).status_code == 204
    assert (await client.get(f"/v1/webhooks/{mine['id']}", headers=UWV)).status_code == 404


async def test_deliveries_show_their_state(client, repo):
    mine = await subscribe(client)
    delivery = Delivery(
        id=f"{mine['id']}:ev-1",
        subscription_id=mine["id"],
        agency="uwv",
        event_id="ev-1",
        event_type="nl.ido.ReferredToAgency",
        topic="ido.referrals.uwv.v1",
        cloudevent="{}",
        status="pending",
        attempts=2,
        next_attempt_at=T0,
        last_status_code=503,
        last_error="HTTP 503",
        created_at=T0,
        updated_at=T0,
    )
    repo.delivery_list = [delivery, replace(delivery, id="other", event_id="ev-2", status="delivered")]
    response = await client.get(f"/v1/webhooks/{mine['id']}/deliveries?status=pending&limit=5", headers=UWV)
    assert response.status_code == 200
    (shown,) = response.json()
    assert shown["status"] == "pending" and shown["attempts"] == 2 and shown["last_status_code"] == 503
    assert (shown["event_id"], shown["event_type"], shown["last_error"]) == (
        "ev-1",
        "nl.ido.ReferredToAgency",
        "HTTP 503",
    )
    assert shown["next_attempt_at"].startswith("2026-11-30T09:00:00")
    assert "cloudevent" not in shown
    assert repo.queries[-1] == (mine["id"], "pending", 5)
    bad = await client.get(f"/v1/webhooks/{mine['id']}/deliveries?status=lost&limit=0", headers=UWV)
    assert {p["name"] for p in bad.json()["invalid-params"]} == {"status", "limit"}
