"""What operators see of the running system: one trace from a library's request through routing
to the agency's topic and on through the agency's handover read and status report; and every
service's Prometheus figures moving with the traffic."""

import json
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.events import catalog
from tests.e2e.conftest import INSTANCES, credential, instance, url
from tests.e2e.test_referral_flow import HUURTOESLAG
from tests.kafkatools import TopicReader, eventually

pytestmark = pytest.mark.infra

BASES = {
    s: url(s, port)
    for s, port in [("intake", 8001), ("routing", 8002), ("courses", 8003), ("subsidy", 8004), ("reporting", 8005)]
}
AGENCY_TOPIC = catalog.referral_topic("belastingdienst")


def trace_id(event_or_header: str) -> str:
    return event_or_header.split("-")[1]


async def test_one_trace_runs_from_the_library_through_routing_to_the_agency_and_back(
    infra, system, intake, library_token
):
    referrals = await TopicReader(infra.kafka_bootstrap_servers, AGENCY_TOPIC).start(from_end=True)
    help_requests = await TopicReader(infra.kafka_bootstrap_servers, catalog.HELP_REQUESTS).start(from_end=True)
    changes = await TopicReader(infra.kafka_bootstrap_servers, catalog.ROUTING).start(from_end=True)
    trace = uuid.uuid4().hex
    desk_span = f"00-{trace}-{uuid.uuid4().hex[:16]}-01"  # the library's own system started the trace

    created = await intake.post(
        "/v1/help-requests",
        json=HUURTOESLAG,
        headers={"Authorization": f"Bearer {library_token}", "traceparent": desk_span},
    )
    assert created.status_code == 201, created.text
    visit = created.json()["id"]

    requested = await help_requests.until(lambda r: json.loads(r.value)["subject"] == visit)
    referred = await referrals.until(lambda r: json.loads(r.value)["data"]["help_request_id"] == visit)
    event = json.loads(referred[0].value)
    assert trace_id(json.loads(requested[0].value)["traceparent"]) == trace, "intake's event continues the request"
    assert trace_id(event["traceparent"]) == trace, "routing's ReferredToAgency continues intake's event"
    assert event["traceparent"] != desk_span, "each hop its own span"

    # The agency passes the event's traceparent on: its read and its report join the trace.
    agency = {"Authorization": f"Bearer {credential('--agency', 'belastingdienst')}"}
    hop = {**agency, "traceparent": event["traceparent"]}
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.get(event["dataref"], headers=hop)).status_code == 200
        reported = await client.post(
            f"{system['routing']}/v1/referrals/{event['subject']}/status", json={"status": "accepted"}, headers=hop
        )
        assert reported.status_code == 200, reported.text
    changed = await changes.until(
        lambda r: (
            json.loads(r.value)["type"] == "nl.ido.ReferralStatusChanged"
            and json.loads(r.value)["subject"] == event["subject"]
        )
    )
    assert trace_id(json.loads(changed[0].value)["traceparent"]) == trace
    for reader in (referrals, help_requests, changes):
        await reader.stop()


async def scrape(service: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of every instance of the service, summed over the instances."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    async with httpx.AsyncClient(timeout=10) as client:
        for k in range(INSTANCES):
            answer = await client.get(f"{instance(BASES[service], k)}/metrics")
            assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
            for family in text_string_to_metric_families(answer.text):
                for s in family.samples:
                    key = (s.name, tuple(sorted(s.labels.items())))
                    samples[key] = samples.get(key, 0.0) + s.value
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items())


async def test_every_service_serves_metrics_that_move_with_the_traffic(infra, system, intake, library_token):
    before = {s: await scrape(s) for s in BASES}
    visits = 5
    for _ in range(visits):
        created = await intake.post(
            "/v1/help-requests", json=HUURTOESLAG, headers={"Authorization": f"Bearer {library_token}"}
        )
        assert created.status_code == 201
    kb = {"Authorization": f"Bearer {credential('--kb')}"}
    async with httpx.AsyncClient(timeout=10) as client:
        for path in ("courses/v1/course-types", "subsidy/v1/schemes", "reporting/v1/labels"):
            service, rest = path.split("/", 1)
            assert (await client.get(f"{BASES[service]}/{rest}", headers=kb)).status_code == 200

    def consumed(service: str, samples: dict) -> float:
        return total(samples, "ido_events_consumed_total", outcome="handled")

    async def moved() -> dict | None:
        after = {s: await scrape(s) for s in BASES}
        waiting = [s for s in BASES if consumed(s, after[s]) <= consumed(s, before[s])]
        return None if waiting else after

    after = await eventually(moved, timeout=30)
    posts = "ido_http_request_duration_seconds_count"
    assert (
        total(after["intake"], posts, route="/v1/help-requests", method="POST", status="201")
        - total(before["intake"], posts, route="/v1/help-requests", method="POST", status="201")
        == visits
    )
    for service, route in [("courses", "/v1/course-types"), ("subsidy", "/v1/schemes"), ("reporting", "/v1/labels")]:
        assert total(after[service], posts, route=route, status="200") > total(
            before[service], posts, route=route, status="200"
        )
    produced = "ido_events_produced_total"
    assert (
        total(after["intake"], produced, type="HelpRequested")
        >= total(before["intake"], produced, type="HelpRequested") + visits
    )
    assert (
        total(after["routing"], produced, type="ReferredToAgency")
        >= total(before["routing"], produced, type="ReferredToAgency") + visits
    )
    assert total(after["routing"], "ido_events_consumed_total", type="HelpRequested") >= visits
    for service, figures in after.items():
        assert total(figures, "process_resident_memory_bytes") > 10e6, service
        assert total(figures, "process_cpu_seconds_total") > 0, service
        assert ("ido_outbox_pending_rows", ()) in figures and ("ido_outbox_oldest_age_seconds", ()) in figures, service
        assert total(figures, "ido_db_pool_connections_idle") + total(figures, "ido_db_pool_connections_in_use") > 0
        assert ("ido_db_pool_waiting_tasks", ()) in figures, service
        assert any(n == "ido_consumer_lag_messages" for n, _ in figures), f"{service}: lag per partition"
