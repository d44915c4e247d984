"""Webhooks for agencies without Kafka: the /v1/webhooks API, the consumer that queues every
event of an agency's topic for its subscriptions, and the delivery worker."""

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings

from services.routing import webhook_handlers
from services.routing.adapters.webhooks import (
    Delivery,
    HttpWebhookSender,
    TokenBox,
    WebhookRepository,
    Webhooks,
    WebhookSender,
)
from services.routing.domain.webhooks import KNOWN_EVENT_TYPES, DeliveryPolicy, Subscription, callback_url_problem
from shared.auth import Principal
from shared.consuming import EventConsumer, Handler, TopicMap
from shared.events.catalog import EVENT_TYPES, organisation_of, referral_topic_pattern
from shared.events.envelope import CloudEvent
from shared.http import Problem, require_json
from shared.logging import get_logger
from shared.runtime import ServiceRuntime
from shared.settings import REPO_ROOT, ServiceSettings, service_settings
from shared.unit_of_work import UnitOfWork

log = get_logger(__name__)

WEBHOOKS_GROUP_SUFFIX = "-webhooks"  # after routing's own group: ido-routing-webhooks
# RFC 6750 b64token: what can travel in `Authorization: Bearer ...` unchanged.
BEARER_TOKEN_PATTERN = r"^[A-Za-z0-9\-._~+/]+=*$"


class WebhookSettings(BaseSettings):
    model_config = service_settings("routing_webhook")  # ROUTING_WEBHOOK_ORIGIN, ...

    # Sent as WebHook-Request-Origin in the handshake; default: the host of ROUTING_PUBLIC_BASE_URL.
    origin: str = ""
    poll_seconds: float = Field(1.0, gt=0)
    http_timeout_seconds: float = Field(10.0, gt=0)
    batch_size: int = Field(20, ge=1)
    max_attempts: int = Field(8, ge=1)
    first_delay_seconds: float = Field(1.0, ge=0)
    max_delay_seconds: float = Field(600.0, ge=0)
    max_retry_after_seconds: float = Field(3600.0, ge=0)
    # Callback URLs may be http and on private or loopback addresses: for tests and local demos
    # only (ROUTING_WEBHOOK_ALLOW_LOCAL); otherwise https to public addresses.
    allow_local: bool = False
    # The key the agencies' bearer tokens are encrypted with (made on first start if missing;
    # in production a mounted secret). Lose it and the stored subscriptions must be made again.
    secrets_key_file: FilePath = REPO_ROOT / ".local" / "routing" / "webhook-secrets.key"

    def policy(self) -> DeliveryPolicy:
        return DeliveryPolicy(
            max_attempts=self.max_attempts,
            first_delay=timedelta(seconds=self.first_delay_seconds),
            max_delay=timedelta(seconds=self.max_delay_seconds),
            max_retry_after=timedelta(seconds=self.max_retry_after_seconds),
        )

    def lease(self) -> timedelta:
        # Longer than one deliver_due call can take, so no second worker sends a claimed delivery.
        return timedelta(seconds=self.http_timeout_seconds * (self.batch_size + 1))


# --- HTTP API ---------------------------------------------------------------------------------


class NewSubscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    callback_url: str = Field(min_length=1, max_length=2000)
    bearer_token: str = Field(min_length=16, max_length=4096, pattern=BEARER_TOKEN_PATTERN, repr=False)
    event_types: list[str] = Field(default_factory=list, max_length=len(KNOWN_EVENT_TYPES))

    @field_validator("callback_url")
    @classmethod
    def _usable_url(cls, url: str) -> str:
        problem = callback_url_problem(url)
        if problem:
            raise ValueError(problem)
        return url

    @field_validator("event_types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        if any(t not in KNOWN_EVENT_TYPES for t in types):
            raise ValueError("unknown event type; known: " + ", ".join(sorted(KNOWN_EVENT_TYPES)))
        return types


class SubscriptionView(BaseModel):
    """A subscription as the agency sees it: never with its bearer token."""

    id: str
    agency: str
    callback_url: str
    event_types: list[str]
    status: Literal["active", "disabled"]
    disabled_reason: str | None
    created_at: datetime

    @classmethod
    def of(cls, s: Subscription) -> "SubscriptionView":
        return cls(
            id=s.id,
            agency=s.agency,
            callback_url=s.callback_url,
            event_types=list(s.event_types),
            status=s.status,
            disabled_reason=s.disabled_reason,
            created_at=s.created_at,
        )


class DeliveryView(BaseModel):
    id: str
    event_id: str
    event_type: str
    status: Literal["pending", "delivered", "failed", "cancelled"]
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, d: Delivery) -> "DeliveryView":
        return cls.model_validate(d, from_attributes=True)


def _agency(caller: Principal) -> str:
    if caller.role != "agency":
        raise Problem(403, "Only an agency can manage webhook subscriptions")
    return caller.organisation


def build_router(
    *, authenticated, repo: WebhookRepository, sender: WebhookSender, origin: str, allow_local: bool = False
) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
    Caller = Annotated[Principal, Depends(authenticated)]
    SubscriptionId = Annotated[str, Path(max_length=100)]

    async def owned(subscription_id: str, caller: Principal) -> Subscription:
        agency = _agency(caller)
        subscription = await repo.subscription(subscription_id)
        # Another agency's subscription answers 404: its existence is not revealed.
        if subscription is None or subscription.agency != agency:
            raise Problem(404, "Webhook subscription not found")
        return subscription

    @router.post("", status_code=201, response_model=SubscriptionView, dependencies=[Depends(require_json)])
    async def register(body: NewSubscription, caller: Caller, response: Response) -> SubscriptionView:
        """Subscribe a callback URL to this agency's events. The URL must pass the CloudEvents
        webhook handshake (OPTIONS with WebHook-Request-Origin) before anything is stored."""
        try:
            subscription = await webhook_handlers.register_subscription(
                agency=_agency(caller),
                callback_url=body.callback_url,
                bearer_token=body.bearer_token,
                event_types=body.event_types,
                repo=repo,
                sender=sender,
                origin=origin,
                allow_local=allow_local,
            )
        except webhook_handlers.SubscriptionRefused as refused:
            raise Problem(422, "Webhook subscription refused", refused.reason) from None
        response.headers["Location"] = f"/v1/webhooks/{subscription.id}"
        return SubscriptionView.of(subscription)

    @router.get("", response_model=list[SubscriptionView])
    async def list_subscriptions(caller: Caller) -> list[SubscriptionView]:
        return [SubscriptionView.of(s) for s in await repo.subscriptions_of(_agency(caller))]

    @router.get("/{subscription_id}", response_model=SubscriptionView)
    async def read(subscription_id: SubscriptionId, caller: Caller) -> SubscriptionView:
        return SubscriptionView.of(await owned(subscription_id, caller))

    @router.delete("/{subscription_id}", status_code=204)
    async def delete(subscription_id: SubscriptionId, caller: Caller) -> Response:
        """Unsubscribe; deliveries still pending are cancelled."""
        subscription = await owned(subscription_id, caller)
        await repo.remove_subscription(subscription.id, datetime.now(UTC))
        log.info("webhook subscription deleted", subscription_id=subscription.id)
        return Response(status_code=204)

    @router.get("/{subscription_id}/deliveries", response_model=list[DeliveryView])
    async def deliveries(
        subscription_id: SubscriptionId,
        caller: Caller,
        status: Literal["pending", "delivered", "failed", "cancelled"] | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> list[DeliveryView]:
        """The subscription's deliveries, newest first: state, attempts, next attempt, last result."""
        subscription = await owned(subscription_id, caller)
        return [DeliveryView.of(d) for d in await repo.deliveries(subscription.id, status=status, limit=limit)]

    return router


# --- Consuming and delivering -----------------------------------------------------------------


def agency_handlers(topic: str, agency: str, box: TokenBox) -> dict[str, Handler]:
    """Every event type on `agency`'s topic is queued for its webhook subscriptions, in the
    consumer's unit of work (with the processed record: a re-delivery queues nothing)."""

    async def queue(event: CloudEvent, data: Any, tx: UnitOfWork) -> None:
        await webhook_handlers.on_agency_event(event, topic, agency=agency, repo=Webhooks(tx.conn, box))

    return {name: queue for name in EVENT_TYPES}


def subscribe(consumer: EventConsumer, box: TokenBox) -> None:
    """Every receiving organisation's referral topic, the agencies' and the local partners' (a
    partner's topic is made when its first referral is sent, and is read from its start)."""

    def handlers_for(topic: str) -> dict[str, Handler]:
        return agency_handlers(topic, str(organisation_of(topic)), box)

    consumer.subscribe_pattern(f"^{referral_topic_pattern()}$", TopicMap({}, handlers_for))


async def _seal_legacy(repo: Webhooks) -> None:
    if sealed := await repo.seal_legacy():
        log.info("webhook tokens stored in plain text were sealed", subscriptions=sealed)


class DeliveryWorker:
    """Sends due deliveries; polls, and is woken at once when the consumer queued something.
    Every instance runs one: claims (SKIP LOCKED + lease) keep them off each other's deliveries."""

    def __init__(self, repo: WebhookRepository, sender: HttpWebhookSender, config: WebhookSettings) -> None:
        self.repo, self.sender, self.config = repo, sender, config
        self.policy = config.policy()
        self.rounds = 0  # delivery rounds done (what a test or an operator can wait on)
        self._wake = asyncio.Event()

    def notify(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            await self._loop()
        finally:
            await self.sender.aclose()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            more = False
            try:
                more = await self.deliver_once() == self.config.batch_size
            except Exception:
                # Database unavailable: deliveries stay pending and are picked up on a later round.
                log.exception("webhook delivery round failed; retrying")
            self.rounds += 1
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.config.poll_seconds)

    async def deliver_once(self) -> int:
        return await webhook_handlers.deliver_due(
            datetime.now(UTC),
            repo=self.repo,
            sender=self.sender,
            policy=self.policy,
            lease=self.config.lease(),
            limit=self.config.batch_size,
        )


def handshake_origin(config: WebhookSettings, public_base_url: str) -> str:
    """Our WebHook-Request-Origin: the setting, else the host agencies know routing by."""
    return config.origin or urlsplit(public_base_url).hostname or "localhost"


def install(
    runtime: ServiceRuntime, app: FastAPI, settings: ServiceSettings, config: WebhookSettings | None = None
) -> DeliveryWorker:
    """Add webhooks to routing: the API, a consumer group of its own on every organisation's topic,
    and the delivery worker, which starts and stops with the service."""
    config = config or WebhookSettings()
    origin = handshake_origin(config, settings.public_base_url)
    box = TokenBox.from_file(config.secrets_key_file)
    repo = Webhooks(runtime.db, box)  # on the pool: each statement commits on its own
    sender = HttpWebhookSender(config.http_timeout_seconds, allow_local=config.allow_local)
    worker = DeliveryWorker(repo, sender, config)
    app.include_router(
        build_router(
            authenticated=runtime.authenticated, repo=repo, sender=sender, origin=origin, allow_local=config.allow_local
        )
    )
    consumer = EventConsumer(
        runtime.broker,
        runtime.db,
        group_id=runtime.consumer.group_id + WEBHOOKS_GROUP_SUFFIX,
        max_attempts=settings.consumer_max_attempts,
        backoff_seconds=settings.consumer_backoff_seconds,
        on_handled=worker.notify,  # a queued event goes out right away, not at the next poll
    )
    subscribe(consumer, box)
    runtime.add_background(lambda: _seal_legacy(repo))
    runtime.add_background(worker.run)
    return worker
