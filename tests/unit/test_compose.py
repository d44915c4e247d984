"""The compose file keeps the broker's promises without a Docker engine to run it here: every
client listener authenticates over TLS, nothing is allowed that no ACL allows, and each service
talks to Kafka as its own principal (made by `ido topics apply` in the kafka-setup step)."""

import re

import yaml

from shared import access
from shared.settings import REPO_ROOT

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
BROKER = (REPO_ROOT / "deploy" / "compose" / "kafka.sh").read_text()


def setting(name: str) -> str:
    return re.search(rf"^{re.escape(name)}=(.*)$", BROKER, re.MULTILINE).group(1)  # type: ignore[union-attr]


def test_every_client_listener_is_sasl_over_tls_and_the_controller_is_not_published():
    protocols = dict(pair.split(":") for pair in setting("listener.security.protocol.map").split(","))
    listeners = [entry.split("://")[0] for entry in setting("listeners").split(",")]
    assert {protocols[name] for name in listeners if name != "CONTROLLER"} == {"SASL_SSL"}
    assert setting("controller.listener.names") == "CONTROLLER"
    published = [p.split(":")[-1] for p in COMPOSE["services"]["kafka"]["ports"]]
    assert published == ["9092"] and "EXTERNAL://:9092" in setting("listeners")
    assert setting("sasl.enabled.mechanisms") == "SCRAM-SHA-512"


def test_nothing_is_allowed_that_no_acl_allows():
    assert setting("authorizer.class.name") == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert setting("allow.everyone.if.no.acl.found") == "false"
    assert setting("super.users") == "User:admin;User:controller"


def test_each_service_runs_as_its_own_principal_after_the_acls_are_made():
    for service in access.services():
        spec = COMPOSE["services"][service]
        assert spec["environment"]["KAFKA_CLIENT_CONFIG"].endswith(f"/{access.service_principal(service)}.properties")
        assert spec["depends_on"]["kafka-setup"]["condition"] == "service_completed_successfully"
    setup = COMPOSE["services"]["kafka-setup"]
    assert "ido topics apply" in "".join(setup["command"])
    assert setup["environment"]["KAFKA_CLIENT_CONFIG"].endswith("/admin.properties")
