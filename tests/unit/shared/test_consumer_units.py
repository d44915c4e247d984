"""EventConsumer.process with a fake broker and a fake database whose units of work commit
the processed-event records only when the handler succeeded (as a transaction does)."""

from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from shared.consuming import EventConsumer, PermanentError
from shared.events.catalog import HelpRequestRouted, QuestionDecision
from shared.outbox import EventFactory

TOPIC = "ido.routing.v1"


class FakeBroker:
    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    async def publish(self, body, topic, key, headers):
        self.published.append({"body": body, "topic": topic, "key": key, "headers": headers})


class FakeUnitOfWork:
    def __init__(self, committed: dict[str, dict[str, Any]]) -> None:
        self.committed = committed
        self.recorded: dict[str, dict[str, Any]] = {}

    async def first_delivery(self, consumer: str, event_id) -> bool:
        key = f"{consumer}:{event_id}"
        if key in self.committed or key in self.recorded:
            return False
        self.recorded[key] = {"consumer": consumer}
        return True


class FakeDb:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}  # committed processed-event records

    @asynccontextmanager
    async def unit_of_work(self):
        uow = FakeUnitOfWork(self.docs)
        yield uow  # an exception here is a rollback: nothing recorded
        self.docs.update(uow.recorded)


@dataclass
class Record:
    topic: str = TOPIC
    partition: int = 3
    offset: int = 17
    key: bytes = b"hr-1"
    headers: list[tuple[str, bytes]] = field(default_factory=lambda: [("traceparent", b"00-abc-def-01")])


class Handler:
    """Records calls; fails the first `failures` times (always when failures is None)."""

    def __init__(self, failures: int | None = 0, exc: Exception | None = None) -> None:
        self.failures = failures
        self.exc = exc or RuntimeError("database down")
        self.calls: list[tuple[Any, Any]] = []

    async def __call__(self, event, data, uow):
        self.calls.append((event, data))
        if self.failures is None or len(self.calls) <= self.failures:
            raise self.exc


def consumer(max_attempts: int = 4) -> tuple[EventConsumer, FakeBroker, FakeDb]:
    broker, db = FakeBroker(), FakeDb()
    c = EventConsumer(
        broker=cast(Any, broker), db=cast(Any, db), group_id="g", max_attempts=max_attempts, backoff_seconds=0
    )
    return c, broker, db


def routed_event():
    data = HelpRequestRouted(
        help_request_id="hr-1",
        library="katwijk",
        decisions=[QuestionDecision(question_index=0, outcome="helped_at_desk")],
    )
    events = EventFactory(service="routing", oin="00000001003214345000", base_url="http://routing")
    return events.create(data, correlation_id="corr-1").event


async def test_valid_event_is_handled_once_and_recorded():
    c, broker, processed = consumer()
    handler = Handler()
    event = routed_event()

    await c.process(TOPIC, event.to_bytes(), Record(), {"HelpRequestRouted": handler})

    [(got_event, got_data)] = handler.calls
    assert got_event.id == event.id
    assert isinstance(got_data, HelpRequestRouted)
    assert got_data.help_request_id == "hr-1"
    assert list(processed.docs) == [f"g:{event.id}"]
    assert processed.docs[f"g:{event.id}"]["consumer"] == "g"
    assert broker.published == []


async def test_same_bytes_again_do_not_call_the_handler_again():
    c, broker, processed = consumer()
    handler = Handler()
    body = routed_event().to_bytes()

    await c.process(TOPIC, body, Record(), {"HelpRequestRouted": handler})
    await c.process(TOPIC, body, Record(), {"HelpRequestRouted": handler})

    assert len(handler.calls) == 1
    assert len(processed.docs) == 1
    assert broker.published == []


async def test_non_json_goes_to_the_dlq_unchanged():
    c, broker, processed = consumer()
    handler = Handler()

    await c.process(TOPIC, b"not json {", Record(), {"HelpRequestRouted": handler})

    assert handler.calls == []
    assert processed.docs == {}
    [dlq] = broker.published
    assert dlq["topic"] == "ido.routing.v1.dlq"
    assert dlq["body"] == b"not json {"
    assert dlq["key"] == b"hr-1"
    headers = dlq["headers"]
    assert headers["ido-dlq-reason"].startswith("not a valid CloudEvent")
    assert headers["ido-dlq-topic"] == TOPIC
    assert headers["ido-dlq-partition"] == "3"
    assert headers["ido-dlq-offset"] == "17"
    assert headers["ido-dlq-consumer"] == "g"
    assert headers["ido-dlq-attempts"] == "0"
    assert headers["traceparent"] == "00-abc-def-01"  # the record's own headers are kept


async def test_invalid_data_goes_to_the_dlq_with_field_names_only():
    c, broker, _ = consumer()
    handler = Handler()
    event = routed_event()
    bad = event.model_copy(update={"data": {**event.data, "decisions": "j.jansen@example.org"}})

    await c.process(TOPIC, bad.to_bytes(), Record(), {"HelpRequestRouted": handler})

    assert handler.calls == []
    [dlq] = broker.published
    reason = dlq["headers"]["ido-dlq-reason"]
    assert reason.startswith("invalid event data: ")
    assert "decisions" in reason
    assert "j.jansen@example.org" not in reason


async def test_event_type_without_handler_is_ignored():
    c, broker, processed = consumer()
    handler = Handler()

    await c.process(TOPIC, routed_event().to_bytes(), Record(), {"ReferralStatusChanged": handler})

    assert handler.calls == []
    assert broker.published == []
    assert processed.docs == {}


async def test_transient_failures_are_retried_until_success():
    c, broker, processed = consumer(max_attempts=3)
    handler = Handler(failures=2)
    event = routed_event()

    await c.process(TOPIC, event.to_bytes(), Record(), {"HelpRequestRouted": handler})

    assert len(handler.calls) == 3
    assert list(processed.docs) == [f"g:{event.id}"]
    assert broker.published == []


async def test_handler_always_failing_is_dead_lettered_after_max_attempts():
    c, broker, processed = consumer(max_attempts=2)
    handler = Handler(failures=None)
    body = routed_event().to_bytes()

    await c.process(TOPIC, body, Record(), {"HelpRequestRouted": handler})

    assert len(handler.calls) == 2
    assert processed.docs == {}
    [dlq] = broker.published
    assert dlq["topic"] == "ido.routing.v1.dlq"
    assert dlq["body"] == body
    assert dlq["headers"]["ido-dlq-attempts"] == "2"
    assert dlq["headers"]["ido-dlq-reason"] == "failed after 2 attempts: RuntimeError: database down"


async def test_permanent_error_is_dead_lettered_without_retry():
    c, broker, processed = consumer(max_attempts=4)
    handler = Handler(failures=None, exc=PermanentError("no such help request"))

    await c.process(TOPIC, routed_event().to_bytes(), Record(), {"HelpRequestRouted": handler})

    assert len(handler.calls) == 1
    assert processed.docs == {}
    [dlq] = broker.published
    assert dlq["headers"]["ido-dlq-attempts"] == "1"
    assert dlq["headers"]["ido-dlq-reason"] == "permanent: no such help request"


def test_identifiers_and_sealed_data_are_not_read_as_a_bsn_but_free_text_is():
    import uuid

    from shared.consuming import _holds_bsn
    from shared.privacy import contains_bsn

    # A UUID whose digit groups pass the elfproef, as 0.7% of random ones do.
    tricky = "82dd503d-aad4-4265-8631-31f2f06b60ee"
    assert contains_bsn(tricky), "the trap: read as text, this UUID holds a BSN"
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, str(i))) for i in range(2000)]
    data = {"help_request_id": tricky, "decisions": [{"referral_id": i} for i in ids], "sealed": "x/111222333/y"}
    assert not _holds_bsn(data)
    assert not _holds_bsn({"referral": tricky, "items": ids})
    assert _holds_bsn({**data, "note": "BSN 111222333"})
    assert _holds_bsn({"decisions": [{"reason": "zijn bsn: 111 222 333"}]})
