"""Webhook subscriptions and deliveries in routing's database (migrations/0002.webhooks.sql),
and the HTTP sender.

A delivery's primary key is (subscription, event), so an event that Kafka delivers again is
not queued twice. Workers in every instance claim due deliveries with FOR UPDATE SKIP LOCKED
and a lease (the claim commits before the POST; the delivery is due again only when the lease
has run out), so one delivery is never POSTed by two workers at once; the claim's token fences
the outcome: a worker whose lease ran out and was re-claimed records nothing.
"""

import asyncio
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import httpcore
import httpx

from services.routing.adapters.repository import Queries
from services.routing.domain.webhooks import (
    Decision,
    DeliveryStatus,
    HttpOutcome,
    Subscription,
    address_problem,
    delivery_id,
)
from shared.events.envelope import CONTENT_TYPE, CloudEvent
from shared.logging import get_logger
from shared.sealing import new_data_key, seal, unseal

log = get_logger(__name__)


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
    claim: UUID | None = None  # the token of the worker's claim that returned it


class WebhookRepository(Protocol):
    async def add_subscription(self, subscription: Subscription) -> None: ...
    async def subscription(self, subscription_id: str) -> Subscription | None: ...
    async def subscriptions_of(self, agency: str) -> list[Subscription]: ...
    async def remove_subscription(self, subscription_id: str, now: datetime) -> None: ...
    async def disable_subscription(self, subscription_id: str, reason: str, now: datetime) -> None: ...
    async def enqueue(self, subscription: Subscription, event: CloudEvent, topic: str, now: datetime) -> bool: ...
    async def claim_due(self, now: datetime, lease: timedelta) -> Delivery | None: ...
    async def record_attempt(
        self, delivery: Delivery, decision: Decision, outcome: HttpOutcome, now: datetime
    ) -> bool: ...
    async def cancel(self, delivery: Delivery, reason: str, now: datetime) -> None: ...
    async def deliveries(self, subscription_id: str, *, status: str | None, limit: int) -> list[Delivery]: ...


SEALED = "sealed:v1:"


class TokenBox:
    """The agencies' bearer tokens encrypted at rest (AES-256-GCM, each bound to its
    subscription): a copy of the database alone does not let anyone call an agency's endpoint.
    The key lives in a file of its own (ROUTING_WEBHOOK_SECRETS_KEY_FILE), not in the database."""

    def __init__(self, key: bytes) -> None:
        self.key = key

    @classmethod
    def from_file(cls, path: Path) -> "TokenBox":
        """The key in `path`, made there (0600) if there is none yet; instances starting
        together agree on one (exclusive create)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as new:
                new.write(new_data_key())
        except FileExistsError:
            pass
        return cls(path.read_bytes())

    def seal(self, token: str, subscription_id: str) -> str:
        return SEALED + seal(self.key, {"token": token}, bound_to=subscription_id)

    def open(self, stored: str, subscription_id: str) -> str:
        if not stored.startswith(SEALED):  # stored before tokens were sealed; see seal_legacy
            return stored
        return str(unseal(self.key, stored.removeprefix(SEALED), bound_to=subscription_id)["token"])


def _subscription(row: asyncpg.Record, box: TokenBox) -> Subscription:
    return Subscription(
        id=row["id"],
        agency=row["agency"],
        callback_url=row["callback_url"],
        bearer_token=box.open(row["bearer_token"], row["id"]),
        event_types=tuple(row["event_types"]),
        created_at=row["created_at"],
        status=row["status"],
        disabled_reason=row["disabled_reason"],
    )


def _delivery(row: asyncpg.Record) -> Delivery:
    event_id = str(row["event_id"])
    return Delivery(
        id=delivery_id(row["subscription_id"], event_id),
        subscription_id=row["subscription_id"],
        agency=row["agency"],
        event_id=event_id,
        event_type=row["event_type"],
        topic=row["topic"],
        cloudevent=row["cloudevent"],
        status=row["status"],
        attempts=row["attempts"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        claim=row["claim"],
    )


# The verdict's effect on a delivery's status.
_STATUS_AFTER = {"delivered": "delivered", "retry": "pending", "failed": "failed", "disable": "failed"}
_SUBSCRIPTION_COLUMNS = "id, agency, callback_url, bearer_token, event_types, status, disabled_reason, created_at"


class Webhooks:
    """On an asyncpg connection (the consumer's unit of work) or the pool (`Database`): every
    method is a single statement, so atomic on its own."""

    def __init__(self, db: Queries, box: TokenBox) -> None:
        self.db = db
        self.box = box

    async def add_subscription(self, subscription: Subscription) -> None:
        await self.db.fetch(
            f"INSERT INTO webhook_subscriptions ({_SUBSCRIPTION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            subscription.id,
            subscription.agency,
            subscription.callback_url,
            self.box.seal(subscription.bearer_token, subscription.id),
            list(subscription.event_types),
            subscription.status,
            subscription.disabled_reason,
            subscription.created_at,
        )

    async def subscription(self, subscription_id: str) -> Subscription | None:
        row = await self.db.fetchrow(
            f"SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE id = $1", subscription_id
        )
        return _subscription(row, self.box) if row else None

    async def seal_legacy(self) -> int:
        """Seal the tokens stored before they were sealed; how many there were."""
        rows = await self.db.fetch(
            "SELECT id, bearer_token FROM webhook_subscriptions WHERE bearer_token NOT LIKE $1", SEALED + "%"
        )
        for row in rows:  # guarded: an instance doing the same meanwhile seals it once
            await self.db.fetch(
                "UPDATE webhook_subscriptions SET bearer_token = $2 WHERE id = $1 AND bearer_token = $3",
                row["id"],
                self.box.seal(row["bearer_token"], row["id"]),
                row["bearer_token"],
            )
        return len(rows)

    async def subscriptions_of(self, agency: str) -> list[Subscription]:
        rows = await self.db.fetch(
            f"SELECT {_SUBSCRIPTION_COLUMNS} FROM webhook_subscriptions WHERE agency = $1 ORDER BY created_at, id",
            agency,
        )
        return [_subscription(r, self.box) for r in rows]

    async def remove_subscription(self, subscription_id: str, now: datetime) -> None:
        """Delete it and cancel its pending deliveries, in one statement."""
        await self.db.fetch(
            """WITH removed AS (DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING id)
               UPDATE webhook_deliveries
               SET status = 'cancelled', next_attempt_at = NULL, claim = NULL, last_error = $2, updated_at = $3
               WHERE subscription_id IN (SELECT id FROM removed) AND status = 'pending'""",
            subscription_id,
            "subscription deleted",
            now,
        )

    async def disable_subscription(self, subscription_id: str, reason: str, now: datetime) -> None:
        """Disable it and cancel its pending deliveries, in one statement."""
        await self.db.fetch(
            """WITH disabled AS (
                   UPDATE webhook_subscriptions SET status = 'disabled', disabled_reason = $2, disabled_at = $3
                   WHERE id = $1 RETURNING id)
               UPDATE webhook_deliveries
               SET status = 'cancelled', next_attempt_at = NULL, claim = NULL, last_error = $2, updated_at = $3
               WHERE subscription_id IN (SELECT id FROM disabled) AND status = 'pending'""",
            subscription_id,
            reason,
            now,
        )

    async def enqueue(self, subscription: Subscription, event: CloudEvent, topic: str, now: datetime) -> bool:
        """Queue `event` for `subscription`; False if it was queued before (a re-delivery)."""
        inserted = await self.db.fetchval(
            """INSERT INTO webhook_deliveries (subscription_id, event_id, agency, event_type, topic, cloudevent,
                   status, attempts, next_attempt_at, created_at, updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $7, $7)
               ON CONFLICT (subscription_id, event_id) DO NOTHING RETURNING true""",
            subscription.id,
            event.id,
            subscription.agency,
            event.type,
            topic,
            # Serialized as publish_event does, so the webhook body is the Kafka record's value.
            event.to_bytes().decode(),
            now,
        )
        return bool(inserted)

    async def claim_due(self, now: datetime, lease: timedelta) -> Delivery | None:
        """Take the most overdue pending delivery that no other worker is claiming (SKIP
        LOCKED). Its next attempt moves `lease` ahead, committed with the claim, so no worker
        takes it meanwhile; a worker that dies mid-send leaves it to be retried once the lease
        has run out."""
        row = await self.db.fetchrow(
            """UPDATE webhook_deliveries SET next_attempt_at = $2, claim = gen_random_uuid(), updated_at = $1
               WHERE (subscription_id, event_id) = (
                   SELECT subscription_id, event_id FROM webhook_deliveries
                   WHERE status = 'pending' AND next_attempt_at <= $1
                   ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED)
               RETURNING *""",
            now,
            now + lease,
        )
        return _delivery(row) if row else None

    async def record_attempt(self, delivery: Delivery, decision: Decision, outcome: HttpOutcome, now: datetime) -> bool:
        """Record the outcome of the claimed attempt; False if the delivery is no longer ours:
        cancelled meanwhile (it stays cancelled) or claimed again after our lease ran out."""
        recorded = await self.db.fetchval(
            """UPDATE webhook_deliveries
               SET attempts = attempts + 1, status = $4, next_attempt_at = $5, last_status_code = $6,
                   last_error = $7, updated_at = $8, claim = NULL
               WHERE subscription_id = $1 AND event_id = $2 AND status = 'pending' AND claim = $3
               RETURNING true""",
            delivery.subscription_id,
            UUID(delivery.event_id),
            delivery.claim,
            _STATUS_AFTER[decision.verdict],
            decision.next_attempt_at,
            outcome.status_code,
            None if decision.verdict == "delivered" else decision.reason,
            now,
        )
        return bool(recorded)

    async def cancel(self, delivery: Delivery, reason: str, now: datetime) -> None:
        await self.db.fetch(
            """UPDATE webhook_deliveries
               SET status = 'cancelled', next_attempt_at = NULL, claim = NULL, last_error = $3, updated_at = $4
               WHERE subscription_id = $1 AND event_id = $2 AND status = 'pending'""",
            delivery.subscription_id,
            UUID(delivery.event_id),
            reason,
            now,
        )

    async def deliveries(self, subscription_id: str, *, status: str | None = None, limit: int = 50) -> list[Delivery]:
        rows = await self.db.fetch(
            """SELECT * FROM webhook_deliveries
               WHERE subscription_id = $1 AND ($2::text IS NULL OR status = $2)
               ORDER BY created_at DESC, event_id LIMIT $3""",
            subscription_id,
            status,
            limit,
        )
        return [_delivery(r) for r in rows]


_UNREACHABLE = (httpx.HTTPError, httpx.InvalidURL)


@dataclass(frozen=True)
class Handshake:
    """The receiver's answer to the abuse-protection handshake; `refusal` None means allowed."""

    refusal: str | None


class WebhookSender(Protocol):
    async def addresses(self, callback_url: str) -> list[str]: ...
    async def handshake(self, callback_url: str, origin: str) -> Handshake: ...
    async def deliver(self, callback_url: str, bearer_token: str, cloudevent: str) -> HttpOutcome: ...


async def _resolve(host: str) -> list[str]:
    """The IP addresses a host name resolves to (none if it does not)."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in found})


class _PublicAddressesOnly(httpcore.AsyncNetworkBackend):
    """Resolves each connection's host itself and connects only to an address it checked, so
    the address checked is the one connected to: a callback host that re-resolves to a private
    or loopback address after its subscription was made (DNS rebinding) gets no connection.
    TLS still verifies the certificate against the host name (httpcore passes it as SNI)."""

    def __init__(self, allow_local: bool) -> None:
        self.allow_local = allow_local
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host)
        if not self.allow_local and (problem := address_problem(addresses)):
            log.warning("webhook connection refused", reason=problem)
            raise httpcore.ConnectError(problem)
        address = addresses[0] if addresses else host
        return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options=None):  # type: ignore[no-untyped-def]
        raise httpcore.ConnectError("webhooks go over TCP only")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class HttpWebhookSender:
    """httpx, no redirects followed (a redirect could carry the bearer token to another host),
    and connections only to public addresses, checked per connection (unless `allow_local`)."""

    def __init__(self, timeout_seconds: float = 10.0, *, allow_local: bool = False) -> None:
        self.timeout = timeout_seconds
        self.allow_local = allow_local
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        # Made on first use, inside the running event loop, and kept for connection reuse.
        if self._client is None:
            transport = httpx.AsyncHTTPTransport()
            # httpx has no parameter for httpcore's network backend: its pool is made again with ours.
            transport._pool = httpcore.AsyncConnectionPool(
                ssl_context=httpx.create_ssl_context(), network_backend=_PublicAddressesOnly(self.allow_local)
            )
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False, transport=transport)
        return self._client

    async def addresses(self, callback_url: str) -> list[str]:
        """The IP addresses the callback URL's host resolves to (none if it does not)."""
        return await _resolve(urlsplit(callback_url).hostname or "")

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
