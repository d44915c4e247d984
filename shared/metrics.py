"""Prometheus metrics, the same in every service, served at `/metrics`: HTTP request durations by
route template, events consumed, produced, retried and dead-lettered by type, consumer lag per
partition, the outbox backlog, the database pool, and (the client library's default collectors)
the process's CPU and memory. Labels are bounded: route templates, topics, event type names,
never ids or anything a caller typed."""

import time
from collections.abc import Iterator
from typing import Any

from aiokafka import TopicPartition
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HTTP_DURATION = Histogram(
    "ido_http_request_duration_seconds",
    "HTTP requests by method, route template and status",
    ["method", "route", "status"],
)
EVENTS_CONSUMED = Counter(
    "ido_events_consumed_total",
    "Events a consumer took in, by topic, type and outcome (handled, or duplicate: applied before)",
    ["topic", "type", "outcome"],
)
EVENTS_PRODUCED = Counter(
    "ido_events_produced_total", "Events the outbox relay published and the broker acknowledged", ["topic", "type"]
)
EVENTS_RETRIED = Counter(
    "ido_events_retried_total",
    "Attempts to handle an event that failed and were tried again; reason: dependency (the record "
    "is held until the database or broker is back) or error (retried a few times, then dead-lettered)",
    ["type", "reason"],
)
EVENTS_DEAD_LETTERED = Counter(
    "ido_events_dead_lettered_total", "Records parked on <topic>.dlq, by original topic and type", ["topic", "type"]
)
OUTBOX_PENDING = Gauge("ido_outbox_pending_rows", "Events committed to the outbox and not yet published")
OUTBOX_OLDEST_AGE = Gauge("ido_outbox_oldest_age_seconds", "Age of the oldest event waiting in the outbox")
DB_POOL_IN_USE = Gauge("ido_db_pool_connections_in_use", "Database connections lent out of the pool")
DB_POOL_IDLE = Gauge("ido_db_pool_connections_idle", "Open database connections waiting in the pool")
DB_POOL_WAITING = Gauge("ido_db_pool_waiting_tasks", "Requests and handlers waiting for a database connection")


def type_name(event_type: str | None) -> str:
    """`nl.ido.HelpRequested` -> `HelpRequested`; a record that was no event -> `unknown`."""
    return (event_type or "unknown").rsplit(".", 1)[-1][:80]


class ConsumerLag(Collector):
    """`ido_consumer_lag_messages{topic,partition}`: for each partition assigned to this
    instance now, the records on the broker after the last one it handled (read at scrape time,
    so a partition that moved to another instance in a rebalance drops out here)."""

    def __init__(self) -> None:
        self._consumers: dict[int, tuple[Any, dict[TopicPartition, int]]] = {}

    def handled(self, consumer: Any, offsets: dict[TopicPartition, int]) -> None:
        """After a batch: the next offset of each of its partitions."""
        _, handled = self._consumers.setdefault(id(consumer), (consumer, {}))
        for tp, offset in offsets.items():
            handled[tp] = max(handled.get(tp, 0), offset)

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "ido_consumer_lag_messages",
            "Records on a partition after the last one this instance handled (the broker's high watermark)",
            labels=["topic", "partition"],
        )

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        lag = self._family()
        for consumer, handled in list(self._consumers.values()):
            for tp in consumer.assignment():
                end = consumer.highwater(tp)
                if end is not None and tp in handled:
                    lag.add_metric([tp.topic, str(tp.partition)], max(0, end - handled[tp]))
        yield lag


CONSUMER_LAG = ConsumerLag()
REGISTRY.register(CONSUMER_LAG)


class ResponseStatus:
    """An ASGI `send` that notes the response's status (500 while none started: a crash)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


def route_template(scope: Scope) -> str | None:
    """The matched route's template (`/v1/referrals/{referral_id}`), never the raw path (which
    may carry ids); known once routing ran."""
    return getattr(scope.get("route"), "path", None)


class RequestMetrics:
    """ASGI middleware, outermost: times every request and labels it with its route template
    (`/v1/referrals/{referral_id}`), known only once routing ran; unmatched paths share one label."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, response = time.perf_counter(), ResponseStatus(send)
        try:
            await self.app(scope, receive, response.send)
        finally:
            route = route_template(scope) or "unmatched"
            HTTP_DURATION.labels(scope["method"], route, str(response.status)).observe(time.perf_counter() - started)


def metrics_router() -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
