"""The metrics' labels stay bounded: route templates, not paths; event types from the catalog,
not whatever a broken record claims."""

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from shared.consuming import _type_of
from shared.metrics import RequestMetrics, type_name


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
