"""Webhook subscriptions and deliveries in routing's database, and the HTTP sender.

Runs on FerretDB 1.x: single-document writes only ($set, $inc, find_one_and_update), no
transactions, no TTL. A delivery's `_id` is `<subscription id>:<event id>`, so an event that
Kafka delivers again cannot be enqueued twice.
"""

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import httpx
from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.routing.domain.webhooks import Decision, DeliveryStatus, HttpOutcome, Subscription, delivery_id
from shared.events.envelope import CONTENT_TYPE, CloudEvent

SUBSCRIPTIONS = "webhook_subscriptions"
DELIVERIES = "webhook_deliveries"


@dataclass(frozen=True)
class Delivery:
    id: str
    subscription_id: str
    agency: str
    event_id: str
    event_type: str
    topic: str
    cloudevent: str  # the exact JSON that is POSTed, as it was on Kafka
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class WebhookRepository(Protocol):
    async def add_subscription(self, subscription: Subscription) -> None: ...
    async def subscription(self, subscription_id: str) -> Subscription | None: ...
    async def subscriptions_of(self, agency: str) -> list[Subscription]: ...
    async def remove_subscription(self, subscription_id: str, now: datetime) -> None: ...
    async def disable_subscription(self, subscription_id: str, reason: str, now: datetime) -> None: ...
    async def enqueue(self, subscription: Subscription, event: CloudEvent, topic: str, now: datetime) -> bool: ...
    async def claim_due(self, now: datetime, lease: timedelta) -> Delivery | None: ...
    async def record_attempt(
        self, delivery_id: str, decision: Decision, outcome: HttpOutcome, now: datetime
    ) -> None: ...
    async def cancel(self, delivery_id: str, reason: str, now: datetime) -> None: ...
    async def deliveries(self, subscription_id: str, *, status: str | None, limit: int) -> list[Delivery]: ...


def _subscription(doc: dict[str, Any]) -> Subscription:
    return Subscription(
        id=doc["_id"],
        agency=doc["agency"],
        callback_url=doc["callback_url"],
        bearer_token=doc["bearer_token"],
        event_types=tuple(doc.get("event_types") or ()),
        created_at=doc["created_at"],
        status=doc["status"],
        disabled_reason=doc.get("disabled_reason"),
    )


def _delivery(doc: dict[str, Any]) -> Delivery:
    return Delivery(
        id=doc["_id"],
        subscription_id=doc["subscription_id"],
        agency=doc["agency"],
        event_id=doc["event_id"],
        event_type=doc["event_type"],
        topic=doc["topic"],
        cloudevent=doc["cloudevent"],
        status=doc["status"],
        attempts=doc["attempts"],
        next_attempt_at=doc.get("next_attempt_at"),
        last_status_code=doc.get("last_status_code"),
        last_error=doc.get("last_error"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )


# The verdict's effect on a delivery document.
_STATUS_AFTER = {"delivered": "delivered", "retry": "pending", "failed": "failed", "disable": "failed"}


class MongoWebhookRepository:
    def __init__(self, db: AsyncDatabase) -> None:
        self.subscription_docs = db[SUBSCRIPTIONS]
        self.delivery_docs = db[DELIVERIES]

    async def prepare(self) -> None:
        await self.subscription_docs.create_index("agency")
        await self.delivery_docs.create_index([("status", ASCENDING), ("next_attempt_at", ASCENDING)])
        await self.delivery_docs.create_index([("subscription_id", ASCENDING), ("created_at", DESCENDING)])

    async def add_subscription(self, subscription: Subscription) -> None:
        doc = asdict(subscription)
        doc["_id"] = doc.pop("id")
        doc["event_types"] = list(subscription.event_types)
        await self.subscription_docs.insert_one(doc)

    async def subscription(self, subscription_id: str) -> Subscription | None:
        doc = await self.subscription_docs.find_one({"_id": subscription_id})
        return _subscription(doc) if doc else None

    async def subscriptions_of(self, agency: str) -> list[Subscription]:
        cursor = self.subscription_docs.find({"agency": agency}).sort("created_at", ASCENDING)
        return [_subscription(d) async for d in cursor]

    async def remove_subscription(self, subscription_id: str, now: datetime) -> None:
        await self.subscription_docs.delete_one({"_id": subscription_id})
        await self._cancel_pending(subscription_id, "subscription deleted", now)

    async def disable_subscription(self, subscription_id: str, reason: str, now: datetime) -> None:
        await self.subscription_docs.update_one(
            {"_id": subscription_id}, {"$set": {"status": "disabled", "disabled_reason": reason, "disabled_at": now}}
        )
        await self._cancel_pending(subscription_id, reason, now)

    async def _cancel_pending(self, subscription_id: str, reason: str, now: datetime) -> None:
        await self.delivery_docs.update_many(
            {"subscription_id": subscription_id, "status": "pending"},
            {"$set": {"status": "cancelled", "next_attempt_at": None, "last_error": reason, "updated_at": now}},
        )

    async def enqueue(self, subscription: Subscription, event: CloudEvent, topic: str, now: datetime) -> bool:
        """Queue `event` for `subscription`; False if it was queued before (a re-delivery)."""
        doc = {
            "_id": delivery_id(subscription.id, str(event.id)),
            "subscription_id": subscription.id,
            "agency": subscription.agency,
            "event_id": str(event.id),
            "event_type": event.type,
            "topic": topic,
            # Serialized as publish_event does, so the webhook body is the Kafka record's value.
            "cloudevent": event.to_bytes().decode(),
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "last_status_code": None,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
        }
        try:
            await self.delivery_docs.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def claim_due(self, now: datetime, lease: timedelta) -> Delivery | None:
        """Take the most overdue pending delivery. Its next attempt moves `lease` ahead, so
        another worker does not send it meanwhile, and a worker that dies mid-send leaves it
        to be retried once the lease has run out."""
        doc = await self.delivery_docs.find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now}},
            {"$set": {"next_attempt_at": now + lease, "updated_at": now}},
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        return _delivery(doc) if doc else None

    async def record_attempt(self, delivery_id: str, decision: Decision, outcome: HttpOutcome, now: datetime) -> None:
        # Conditional on pending: a delivery cancelled meanwhile (subscription deleted) stays cancelled.
        await self.delivery_docs.update_one(
            {"_id": delivery_id, "status": "pending"},
            {
                "$inc": {"attempts": 1},
                "$set": {
                    "status": _STATUS_AFTER[decision.verdict],
                    "next_attempt_at": decision.next_attempt_at,
                    "last_status_code": outcome.status_code,
                    "last_error": None if decision.verdict == "delivered" else decision.reason,
                    "updated_at": now,
                },
            },
        )

    async def cancel(self, delivery_id: str, reason: str, now: datetime) -> None:
        await self.delivery_docs.update_one(
            {"_id": delivery_id, "status": "pending"},
            {"$set": {"status": "cancelled", "next_attempt_at": None, "last_error": reason, "updated_at": now}},
        )

    async def deliveries(self, subscription_id: str, *, status: str | None = None, limit: int = 50) -> list[Delivery]:
        query: dict[str, Any] = {"subscription_id": subscription_id}
        if status:
            query["status"] = status
        cursor = self.delivery_docs.find(query).sort([("created_at", DESCENDING), ("_id", ASCENDING)]).limit(limit)
        return [_delivery(d) async for d in cursor]


_UNREACHABLE = (httpx.HTTPError, httpx.InvalidURL)


@dataclass(frozen=True)
class Handshake:
    """The receiver's answer to the abuse-protection handshake; `refusal` None means allowed."""

    refusal: str | None


class WebhookSender(Protocol):
    async def handshake(self, callback_url: str, origin: str) -> Handshake: ...
    async def deliver(self, callback_url: str, bearer_token: str, cloudevent: str) -> HttpOutcome: ...


class HttpWebhookSender:
    """httpx, no redirects followed (a redirect could carry the bearer token to another host)."""

    def __init__(self, timeout_seconds: float = 10.0) -> None:
        self.timeout = timeout_seconds
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the running event loop, and kept for connection reuse.
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)
        return self._client

    async def handshake(self, callback_url: str, origin: str) -> Handshake:
        """CloudEvents HTTP webhook spec, "Abuse protection": OPTIONS with our origin; the
        receiver must answer 2xx and allow our origin (or `*`)."""
        try:
            status, headers = await self._send("OPTIONS", callback_url, {"WebHook-Request-Origin": origin})
        except _UNREACHABLE as exc:
            return Handshake(f"the callback URL could not be reached ({type(exc).__name__})")
        if not 200 <= status < 300:
            return Handshake(f"the callback URL answered the handshake with HTTP {status}")
        allowed = headers.get("WebHook-Allowed-Origin")
        if allowed is None:
            return Handshake("the callback URL did not answer with a WebHook-Allowed-Origin header")
        if allowed.strip().lower() not in (origin.lower(), "*"):  # host names ignore case
            return Handshake(f"the callback URL does not allow origin {origin} (WebHook-Allowed-Origin)")
        return Handshake(None)

    async def deliver(self, callback_url: str, bearer_token: str, cloudevent: str) -> HttpOutcome:
        headers = {"Content-Type": CONTENT_TYPE, "Authorization": f"Bearer {bearer_token}"}
        try:
            status, answer = await self._send("POST", callback_url, headers, cloudevent.encode())
        except _UNREACHABLE as exc:
            return HttpOutcome(error=type(exc).__name__)
        return HttpOutcome(status_code=status, retry_after=answer.get("Retry-After"))

    async def _send(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, httpx.Headers]:
        # Streamed and closed unread: only status and headers count, and a receiver cannot
        # make us hold a huge response body.
        async with self._http().stream(method, url, headers=headers, content=body) as response:
            return response.status_code, response.headers

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
