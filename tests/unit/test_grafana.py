"""deploy/grafana/ido-platform.json: the dashboard asks Prometheus only for what the services
expose (the collectors of shared/metrics.py and the client library's process_* defaults), every
query goes to the data source the viewer picks (`${datasource}`, no data source uid of one
Grafana), and the panels an operator relies on are there."""

import json
import re
from collections.abc import Iterator
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from shared import metrics
from shared.settings import REPO_ROOT

DASHBOARD: dict[str, Any] = json.loads((REPO_ROOT / "deploy" / "grafana" / "ido-platform.json").read_text())
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The names a Prometheus scrape shows for a collector of each type.
SAMPLE_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}
# What PromQL itself names (functions, aggregations, keywords); anything else is a metric.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
    "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile", "clamp_min", "clamp_max",
    "abs", "absent", "vector", "scalar", "time", "label_replace", "label_join", "sort", "sort_desc",
    "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
}  # fmt: skip


def exposed_names() -> set[str]:
    """Every sample name shared/metrics.py's collectors can expose, and the process_* defaults."""
    names = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase | metrics.ConsumerLag):
            for family in collector.describe():
                names |= {family.name + suffix for suffix in SAMPLE_SUFFIXES[family.type]}
    process = {s.name for f in REGISTRY.collect() if f.name.startswith("process_") for s in f.samples}
    # The process collector reads /proc: elsewhere it exposes nothing, but Linux pods have these.
    return names | (process or {"process_cpu_seconds_total", "process_resident_memory_bytes"})


def panels() -> Iterator[dict[str, Any]]:
    for panel in DASHBOARD["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def queries() -> Iterator[tuple[str, str]]:
    for panel in panels():
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def metric_names(expr: str) -> set[str]:
    """The metric names in a PromQL expression: what is left once strings, label matchers,
    ranges, label lists (`by (…)`, `on (…)`, …), numbers and PromQL's own words are taken out."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    words = set(re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", re.sub(r"\b\d+(\.\d+)?(e[+-]?\d+)?\b", " ", expr)))
    return words - PROMQL_WORDS


def test_the_expression_parser_finds_metrics_and_nothing_else():
    expr = (
        'histogram_quantile(0.99, sum by (service, route, le) (rate(ido_x_bucket{service=~"$service",'
        'route!~"/a|b"}[$__rate_interval]))) / on (service) group_left max(process_y_total) > 1e3'
    )
    assert metric_names(expr) == {"ido_x_bucket", "process_y_total"}


def test_every_query_asks_only_for_metrics_the_services_expose():
    known = exposed_names()
    assert {"ido_http_request_duration_seconds_bucket", "ido_events_consumed_total", "ido_outbox_pending_rows"} <= known
    unknown = {(title, name) for title, expr in queries() for name in metric_names(expr) - known}
    assert not unknown, f"panels query metrics that shared/metrics.py does not define: {sorted(unknown)}"
    assert all(metric_names(expr) for _, expr in queries()), "a query without a metric"


def test_every_panel_and_query_uses_the_chosen_data_source():
    for panel in panels():
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        for target in panel.get("targets", []):
            assert target.get("datasource") == DATASOURCE, panel["title"]
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    service = variables["service"]
    assert service["datasource"] == DATASOURCE
    assert service["query"]["query"] == "label_values(ido_http_request_duration_seconds_count, service)"
    # No uid of one Grafana's data source anywhere: only the variable.
    uids = re.findall(r'"uid":\s*"([^"]*)"', json.dumps(DASHBOARD["panels"]))
    assert set(uids) == {"${datasource}"}


def test_every_query_is_limited_to_the_selected_services():
    for title, expr in queries():
        selectors = re.findall(r"\{([^}]*)\}", re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr))
        assert selectors, title
        assert all('service=~""' in s for s in selectors), f"{title}: {expr}"
        assert '"$service"' in expr, title


def test_panel_ids_are_unique_and_the_schema_is_version_39():
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    assert DASHBOARD["schemaVersion"] == 39
    assert "service" in DASHBOARD["description"] and "app.kubernetes.io/name" in DASHBOARD["description"]


def test_the_golden_signals_events_lag_and_outbox_are_shown():
    titles = {panel["title"] for panel in panels()}
    rows = {panel["title"] for panel in panels() if panel["type"] == "row"}
    assert {"Traffic", "Errors", "Latency", "Saturation", "Events", "Consumer lag", "Outbox"} <= rows
    assert {
        "Request rate by route",
        "Error ratio (5xx / all)",
        "Latency p50 by route",
        "Latency p95 by route",
        "Latency p99 by route",
        "CPU by pod",
        "Resident memory by pod",
        "DB pool in use / idle",
        "DB pool waiting",
        "Events consumed per second by type",
        "Events produced per second by type",
        "Events retried per second by reason",
        "Dead-lettered in range",
        "Dead-lettered per second by topic and type",
        "Consumer lag by topic",
        "Consumer lag by partition",
        "Outbox pending rows",
        "Outbox oldest age",
    } <= titles
    assert next(p for p in panels() if p["title"] == "Dead-lettered in range")["type"] == "stat"


def test_the_outbox_age_turns_red_at_a_minute():
    panel = next(p for p in panels() if p["title"] == "Outbox oldest age")
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert {"color": "red", "value": 60} in steps
    assert panel["fieldConfig"]["defaults"]["unit"] == "s"


def test_latency_quantiles_come_from_the_histogram_buckets():
    for q in ("50", "95", "99"):
        panel = next(p for p in panels() if p["title"] == f"Latency p{q} by route")
        expr = panel["targets"][0]["expr"]
        assert expr.startswith(f"histogram_quantile(0.{q},")
        assert "rate(ido_http_request_duration_seconds_bucket{" in expr and " le)" in expr
