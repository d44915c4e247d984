"""Webhook use cases: register a subscription (only after the receiver passed the handshake),
queue an agency's events for its subscriptions, and deliver what is due."""

from datetime import UTC, datetime, timedelta

from services.routing.adapters.webhooks import Delivery, WebhookRepository, WebhookSender
from services.routing.domain.webhooks import (
    DEFAULT_POLICY,
    DeliveryPolicy,
    Subscription,
    callback_address_problem,
    callback_url_problem,
    decide,
    new_subscription,
)
from shared.events.envelope import CloudEvent
from shared.logging import bound_context, get_logger

log = get_logger(__name__)


class SubscriptionRefused(Exception):
    """The callback URL cannot be used; the reason is safe to show to the agency."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def register_subscription(
    *,
    agency: str,
    callback_url: str,
    bearer_token: str,
    event_types: list[str],
    repo: WebhookRepository,
    sender: WebhookSender,
    origin: str,
    allow_local: bool = False,
) -> Subscription:
    """Store a subscription once the receiver confirmed it wants our events, so the platform
    cannot be used to flood an address that never asked for them; never to an http URL or a
    private address unless `allow_local`."""
    problem = callback_url_problem(callback_url) or callback_address_problem(
        callback_url, await sender.addresses(callback_url), allow_local=allow_local
    )
    if problem:
        raise SubscriptionRefused(problem)
    handshake = await sender.handshake(callback_url, origin)
    if handshake.refusal:
        log.info("webhook handshake refused", agency=agency, reason=handshake.refusal)
        raise SubscriptionRefused(handshake.refusal)
    subscription = new_subscription(agency, callback_url, bearer_token, event_types)
    await repo.add_subscription(subscription)
    log.info("webhook subscription registered", agency=agency, subscription_id=subscription.id)
    return subscription


async def on_agency_event(
    event: CloudEvent, topic: str, *, agency: str, repo: WebhookRepository, now: datetime | None = None
) -> int:
    """Queue an event from `agency`'s topic for each of its active subscriptions that wants
    its type; return how many were newly queued (a re-delivered event queues none)."""
    now = now or datetime.now(UTC)
    queued = 0
    for subscription in await repo.subscriptions_of(agency):
        if subscription.wants(event.type):
            queued += await repo.enqueue(subscription, event, topic, now)
    return queued


async def deliver_due(
    now: datetime,
    *,
    repo: WebhookRepository,
    sender: WebhookSender,
    policy: DeliveryPolicy = DEFAULT_POLICY,
    lease: timedelta = timedelta(minutes=5),
    limit: int = 20,
) -> int:
    """Attempt up to `limit` deliveries that are due at `now`; return how many were attempted.
    `lease` must outlast a whole call (limit x HTTP timeout): a claimed delivery is left alone
    by other workers that long."""
    attempted = 0
    while attempted < limit and (delivery := await repo.claim_due(now, lease)):
        with bound_context(delivery_id=delivery.id, event_id=delivery.event_id):
            await _attempt(delivery, now, repo, sender, policy)
        attempted += 1
    return attempted


async def _attempt(
    delivery: Delivery, now: datetime, repo: WebhookRepository, sender: WebhookSender, policy: DeliveryPolicy
) -> None:
    subscription = await repo.subscription(delivery.subscription_id)
    if subscription is None or subscription.status != "active":
        # Queued just before the subscription was deleted or disabled.
        await repo.cancel(delivery, "subscription deleted or disabled", now)
        return
    outcome = await sender.deliver(subscription.callback_url, subscription.bearer_token, delivery.cloudevent)
    decision = decide(delivery.attempts + 1, outcome, now, policy)
    if not await repo.record_attempt(delivery, decision, outcome, now):
        # Cancelled meanwhile, or our lease ran out and another worker claimed it again.
        log.warning("webhook delivery outcome not recorded: no longer ours", verdict=decision.verdict)
        return
    log.info(
        "webhook delivery attempted",
        subscription_id=subscription.id,
        attempt=delivery.attempts + 1,
        verdict=decision.verdict,
        status_code=outcome.status_code,
        error=outcome.error,
    )
    if decision.verdict == "disable":
        await repo.disable_subscription(subscription.id, decision.reason or "disabled", now)
        log.warning("webhook subscription disabled", subscription_id=subscription.id, reason=decision.reason)
