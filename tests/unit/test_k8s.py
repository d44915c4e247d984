"""deploy/k8s: the generated manifests are what the platform's definitions make (so a new topic,
grant or service cannot be forgotten there), and both overlays build to what production relies
on. The core kinds are validated against the Kubernetes schemas by deploy/k8s/validate.sh; the
operators' kinds (Strimzi, CloudNativePG, KEDA) have no schemas offline, so their fields that
the platform relies on are checked here."""

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from types import ModuleType
from typing import Any

import pytest
import yaml

from shared import access, reference
from shared.events.catalog import all_topics
from shared.settings import REPO_ROOT, SERVICES

K8S = REPO_ROOT / "deploy" / "k8s"
Resource = dict[str, Any]


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("k8s_generate", K8S / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _generator()


def kustomize() -> str:
    """The kustomize binary (deploy/k8s/validate.sh installs it into .local/bin). CI must have
    it: there a missing kustomize fails the test instead of skipping it."""
    found = REPO_ROOT / ".local" / "bin" / "kustomize"
    path = str(found) if found.is_file() else shutil.which("kustomize")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("kustomize is missing in CI: deploy/k8s/validate.sh installs it")
        pytest.skip("no kustomize (deploy/k8s/validate.sh installs it into .local/bin)")
    return path


@cache
def _built(overlay: str, binary: str) -> list[Resource]:
    out = subprocess.run(
        [binary, "build", str(K8S / "overlays" / overlay)], check=True, capture_output=True, text=True
    ).stdout
    return [r for r in yaml.safe_load_all(out) if r]


def build(overlay: str) -> list[Resource]:
    return _built(overlay, kustomize())


def of_kind(resources: list[Resource], kind: str, api: str) -> list[Resource]:
    found = [r for r in resources if r["kind"] == kind]
    assert found, f"no {kind}"
    assert {r["apiVersion"] for r in found} == {api}, kind
    return found


def named(resources: list[Resource], kind: str) -> dict[str, Resource]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


# --- generated from the definitions --------------------------------------------------------------


def test_the_committed_generated_manifests_are_what_the_definitions_make():
    for relative, content in generate.generated().items():
        path = K8S / "base" / relative
        assert path.is_file(), f"{relative} is missing: run .venv/bin/python deploy/k8s/generate.py"
        assert path.read_text() == content, f"{relative} is stale: run .venv/bin/python deploy/k8s/generate.py"


def test_every_topic_and_dlq_of_every_agency_is_a_kafka_topic():
    topics = {t["spec"]["topicName"] for t in generate.kafka_topics()}
    assert topics == set(all_topics(sorted(reference.AGENCIES)))
    assert "ido.referrals.uwv.v1.dlq" in topics


def test_each_service_user_has_exactly_its_grants():
    users = {u["metadata"]["name"]: u for u in generate.kafka_users()}
    assert set(users) == {access.service_principal(s) for s in access.services()}
    for service in access.services():
        acls = users[access.service_principal(service)]["spec"]["authorization"]["acls"]
        granted = {
            (a["resource"]["type"], a["resource"]["name"], a["resource"]["patternType"] == "prefix", op.upper())
            for a in acls
            for op in a["operations"]
        }
        assert granted == {(g.resource, g.name, g.prefixed, g.operation) for g in access.service_grants(service)}


# --- both overlays --------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_strimzi_resources_have_what_the_platform_relies_on(overlay: str):
    resources = build(overlay)
    (kafka,) = of_kind(resources, "Kafka", "kafka.strimzi.io/v1beta2")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["metadata"]["annotations"]["strimzi.io/node-pools"] == "enabled"
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["tls"] is True and listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False
    assert {"topicOperator", "userOperator"} <= set(kafka["spec"]["entityOperator"])
    for pool in of_kind(resources, "KafkaNodePool", "kafka.strimzi.io/v1beta2"):
        assert pool["metadata"]["labels"]["strimzi.io/cluster"] == "ido"
        assert set(pool["spec"]["roles"]) == {"controller", "broker"} and pool["spec"]["storage"]["type"] == "jbod"
    for topic in of_kind(resources, "KafkaTopic", "kafka.strimzi.io/v1beta2"):
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == "ido"
        assert {"topicName", "partitions", "replicas", "config"} <= set(topic["spec"])
    for user in of_kind(resources, "KafkaUser", "kafka.strimzi.io/v1beta2"):
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        if user["metadata"]["name"] != "ido-admin":
            assert user["spec"]["authorization"]["type"] == "simple" and user["spec"]["authorization"]["acls"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_service_has_its_own_database(overlay: str):
    clusters = named(of_kind(build(overlay), "Cluster", "postgresql.cnpg.io/v1"), "Cluster")
    for service in SERVICES:
        initdb = clusters[f"ido-{service}-db"]["spec"]["bootstrap"]["initdb"]
        assert initdb == {"database": f"ido_{service}", "owner": f"ido_{service}"}
        assert clusters[f"ido-{service}-db"]["spec"]["storage"]["size"]


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_service_scales_on_cpu_and_its_consumer_groups_lag(overlay: str):
    resources = build(overlay)
    scaled = named(of_kind(resources, "ScaledObject", "keda.sh/v1alpha1"), "ScaledObject")
    auths = named(of_kind(resources, "TriggerAuthentication", "keda.sh/v1alpha1"), "TriggerAuthentication")
    for service in SERVICES:
        spec = scaled[service]["spec"]
        assert spec["scaleTargetRef"]["name"] == service
        kinds = [t["type"] for t in spec["triggers"]]
        assert kinds.count("cpu") == 1
        groups = {t["metadata"]["consumerGroup"] for t in spec["triggers"] if t["type"] == "kafka"}
        assert f"ido-{service}" in groups
        for trigger in spec["triggers"]:
            if trigger["type"] == "kafka":
                assert trigger["authenticationRef"]["name"] in auths
                assert trigger["metadata"]["sasl"] == "scram_sha512" and trigger["metadata"]["tls"] == "enable"
    assert {t["metadata"]["consumerGroup"] for t in scaled["routing"]["spec"]["triggers"] if t["type"] == "kafka"} == {
        "ido-routing",
        "ido-routing-webhooks",
    }


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_every_deployment_is_probed_limited_and_locked_down(overlay: str):
    deployments = named(build(overlay), "Deployment")
    assert set(deployments) == set(SERVICES)
    for name, deployment in deployments.items():
        assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
        assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["terminationGracePeriodSeconds"] > generate.PRE_STOP_SECONDS + generate.SHUTDOWN_SECONDS
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in pod["volumes"])
        for container in pod["containers"] + pod["initContainers"]:
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True and security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["limits"])
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        (container,) = pod["containers"]
        assert container["command"] == ["python", "-m", f"services.{name}"]
        assert container["image"].startswith("ido-platform:")
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
        assert {"/tmp", "/var/lib/ido/credentials"} <= {m["mountPath"] for m in container["volumeMounts"]}


def _egress_to(policy: Resource, match: Callable[[Resource], bool]) -> bool:
    return any(match(peer) for rule in policy["spec"]["egress"] for peer in rule["to"])


def _pods(peer: Resource) -> dict[str, str]:
    return dict(peer.get("podSelector", {}).get("matchLabels", {}))


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_each_service_reaches_only_kafka_dns_its_database_and_whom_it_calls(overlay: str):
    policies = named(of_kind(build(overlay), "NetworkPolicy", "networking.k8s.io/v1"), "NetworkPolicy")
    for service in SERVICES:
        policy = policies[service]
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
        assert _egress_to(policy, lambda p: _pods(p).get("k8s-app") == "kube-dns")
        assert _egress_to(policy, lambda p: _pods(p).get("strimzi.io/kind") == "Kafka")
        databases = {
            v for rule in policy["spec"]["egress"] for p in rule["to"] if (v := _pods(p).get("cnpg.io/cluster"))
        }
        assert databases == {f"ido-{service}-db"}
        callees = {
            v for rule in policy["spec"]["egress"] for p in rule["to"] if (v := _pods(p).get("app.kubernetes.io/name"))
        }
        assert callees == ({"intake"} if service == "routing" else set())


def test_prod_keeps_two_of_everything_and_two_insync_replicas():
    resources = build("prod")
    assert all(d["spec"]["replicas"] >= 2 for d in named(resources, "Deployment").values())
    assert all(s["spec"]["minReplicaCount"] >= 2 for s in named(resources, "ScaledObject").values())
    assert all(p["spec"] == {**p["spec"], "minAvailable": 1} for p in named(resources, "PodDisruptionBudget").values())
    assert all(c["spec"]["instances"] == 3 for c in named(resources, "Cluster").values())
    (pool,) = named(resources, "KafkaNodePool").values()
    assert pool["spec"]["replicas"] == 3
    config = named(resources, "Kafka")["ido"]["spec"]["kafka"]["config"]
    assert config["min.insync.replicas"] == 2 and config["default.replication.factor"] == 3
    for topic in named(resources, "KafkaTopic").values():
        assert topic["spec"]["replicas"] == 3 and topic["spec"]["config"]["min.insync.replicas"] == "2"
    topics = named(resources, "ConfigMap")["ido-kafka-topics"]["data"]
    assert topics["IDO_TOPIC_REPLICATION"] == "3" and topics["IDO_TOPIC_MIN_INSYNC_REPLICAS"] == "2"


def test_dev_is_one_of_everything():
    resources = build("dev")
    assert all(d["spec"]["replicas"] == 1 for d in named(resources, "Deployment").values())
    (pool,) = named(resources, "KafkaNodePool").values()
    assert pool["spec"]["replicas"] == 1
    assert all(t["spec"]["replicas"] == 1 for t in named(resources, "KafkaTopic").values())


def test_everything_lands_in_the_ido_namespace():
    for resource in build("prod"):
        if resource["kind"] != "Namespace":
            assert resource["metadata"]["namespace"] == "ido", resource["metadata"]["name"]
