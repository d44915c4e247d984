"""The metrics' labels stay bounded: route templates, not paths; event types from the catalog,
not whatever a broken record claims."""

import httpx
from aiokafka import TopicPartition
from fastapi import FastAPI
from prometheus_client import REGISTRY

from shared.consuming import _type_of
from shared.metrics import ConsumerLag, RequestMetrics, type_name


def requests_counted(**labels: str) -> float:
    return REGISTRY.get_sample_value("ido_http_request_duration_seconds_count", labels) or 0.0


async def test_requests_are_timed_by_route_template_and_status():
    app = FastAPI()

    @app.get("/v1/referrals/{referral_id}")
    async def referral(referral_id: str) -> dict:
        return {}

    app.add_middleware(RequestMetrics)
    template = {"method": "GET", "route": "/v1/referrals/{referral_id}", "status": "200"}
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    before, before_unmatched = requests_counted(**template), requests_counted(**unmatched)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for n in range(3):
            await client.get(f"/v1/referrals/{n}")
        await client.get("/someone/probing/9999")

    assert requests_counted(**template) == before + 3
    assert requests_counted(**unmatched) == before_unmatched + 1


def test_a_dead_lettered_record_is_labelled_by_a_known_type_or_unknown():
    assert type_name(_type_of(b'{"type": "nl.ido.HelpRequested"}')) == "HelpRequested"
    assert type_name(_type_of(b'{"type": "nl.ido.Anything' + b"x" * 500 + b'"}')) == "unknown"
    assert type_name(_type_of(b"\xff not json")) == "unknown"
    assert type_name(_type_of(b"[1, 2]")) == "unknown"


class FakeConsumer:
    def __init__(self, assigned: dict[tuple[str, int], int]) -> None:
        self.ends = {TopicPartition(t, p): end for (t, p), end in assigned.items()}

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends.get(tp)


def test_lag_is_read_per_assigned_partition_and_a_revoked_one_drops_out():
    lag = ConsumerLag()
    consumer = FakeConsumer({("t", 0): 10, ("t", 1): 5})
    lag.handled(consumer, {TopicPartition("t", 0): 4, TopicPartition("t", 1): 5})
    assert {tuple(s.labels.values()): s.value for s in next(lag.collect()).samples} == {("t", "0"): 6, ("t", "1"): 0}
    del consumer.ends[TopicPartition("t", 0)]  # a rebalance gave partition 0 to another instance
    assert {tuple(s.labels.values()): s.value for s in next(lag.collect()).samples} == {("t", "1"): 0}
