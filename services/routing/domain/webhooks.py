"""Webhook subscriptions for agencies without Kafka (CloudEvents HTTP webhook spec, NL GOV
profile): who receives which events where, and the delivery policy that decides, after each
attempt, whether a delivery is done, retried later, given up, or the subscription disabled.
Pure rules: no I/O, the caller passes the time and the HTTP outcome."""

import ipaddress
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

from shared.events.catalog import EVENT_TYPES
from shared.events.envelope import TYPE_PREFIX

SubscriptionStatus = Literal["active", "disabled"]
DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]
Verdict = Literal["delivered", "retry", "failed", "disable"]

# The event types an agency can subscribe to, as they appear in the CloudEvent `type`.
KNOWN_EVENT_TYPES = frozenset(TYPE_PREFIX + name for name in EVENT_TYPES)


@dataclass(frozen=True)
class Subscription:
    id: str
    agency: str
    callback_url: str
    # A secret of the agency's: kept out of repr so it cannot end up in a log line.
    bearer_token: str = field(repr=False)
    event_types: tuple[str, ...] = ()  # empty: every event type on the agency's topic
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: SubscriptionStatus = "active"
    disabled_reason: str | None = None

    def wants(self, event_type: str) -> bool:
        return self.status == "active" and (not self.event_types or event_type in self.event_types)


def new_subscription(agency: str, callback_url: str, bearer_token: str, event_types: list[str]) -> Subscription:
    return Subscription(
        id=str(uuid.uuid4()),
        agency=agency,
        callback_url=callback_url,
        bearer_token=bearer_token,
        event_types=tuple(dict.fromkeys(event_types)),  # duplicates dropped, order kept
    )


def callback_url_problem(url: str) -> str | None:
    """Why `url` cannot be a callback URL, or None when it can."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        return "the callback URL must be an https (or http) URL"
    if not parts.hostname:
        return "the callback URL must name a host"
    if parts.username or parts.password:
        return "the callback URL must not carry credentials; use the bearer token"
    if parts.fragment:
        return "the callback URL must not have a fragment"
    return None


def callback_address_problem(url: str, addresses: list[str], *, allow_local: bool) -> str | None:
    """Why events may not go to `url`, whose host resolves to `addresses`: only https, and
    only to public addresses, so the platform cannot be made to call into a private network
    (its own services, the metadata endpoint of a cloud). `allow_local` lifts both for tests
    and local demos (ROUTING_WEBHOOK_ALLOW_LOCAL)."""
    if allow_local:
        return None
    if urlsplit(url).scheme != "https":
        return "the callback URL must be https"
    return address_problem(addresses)


def address_problem(addresses: list[str]) -> str | None:
    """Why a callback host that resolves to `addresses` may not be called: checked when a
    subscription is made and again on every connection (its name may resolve elsewhere by then)."""
    if not addresses:
        return "the callback host cannot be resolved"
    for address in addresses:
        if not ipaddress.ip_address(address.split("%")[0]).is_global:
            return f"the callback host resolves to {address}, a private, loopback or reserved address"
    return None


def delivery_id(subscription_id: str, event_id: str) -> str:
    """One delivery per subscription and event, so an event Kafka delivers again is not sent twice."""
    return f"{subscription_id}:{event_id}"


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    first_delay: timedelta = timedelta(seconds=1)
    max_delay: timedelta = timedelta(minutes=10)
    # A receiver asking (Retry-After) for a longer pause than this gets this.
    max_retry_after: timedelta = timedelta(hours=1)


DEFAULT_POLICY = DeliveryPolicy()


@dataclass(frozen=True)
class HttpOutcome:
    """What one delivery attempt got back: a status code, or a transport error (no response)."""

    status_code: int | None = None
    retry_after: str | None = None
    error: str | None = None  # the error's kind only (e.g. "ConnectTimeout"), never a response body

    @property
    def summary(self) -> str:
        return f"HTTP {self.status_code}" if self.status_code is not None else f"transport error: {self.error}"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    next_attempt_at: datetime | None = None
    reason: str | None = None


def decide(attempt: int, outcome: HttpOutcome, now: datetime, policy: DeliveryPolicy = DEFAULT_POLICY) -> Decision:
    """The verdict after attempt number `attempt` (1 for the first) got `outcome` at `now`."""
    code = outcome.status_code
    if code is not None and 200 <= code < 300:
        return Decision("delivered")
    if code == 410:
        return Decision("disable", reason="the callback answered 410 Gone")
    if code == 429:
        asked = retry_after_delay(outcome.retry_after, now, policy)
        delay = asked if asked is not None else backoff_delay(attempt, policy)
        return _retry_or_give_up(attempt, now + delay, outcome, policy)
    if code is None or code >= 500:
        return _retry_or_give_up(attempt, now + backoff_delay(attempt, policy), outcome, policy)
    # Other 4xx (and redirects, which are not followed: they could carry the token elsewhere).
    return Decision("failed", reason=f"{outcome.summary}: not retried")


def _retry_or_give_up(attempt: int, at: datetime, outcome: HttpOutcome, policy: DeliveryPolicy) -> Decision:
    if attempt >= policy.max_attempts:
        return Decision("failed", reason=f"gave up after {attempt} attempts; last: {outcome.summary}")
    return Decision("retry", next_attempt_at=at, reason=outcome.summary)


def backoff_delay(attempt: int, policy: DeliveryPolicy = DEFAULT_POLICY) -> timedelta:
    """first_delay doubling per attempt, capped; deterministic so the schedule is predictable."""
    doublings = min(max(attempt - 1, 0), 32)  # past 2**32 any sane cap has long been reached
    return min(policy.first_delay * 2**doublings, policy.max_delay)


def retry_after_delay(value: str | None, now: datetime, policy: DeliveryPolicy = DEFAULT_POLICY) -> timedelta | None:
    """The pause a Retry-After header asks for (delay-seconds or an HTTP-date), capped;
    None when it is missing or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Capped before converting: an absurd number must not overflow timedelta.
        delay = timedelta(seconds=min(int(value), policy.max_retry_after.total_seconds()))
    else:
        try:
            at = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError):
            return None
        if at.tzinfo is None:  # an HTTP-date is GMT by definition
            at = at.replace(tzinfo=UTC)
        delay = max(at - now, timedelta(0))
    return min(delay, policy.max_retry_after)
