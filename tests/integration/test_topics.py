"""Topics as code on the real broker (issue 11.3): apply creates topics with their configs,
converges a config changed by hand and reports it, reports what it keeps (partitions), and
`ido topics apply --check` tells an operator whether the cluster is as defined."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared import access
from shared.events import catalog
from shared.kafka import admin_client, apply_topology, client_config
from shared.topics import TopicSpec, policy
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra

IDO = Path(sys.executable).parent / "ido"


async def set_config(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    """Change a topic's configs by hand, and wait until the cluster describes the change."""
    admin = admin_client(bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])

        async def visible() -> bool:
            (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, None)])
            entries = response.to_object()["resources"][0]["config_entries"]
            return all({e["config_names"]: e["config_value"] for e in entries}.get(k) == v for k, v in configs.items())

        await eventually(visible)
    finally:
        await admin.close()


async def test_apply_creates_converges_and_reports_drift(infra, unique):
    bootstrap = infra.kafka_bootstrap_servers
    spec = TopicSpec(f"test.{unique}.facts.v1", 3, 1, {**policy("facts"), "min.insync.replicas": "1"})

    first = await apply_topology(bootstrap, [spec], compare=True)
    assert first.created == [spec.name] and first.drift == []
    again = await apply_topology(bootstrap, [spec], compare=True)
    assert (again.created, again.altered, again.drift) == ([], [], []), "as defined: nothing to do"

    await set_config(bootstrap, spec.name, {"retention.ms": "604800000"})  # an operator's hand
    checked = await apply_topology(bootstrap, [spec], compare=True, fix=False)
    assert f"{spec.name}: retention.ms is '604800000', should be '-1'" in checked.drift and checked.altered == []
    fixed = await apply_topology(bootstrap, [spec], compare=True)
    assert fixed.altered == [spec.name]
    assert (await apply_topology(bootstrap, [spec], compare=True)).drift == [], "converged"

    wider = TopicSpec(spec.name, 6, 1, spec.configs)
    kept = await apply_topology(bootstrap, [wider], compare=True)
    assert kept.drift == [f"{spec.name}: 3 partitions, defined 6 (kept: keys would move)"] and kept.altered == []


def ido(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(IDO), *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())


async def test_ido_topics_apply_and_check_on_the_platforms_topics(infra):
    applied = ido("topics", "apply")
    assert applied.returncode == 0, applied.stderr
    checked = ido("topics", "apply", "--check")
    assert checked.returncode == 0 and "topics as defined" in checked.stderr, checked.stderr

    dlq = catalog.dlq_topic(catalog.COURSES)
    await set_config(infra.kafka_bootstrap_servers, dlq, {"retention.ms": "1000", "cleanup.policy": "delete"})
    drifted = ido("topics", "apply", "--check")
    assert drifted.returncode == 1 and f"{dlq}: retention.ms is '1000', should be '2592000000'" in drifted.stderr
    assert ido("topics", "apply").returncode == 0
    assert ido("topics", "apply", "--check").returncode == 0, "apply set it back"


def test_ido_topics_apply_converges_the_services_acls_and_check_reports_drift(infra):
    if not client_config().authenticates:
        pytest.skip("a broker without authentication (testcontainers): no principals")
    broker = access.BrokerAccess(infra.kafka_bootstrap_servers, client_config())
    assert ido("topics", "apply").returncode == 0
    assert broker.grants_of("ido-courses") == access.service_grants("courses")

    lost = access.Grant("ido-courses", "topic", catalog.LIBRARIES, False, "READ")
    extra = access.Grant("ido-courses", "topic", catalog.SUBSIDY, False, "WRITE")
    broker.admin.delete_acls([lost.filter()])[lost.filter()].result()
    broker.admin.create_acls([extra.binding()])[extra.binding()].result()
    drifted = ido("topics", "apply", "--check")
    assert drifted.returncode == 1
    assert f"missing: {lost}" in drifted.stderr and f"undefined: {extra}" in drifted.stderr, drifted.stderr
    assert ido("topics", "apply").returncode == 0
    assert broker.grants_of("ido-courses") == access.service_grants("courses"), "apply set them back"
    assert ido("topics", "apply", "--check").returncode == 0
