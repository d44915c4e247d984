"""The broker's access rules as data (shared/access.py, from shared/events/topics.toml): each
service's principal may do exactly what its code does, and an organisation only read its own."""

import importlib
import re

import certifi
import pytest

from shared import access
from shared.events import catalog
from shared.kafka_security import ClientConfig, read_client_config
from shared.topics import ORGANISATION, definition

SERVICES = ["courses", "intake", "reporting", "routing", "subsidy"]


def subscribed_by(service: str, monkeypatch) -> tuple[set[str], list[str]]:
    """The topics and patterns the service's app subscribes to, from the app as built to run."""
    import shared.runtime

    brokers = []
    make_broker = shared.runtime.make_broker

    def recording(*args, **kwargs):
        brokers.append(make_broker(*args, **kwargs))
        return brokers[-1]

    monkeypatch.setattr(shared.runtime, "make_broker", recording)
    importlib.import_module(f"services.{service}.bootstrap").build_app()
    (broker,) = brokers
    topics = {t.name for s in broker.subscribers for t in s.topics}
    patterns = [s._pattern for s in broker.subscribers if s._pattern]
    return topics, patterns


def example(topic: str) -> str:
    return topic.replace(ORGANISATION, "welzijn-tiel")


def test_every_service_of_the_platform_has_a_principal():
    assert access.services() == SERVICES
    assert [access.service_principal(s) for s in SERVICES] == [f"ido-{s}" for s in SERVICES]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_write_exactly_the_topics_of_the_events_it_produces(service):
    produced = {
        model.topic_template.replace("{agency}", ORGANISATION)
        for model in catalog.EVENT_TYPES.values()
        if model.producer == service
    }
    assert set(definition()["services"][service]["produces"]) == produced


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_may_read_exactly_what_its_app_subscribes_to(service, monkeypatch):
    topics, patterns = subscribed_by(service, monkeypatch)
    spec = definition()["services"][service]
    declared = [example(t) for t in spec["consumes"] + spec["follows"]]

    def subscribed(topic: str) -> bool:
        return topic in topics or any(re.match(p, topic) for p in patterns)

    assert all(subscribed(t) for t in declared), "a declared topic nobody reads"
    undeclared = [t for t in catalog.all_topics(["uwv", "welzijn-tiel"]) if t not in declared and subscribed(t)]
    undeclared += [t for t in topics if t not in declared and catalog.organisation_of(t) is None]
    if ORGANISATION in " ".join(spec["consumes"]):  # the prefix grant: every organisation's topic
        undeclared = [t for t in undeclared if catalog.organisation_of(t) is None]
    assert not undeclared, f"read without an ACL: {undeclared}"


def test_the_routing_principal_reads_and_writes_every_organisations_topics_and_creates_a_partners():
    grants = {(g.operation, g.resource, g.name, g.prefixed) for g in access.service_grants("routing")}
    assert ("CREATE", "topic", "ido.referrals.", True) in grants
    assert ("WRITE", "topic", "ido.referrals.", True) in grants
    assert ("WRITE", "topic", catalog.ROUTING, False) in grants
    assert ("WRITE", "topic", catalog.HELP_REQUESTS, False) not in grants
    assert ("READ", "group", "ido-routing", True) in grants, "its groups: ido-routing, ido-routing-webhooks"


def test_a_service_writes_the_dead_letters_of_what_it_consumes_not_of_what_it_follows():
    grants = {(g.operation, g.name) for g in access.service_grants("intake")}
    assert ("WRITE", catalog.dlq_topic(catalog.ROUTING)) in grants
    assert ("READ", catalog.CREDENTIALS) in grants
    assert ("WRITE", catalog.dlq_topic(catalog.CREDENTIALS)) not in grants
    assert not [g for g in access.service_grants("reporting") if g.operation == "WRITE" and not g.name.endswith(".dlq")]


def test_an_organisation_may_only_read_its_own_topic_and_use_its_own_groups():
    principal = access.organisation_principal("welzijn-tiel")
    assert principal.startswith("org-welzijn-tiel-") and principal != access.organisation_principal("welzijn-tiel")
    assert {(g.operation, g.resource, g.name, g.prefixed) for g in access.organisation_grants(principal, "uwv")} == {
        ("READ", "topic", "ido.referrals.uwv.v1", False),
        ("READ", "group", "uwv.", True),
    }


def test_a_grant_is_the_acl_binding_it_describes():
    grant = access.Grant("ido-intake", "topic", "ido.help-requests.v1", False, "WRITE")
    assert access.Grant.of(grant.binding()) == grant
    assert str(grant) == "ido-intake may WRITE topic ido.help-requests.v1"


def test_a_client_configuration_written_is_read_back_the_same_over_the_same_transport(tmp_path):
    ca = certifi.where()  # any PEM bundle: the TLS context is made from it
    for name, admin in (
        ("plain", ClientConfig("SASL_PLAINTEXT", "SCRAM-SHA-512", "admin", "a")),
        ("tls", ClientConfig("SASL_SSL", cafile=ca)),
    ):
        path = tmp_path / f"{name}.properties"
        path.write_text(admin.properties("127.0.0.1:9092", "org-uwv-1", "s3cret"))
        read = read_client_config(path)
        assert (read.mechanism, read.username, read.password) == ("SCRAM-SHA-512", "org-uwv-1", "s3cret")
        assert (read.protocol, read.cafile) == (("SASL_SSL", ca) if admin.tls else ("SASL_PLAINTEXT", None))
        assert ("ssl_context" in read.aiokafka()) == admin.tls
        assert read.librdkafka("b:1")["sasl.username"] == "org-uwv-1"
        assert read.aiokafka()["sasl_plain_password"] == "s3cret"


def test_no_file_is_a_plaintext_client_without_authentication(tmp_path):
    config = read_client_config(tmp_path / "absent.properties")
    assert not config.authenticates and config.aiokafka() == {"security_protocol": "PLAINTEXT"}
    assert config.faststream() is None
