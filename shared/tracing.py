"""OpenTelemetry traces across the bus. A trace starts at an HTTP request (or continues the
caller's W3C `traceparent` header), every event emitted meanwhile carries the current span as the
CloudEvents distributed-tracing extension (`traceparent`), and a consumer handles each event in a
span whose parent is that attribute: one trace runs from a library's POST through the outbox,
Kafka, routing and the agency's topic, and on through an agency's reads and reports that pass
the event's `traceparent` on as their header.

Spans are always made (ids must travel even when nobody collects them); exporting is the
operator's choice through the standard variables: OTEL_TRACES_EXPORTER (`none`, the default;
`console`; `otlp`, with OTEL_EXPORTER_OTLP_ENDPOINT and friends), OTEL_SERVICE_NAME,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER."""

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.metrics import ResponseStatus, route_template

TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
tracer = trace.get_tracer("ido")


def configure_tracing(service: str, exporter: SpanExporter | None = None) -> TracerProvider:
    """The process's tracer provider; `exporter` overrides OTEL_TRACES_EXPORTER (tests)."""
    provider = TracerProvider(
        resource=Resource.create({} if "OTEL_SERVICE_NAME" in os.environ else {"service.name": f"ido-{service}"})
    )
    chosen = exporter or _exporter_from_environment()
    if chosen is not None:
        provider.add_span_processor(BatchSpanProcessor(chosen))
    trace.set_tracer_provider(provider)
    return provider


def _exporter_from_environment() -> SpanExporter | None:
    name = os.environ.get("OTEL_TRACES_EXPORTER", "none").strip().lower()
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    if name != "none":
        raise ValueError(f"OTEL_TRACES_EXPORTER={name!r}: this platform knows none, console and otlp")
    return None


def current_traceparent() -> str | None:
    """The W3C traceparent of the span in progress, for an event emitted now."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def trace_ids() -> dict[str, str]:
    """The current trace and span id, for log lines (empty outside a span)."""
    span = trace.get_current_span().get_span_context()
    if not span.is_valid:
        return {}
    return {"trace_id": format(span.trace_id, "032x"), "span_id": format(span.span_id, "016x")}


def _parent(traceparent: str | None) -> context.Context:
    """The context a W3C traceparent names; an empty one (a new trace) for none or a malformed one."""
    return propagate.extract({"traceparent": traceparent} if traceparent and TRACEPARENT.match(traceparent) else {})


@contextmanager
def consuming(event: Any, topic: str) -> Iterator[None]:
    """Handle one event inside a span continuing the trace the event carries."""
    with tracer.start_as_current_span(
        f"{topic} process",
        context=_parent(getattr(event, "traceparent", None)),
        kind=SpanKind.CONSUMER,
        attributes=_event_attributes(event, topic),
    ):
        yield


@contextmanager
def folding(events: Sequence[Any], topic: str) -> Iterator[None]:
    """A batch folded in one transaction: its own span, linked to the traces of its events."""
    links = []
    for event in events[:64]:  # a bounded number of links: a batch may hold hundreds
        parent = trace.get_current_span(_parent(getattr(event, "traceparent", None))).get_span_context()
        if parent.is_valid:
            links.append(Link(parent))
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.batch.message_count": len(events),
    }
    with tracer.start_as_current_span(f"{topic} process", kind=SpanKind.CONSUMER, links=links, attributes=attributes):
        yield


def _event_attributes(event: Any, topic: str) -> dict[str, str]:
    # Ids and types only: never anything from the event's data.
    return {
        "messaging.system": "kafka",
        "messaging.destination.name": topic,
        "messaging.message.id": str(event.id),
        "cloudevents.event_type": event.type,
    }


class RequestTracing:
    """ASGI middleware: each HTTP request in a SERVER span, continuing a `traceparent` header.
    The span is named by the route template once routing ran, never by the raw path (which may
    carry ids)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", [])}
        parent = _parent(headers.get("traceparent"))
        with tracer.start_as_current_span(scope["method"], context=parent, kind=SpanKind.SERVER) as span:
            response = ResponseStatus(send)
            try:
                await self.app(scope, receive, response.send)
            finally:
                status = response.status
                if route := route_template(scope):
                    span.update_name(f"{scope['method']} {route}")
                    span.set_attribute("http.route", route)
                span.set_attribute("http.request.method", scope["method"])
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
