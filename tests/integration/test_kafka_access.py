"""The authorization matrix on the real broker (issue 11.1): principals by topics by operations.

Receiving organisations get their Kafka credential the way an operator issues it (`ido keys
create --agency CODE --kafka FILE`) and lose it with `ido keys revoke`; services use the client
configurations `ido topics apply` wrote. Clients are confluent-kafka's (librdkafka), which report
an authorization failure as such, per record or request."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from shared import access
from shared.events import catalog
from shared.kafka import client_config
from shared.kafka_security import read_client_config

pytestmark = pytest.mark.infra

IDO = Path(sys.executable).parent / "ido"
ALLOWED = "allowed"


@pytest.fixture(scope="module", autouse=True)
def authenticating_broker(infra) -> None:
    if not client_config().authenticates:
        pytest.skip("a broker without authentication (testcontainers): nothing to authorize")


def issue(agency: str, path: Path) -> str:
    """`ido keys create --agency CODE --kafka FILE`; returns the credential id."""
    result = subprocess.run(
        [str(IDO), "keys", "create", "--agency", agency, "--kafka", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1, "stdout holds the API credential only"
    assert path.stat().st_mode & 0o077 == 0, "the client configuration is readable by its owner only"
    return re.search(r"credential (\S+) for agency", result.stderr).group(1)  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def clients(infra, tmp_path_factory) -> dict[str, Path]:
    """Client configurations by principal: two agencies (one later revoked) and the services."""
    directory = tmp_path_factory.mktemp("kafka-clients")
    found = {f"ido-{s}": infra.kafka_clients_dir / f"ido-{s}.properties" for s in access.services()}
    for agency in ("uwv", "cak"):
        found[agency] = directory / f"{agency}.properties"
        issue(agency, found[agency])
    return found


def config(infra, path: Path, bootstrap: str | None = None) -> dict:
    return client_config(path).librdkafka(bootstrap or infra.kafka_bootstrap_servers) | {"log_level": 0}


def read(infra, path: Path, topic: str, group: str, bootstrap: str | None = None) -> str:
    """Subscribe and poll: the first error's name, or `allowed` once partitions are assigned."""
    consumer = Consumer(config(infra, path, bootstrap) | {"group.id": group, "auto.offset.reset": "earliest"})
    errors: list[str] = []
    consumer.subscribe([topic], on_assign=lambda c, partitions: errors.append(ALLOWED) if partitions else None)
    deadline = time.monotonic() + 20
    try:
        while not errors and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            error = message.error() if message is not None else None
            if error is not None and error.code() != KafkaError._PARTITION_EOF:
                errors.append(error.name())
        return errors[0] if errors else "no answer"
    finally:
        consumer.close()


def write(infra, path: Path, topic: str) -> str:
    outcomes: list[str] = []
    producer = Producer(config(infra, path) | {"message.timeout.ms": 10_000})
    producer.produce(topic, b"not an event", on_delivery=lambda err, _: outcomes.append(err.name() if err else ALLOWED))
    producer.flush(15)
    return outcomes[0] if outcomes else "no answer"


def create(infra, path: Path, topic: str) -> str:
    admin = AdminClient(config(infra, path))
    future = admin.create_topics([NewTopic(topic, 1, 1)], request_timeout=15)[topic]
    try:
        future.result()
        return ALLOWED
    except Exception as exc:
        return exc.args[0].name()


def visible_topics(infra, path: Path) -> set[str]:
    consumer = Consumer(config(infra, path) | {"group.id": "x"})
    try:
        return set(consumer.list_topics(timeout=15).topics)
    finally:
        consumer.close()


UWV, CAK = catalog.referral_topic("uwv"), catalog.referral_topic("cak")
MATRIX = [
    # principal, operation, topic, consumer group, expected
    ("uwv", "read", UWV, "uwv.inbox", ALLOWED),
    ("uwv", "read", CAK, "uwv.inbox", "TOPIC_AUTHORIZATION_FAILED"),
    ("uwv", "read", catalog.ROUTING, "uwv.inbox", "TOPIC_AUTHORIZATION_FAILED"),
    ("uwv", "read", UWV, "cak.inbox", "GROUP_AUTHORIZATION_FAILED"),
    ("uwv", "read", UWV, "ido-routing", "GROUP_AUTHORIZATION_FAILED"),
    ("uwv", "write", UWV, None, "TOPIC_AUTHORIZATION_FAILED"),
    ("uwv", "write", catalog.ROUTING, None, "TOPIC_AUTHORIZATION_FAILED"),
    ("cak", "read", CAK, "cak.inbox", ALLOWED),
    ("cak", "read", UWV, "cak.inbox", "TOPIC_AUTHORIZATION_FAILED"),
    ("ido-intake", "write", catalog.ROUTING, None, "TOPIC_AUTHORIZATION_FAILED"),
    ("ido-intake", "read", catalog.COURSES, "ido-intake-test", "TOPIC_AUTHORIZATION_FAILED"),
    ("ido-intake", "read", catalog.ROUTING, "ido-routing", "GROUP_AUTHORIZATION_FAILED"),
    ("ido-courses", "read", catalog.HELP_REQUESTS, "ido-courses-test", "TOPIC_AUTHORIZATION_FAILED"),
    ("ido-reporting", "write", catalog.ROUTING, None, "TOPIC_AUTHORIZATION_FAILED"),
    ("ido-reporting", "read", UWV, "ido-reporting-test", ALLOWED),
    ("ido-subsidy", "write", catalog.CREDENTIALS, None, "TOPIC_AUTHORIZATION_FAILED"),
    ("ido-routing", "write", catalog.HELP_REQUESTS, None, "TOPIC_AUTHORIZATION_FAILED"),
    ("ido-routing", "read", catalog.HELP_REQUESTS, "ido-routing-test", ALLOWED),
]


@pytest.mark.parametrize(
    ("principal", "operation", "topic", "group", "expected"),
    MATRIX,
    ids=[f"{p}-{o}-{t}-{g}" for p, o, t, g, _ in MATRIX],
)
def test_the_authorization_matrix(infra, clients, principal, operation, topic, group, expected):
    path = clients[principal]
    outcome = read(infra, path, topic, group) if operation == "read" else write(infra, path, topic)
    assert outcome == expected


def test_an_agency_sees_no_other_topic_exists(infra, clients):
    assert visible_topics(infra, clients["uwv"]) <= {UWV}
    assert catalog.HELP_REQUESTS in visible_topics(infra, clients["ido-routing"])


def test_only_routing_may_create_a_partners_referral_topic(infra, clients, unique):
    topic = catalog.referral_topic(f"acl-{unique}")
    assert create(infra, clients["ido-intake"], topic) == "TOPIC_AUTHORIZATION_FAILED"
    assert create(infra, clients["uwv"], topic) == "TOPIC_AUTHORIZATION_FAILED"
    assert create(infra, clients["ido-routing"], f"ido.other-{unique}.v1") == "TOPIC_AUTHORIZATION_FAILED"
    assert create(infra, clients["ido-routing"], topic) == ALLOWED
    admin = AdminClient(config(infra, infra.kafka_client_config))
    admin.delete_topics([topic], request_timeout=15)[topic].result()


def test_a_revoked_agency_is_refused_and_its_principal_and_acls_are_gone(infra, clients, tmp_path):
    path = tmp_path / "uwv-2.properties"
    credential_id = issue("uwv", path)
    principal = re.search(r'username="([^"]+)"', path.read_text()).group(1)  # type: ignore[union-attr]
    assert read(infra, path, UWV, "uwv.inbox-2") == ALLOWED
    listed = subprocess.run([str(IDO), "keys", "list"], capture_output=True, text=True, check=True).stdout
    assert any(credential_id in line and line.endswith(principal) for line in listed.splitlines())
    revoked = subprocess.run([str(IDO), "keys", "revoke", credential_id], capture_output=True, text=True)
    assert revoked.returncode == 0 and principal in revoked.stderr, revoked.stderr
    broker = access.BrokerAccess(infra.kafka_bootstrap_servers, client_config())
    assert broker.grants_of(principal) == []
    errors: list[str] = []
    consumer = Consumer(config(infra, path) | {"group.id": "uwv.inbox-2", "error_cb": lambda e: errors.append(e.str())})
    consumer.subscribe([UWV])
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        consumer.poll(0.5)
    consumer.close()
    assert any("SASL authentication error" in e for e in errors), errors
    assert read(infra, clients["uwv"], UWV, "uwv.inbox") == ALLOWED, "the agency's other credential still works"


@pytest.fixture(scope="module")
def tls_admin(infra) -> Path:
    """The administrator over TLS (the local broker's SASL_SSL listener, as compose and
    production have it)."""
    path = infra.kafka_client_config.with_name("admin-tls.properties")
    if not path.is_file():
        pytest.skip("a broker without a TLS listener")
    return path


def test_over_tls_an_agency_reads_its_own_topic_only(infra, tls_admin, tmp_path):
    tls = {
        **os.environ,
        "KAFKA_CLIENT_CONFIG": str(tls_admin),
        "KAFKA_BOOTSTRAP_SERVERS": read_client_config(tls_admin).bootstrap_servers(),
    }
    path = tmp_path / "uwv-tls.properties"
    result = subprocess.run(
        [str(IDO), "keys", "create", "--agency", "uwv", "--kafka", str(path)], capture_output=True, text=True, env=tls
    )
    assert result.returncode == 0, result.stderr
    written = read_client_config(path)
    assert (written.protocol, written.cafile) == ("SASL_SSL", read_client_config(tls_admin).cafile)
    assert read(infra, path, UWV, "uwv.tls", bootstrap=written.bootstrap_servers()) == ALLOWED
    assert read(infra, path, CAK, "uwv.tls", bootstrap=written.bootstrap_servers()) == "TOPIC_AUTHORIZATION_FAILED"


def test_a_client_that_does_not_trust_the_brokers_certificate_gets_nothing(infra, tls_admin):
    config = read_client_config(tls_admin)
    untrusting = config.librdkafka(config.bootstrap_servers()) | {"log_level": 0}
    del untrusting["ssl.ca.location"]  # the system's CAs: the broker's private CA is not among them
    errors: list[str] = []
    consumer = Consumer(untrusting | {"group.id": "x", "error_cb": lambda e: errors.append(e.str())})
    consumer.subscribe([UWV])
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        assert consumer.poll(0.5) is None
    consumer.close()
    assert any("certificate verify failed" in e or "SSL handshake failed" in e for e in errors), errors
