"""Traces across the bus, in one process: a request's span is the parent of what it emits, and a
consumer's span continues the trace its event carries."""

import uuid

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.events import catalog
from shared.events.envelope import parse_event
from shared.outbox import EventFactory
from shared.tracing import RequestTracing, consuming, folding, trace_ids

EXPORTED = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def exporting() -> None:
    """The process's provider is set once (by whoever comes first): this module exports from it
    into memory."""
    current = trace.get_tracer_provider()
    if not isinstance(current, TracerProvider):
        current = TracerProvider()
        trace.set_tracer_provider(current)
    current.add_span_processor(SimpleSpanProcessor(EXPORTED))


FACTORY = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")


def requested() -> catalog.HelpRequested:
    return catalog.HelpRequested.model_validate(
        {
            "help_request_id": str(uuid.uuid4()),
            "library": "venlo",
            "channel": "walk_in",
            "questions": [{"index": 0, "category": "other", "theme": "overig"}],
            "registered_at": "2026-12-06T10:00:00Z",
        }
    )


def app_emitting(emitted: list) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/things/{thing_id}")
    async def thing(thing_id: str) -> dict:
        emitted.append(FACTORY.create(requested(), correlation_id=None).event)
        return {"logged": trace_ids()}

    app.add_middleware(RequestTracing)
    return app


async def call(app: FastAPI, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post("/v1/things/42", headers=headers or {})


async def test_a_request_continues_the_callers_trace_and_its_events_carry_it():
    emitted: list = []
    caller = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"

    answer = await call(app_emitting(emitted), {"traceparent": caller})

    event = emitted[0]
    assert event.traceparent.split("-")[1] == caller.split("-")[1]
    assert event.traceparent != caller
    assert answer.json()["logged"]["trace_id"] == caller.split("-")[1], "log lines carry the trace id"
    span = next(s for s in EXPORTED.get_finished_spans() if s.name.startswith("POST"))
    assert span.name == "POST /v1/things/{thing_id}", "named by the route template, never the raw path"
    assert span.attributes["http.response.status_code"] == 200


async def test_a_request_without_a_caller_starts_a_trace_and_a_broken_header_is_ignored():
    emitted: list = []
    await call(app_emitting(emitted), {"traceparent": "00-not-a-trace"})
    assert emitted[0].traceparent is not None
    assert parse_event(emitted[0].to_bytes()).traceparent == emitted[0].traceparent, "kept on the wire"


def test_a_consumer_handles_an_event_in_a_child_span_and_what_it_emits_stays_in_the_trace():
    with trace.get_tracer("test").start_as_current_span("desk"):
        upstream = FACTORY.create(requested(), correlation_id=None).event
    with consuming(upstream, catalog.HELP_REQUESTS):
        downstream = FACTORY.create(requested(), correlation_id=None).event
    assert downstream.traceparent.split("-")[1] == upstream.traceparent.split("-")[1]
    consumer = next(s for s in EXPORTED.get_finished_spans() if s.name == f"{catalog.HELP_REQUESTS} process")
    assert format(consumer.parent.span_id, "016x") == upstream.traceparent.split("-")[2]
    assert consumer.attributes["messaging.message.id"] == str(upstream.id)


def test_a_folded_batch_links_to_the_traces_of_its_events():
    events = []
    for _ in range(3):
        with trace.get_tracer("test").start_as_current_span("desk"):
            events.append(FACTORY.create(requested(), correlation_id=None).event)
    EXPORTED.clear()
    with folding(events, catalog.HELP_REQUESTS):
        pass
    (span,) = EXPORTED.get_finished_spans()
    assert {format(link.context.trace_id, "032x") for link in span.links} == {
        e.traceparent.split("-")[1] for e in events
    }


def test_an_event_with_a_malformed_traceparent_is_still_handled_in_a_trace_of_its_own():
    with trace.get_tracer("test").start_as_current_span("desk"):
        event = FACTORY.create(requested(), correlation_id=None).event
    broken = parse_event(event.to_bytes().replace(b'"traceparent":"00-', b'"traceparent":"zz-'))
    EXPORTED.clear()
    with consuming(broken, catalog.HELP_REQUESTS):
        assert trace_ids()["trace_id"] != event.traceparent.split("-")[1]
    (span,) = EXPORTED.get_finished_spans()
    assert span.parent is None
