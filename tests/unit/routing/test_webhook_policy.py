"""The webhook delivery policy: what happens after each attempt, from the HTTP outcome alone."""

from datetime import UTC, datetime, timedelta

import pytest

from services.routing.domain.webhooks import (
    DeliveryPolicy,
    HttpOutcome,
    Subscription,
    backoff_delay,
    callback_address_problem,
    callback_url_problem,
    decide,
    delivery_id,
    new_subscription,
    retry_after_delay,
)

NOW = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
POLICY = DeliveryPolicy(
    max_attempts=5,
    first_delay=timedelta(seconds=1),
    max_delay=timedelta(seconds=10),
    max_retry_after=timedelta(minutes=5),
)


def status(code: int, retry_after: str | None = None) -> HttpOutcome:
    return HttpOutcome(status_code=code, retry_after=retry_after)


@pytest.mark.parametrize("code", [200, 201, 202, 204])
def test_any_2xx_is_delivered(code):
    assert decide(1, status(code), NOW, POLICY).verdict == "delivered"


def test_429_honours_retry_after_in_seconds():
    decision = decide(1, status(429, "30"), NOW, POLICY)
    assert (decision.verdict, decision.next_attempt_at) == ("retry", NOW + timedelta(seconds=30))


def test_429_honours_retry_after_as_an_http_date():
    decision = decide(1, status(429, "Mon, 30 Nov 2026 09:02:00 GMT"), NOW, POLICY)
    assert decision.next_attempt_at == NOW + timedelta(minutes=2)


def test_429_retry_after_is_capped():
    assert decide(1, status(429, "86400"), NOW, POLICY).next_attempt_at == NOW + timedelta(minutes=5)
    far = "Tue, 01 Dec 2026 09:00:00 GMT"
    assert decide(1, status(429, far), NOW, POLICY).next_attempt_at == NOW + timedelta(minutes=5)
    assert decide(1, status(429, "9" * 40), NOW, POLICY).next_attempt_at == NOW + timedelta(minutes=5)


def test_429_with_a_date_in_the_past_retries_at_once():
    assert decide(1, status(429, "Mon, 30 Nov 2026 08:00:00 GMT"), NOW, POLICY).next_attempt_at == NOW
    assert decide(1, status(429, "0"), NOW, POLICY).next_attempt_at == NOW


@pytest.mark.parametrize("retry_after", [None, "", "soon", "-5", "1.5", "²", "Mon, 32 Nov 2026"])
def test_429_without_a_usable_retry_after_backs_off(retry_after):
    decision = decide(3, status(429, retry_after), NOW, POLICY)
    assert (decision.verdict, decision.next_attempt_at) == ("retry", NOW + timedelta(seconds=4))


@pytest.mark.parametrize("outcome", [status(500), status(502), status(503), HttpOutcome(error="ConnectTimeout")])
def test_server_errors_and_transport_errors_back_off_doubling(outcome):
    delays = [decide(n, outcome, NOW, POLICY).next_attempt_at - NOW for n in (1, 2, 3, 4)]
    assert delays == [timedelta(seconds=s) for s in (1, 2, 4, 8)]
    assert decide(1, outcome, NOW, POLICY).reason == outcome.summary


def test_backoff_is_capped():
    policy = DeliveryPolicy(max_attempts=100, max_delay=timedelta(seconds=10))
    assert [backoff_delay(n, policy).total_seconds() for n in (4, 5, 6, 99)] == [8, 10, 10, 10]
    assert backoff_delay(10_000, policy) == timedelta(seconds=10)


@pytest.mark.parametrize("outcome", [status(503), status(429, "1"), HttpOutcome(error="ReadTimeout")])
def test_gives_up_after_the_last_attempt(outcome):
    assert decide(POLICY.max_attempts - 1, outcome, NOW, POLICY).verdict == "retry"
    decision = decide(POLICY.max_attempts, outcome, NOW, POLICY)
    assert (decision.verdict, decision.next_attempt_at) == ("failed", None)
    assert decision.reason.startswith("gave up after 5 attempts")


def test_410_gone_disables_the_subscription():
    decision = decide(1, status(410), NOW, POLICY)
    assert (decision.verdict, decision.next_attempt_at) == ("disable", None)
    assert "410" in decision.reason


@pytest.mark.parametrize("code", [400, 401, 403, 404, 413, 415, 301, 302])
def test_other_client_errors_and_redirects_fail_without_retry(code):
    decision = decide(1, status(code), NOW, POLICY)
    assert (decision.verdict, decision.next_attempt_at) == ("failed", None)
    assert f"HTTP {code}" in decision.reason


def test_the_defaults_are_sensible():
    policy = DeliveryPolicy()
    assert policy.max_attempts >= 3 and policy.first_delay > timedelta(0)
    assert retry_after_delay(None, NOW) is None


def test_the_bearer_token_never_shows_in_a_subscriptions_repr():
    subscription = new_subscription("cak", "https://cak.example/hook", "s3cr3t-t0ken-value", ["nl.ido.X", "nl.ido.X"])
    assert "s3cr3t" not in repr(subscription)
    assert subscription.event_types == ("nl.ido.X",)


def test_a_subscription_wants_its_event_types_while_active():
    everything = Subscription(id="s", agency="cak", callback_url="https://x", bearer_token="t")
    some = Subscription(id="s", agency="cak", callback_url="https://x", bearer_token="t", event_types=("nl.ido.A",))
    disabled = Subscription(id="s", agency="cak", callback_url="https://x", bearer_token="t", status="disabled")
    assert everything.wants("nl.ido.B") and some.wants("nl.ido.A") and not some.wants("nl.ido.B")
    assert not disabled.wants("nl.ido.A")


@pytest.mark.parametrize(
    ("url", "usable"),
    [
        ("https://uwv.example/ido/events", True),
        ("http://127.0.0.1:8080/hook", True),
        ("ftp://uwv.example/hook", False),
        ("https:///nohost", False),
        ("https://user:pw@uwv.example/hook", False),
        ("https://uwv.example/hook#frag", False),
        ("not a url", False),
    ],
)
def test_callback_urls(url, usable):
    assert (callback_url_problem(url) is None) is usable


def test_one_delivery_per_subscription_and_event():
    assert delivery_id("sub-1", "ev-1") == "sub-1:ev-1"


@pytest.mark.parametrize(
    ("url", "addresses", "problem"),
    [
        ("https://uwv.example/hook", ["93.184.215.14"], None),
        ("https://uwv.example/hook", ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"], None),
        ("http://uwv.example/hook", ["93.184.215.14"], "must be https"),
        ("https://127.0.0.1/hook", ["127.0.0.1"], "127.0.0.1, a private, loopback or reserved address"),
        ("https://intranet.example/hook", ["10.1.2.3"], "10.1.2.3"),
        ("https://metadata.example/hook", ["169.254.169.254"], "169.254.169.254"),
        ("https://v6.example/hook", ["::1"], "::1"),
        ("https://mixed.example/hook", ["93.184.215.14", "192.168.1.5"], "192.168.1.5"),
        ("https://nowhere.example/hook", [], "cannot be resolved"),
    ],
)
def test_callbacks_go_only_to_https_on_public_addresses(url, addresses, problem):
    """Issue 11.4: the platform cannot be made to call into a private network."""
    found = callback_address_problem(url, addresses, allow_local=False)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_local_callbacks_only_when_allowed_for_tests_and_demos():
    assert callback_address_problem("http://127.0.0.1:8080/hook", ["127.0.0.1"], allow_local=True) is None
