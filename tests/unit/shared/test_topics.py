"""Topics as code (issue 11.3): every topic the event catalog names has its policy in
shared/events/topics.toml, and each specification says what the cluster must have."""

import pytest

from shared import reference
from shared.events import catalog
from shared.settings import InfraSettings
from shared.topics import TopicSpec, definition, platform_topics, policy, topic_spec

SETTINGS = InfraSettings(IDO_TOPIC_PARTITIONS=6, IDO_TOPIC_REPLICATION=3, IDO_TOPIC_MIN_INSYNC_REPLICAS=2)


def test_every_catalog_topic_has_a_policy_and_the_definition_names_no_other():
    names = catalog.all_topics(["uwv", "gemeente-breda"])
    specs = {s.name: s for s in platform_topics(SETTINGS, ["uwv", "gemeente-breda"])}
    assert set(specs) == set(names)
    templates = {t.replace("{organisation}", "uwv") for t in definition()["topics"]}
    assert templates == {n for n in catalog.all_topics(["uwv"]) if not n.endswith(".dlq")}


@pytest.mark.parametrize(
    "topic", [catalog.HELP_REQUESTS, catalog.ROUTING, catalog.COURSES, catalog.SUBSIDY, catalog.LIBRARIES]
)
def test_the_topics_read_models_are_rebuilt_from_keep_every_event(topic):
    configs = topic_spec(SETTINGS, topic).configs
    assert configs["retention.ms"] == "-1" and configs["retention.bytes"] == "-1"
    assert configs["cleanup.policy"] == "delete", "compaction would keep one event per subject"


def test_referral_topics_of_agencies_and_partners_keep_every_event_too():
    for organisation in [*reference.AGENCIES, "gemeente-breda"]:
        assert topic_spec(SETTINGS, catalog.referral_topic(organisation)).configs["retention.ms"] == "-1"


def test_credentials_are_compacted_and_dead_letters_kept_thirty_days():
    assert topic_spec(SETTINGS, catalog.CREDENTIALS).configs["cleanup.policy"] == "compact"
    dlq = topic_spec(SETTINGS, catalog.dlq_topic(catalog.ROUTING)).configs
    assert dlq["retention.ms"] == str(30 * 24 * 3600 * 1000) and dlq["cleanup.policy"] == "delete"


def test_partitions_replication_and_min_insync_replicas_come_from_the_settings():
    spec = topic_spec(SETTINGS, catalog.ROUTING)
    assert (spec.partitions, spec.replication, spec.configs["min.insync.replicas"]) == (6, 3, "2")


def test_an_unknown_topic_has_no_specification():
    with pytest.raises(KeyError, match=r"topics\.toml"):
        topic_spec(SETTINGS, "ido.unknown.v1")


def test_drift_names_every_difference_and_what_apply_keeps():
    spec = TopicSpec("t", 6, 3, {**policy("facts"), "min.insync.replicas": "2"})
    assert spec.drift(6, 3, {**policy("facts"), "min.insync.replicas": "2", "segment.ms": "1"}) == []
    lines = spec.drift(3, 1, {"cleanup.policy": "delete", "retention.ms": "604800000", "retention.bytes": "-1"})
    assert lines == [
        "t: retention.ms is '604800000', should be '-1'",
        "t: min.insync.replicas is None, should be '2'",
        "t: 3 partitions, defined 6 (kept: keys would move)",
        "t: replication 1, defined 3 (kept)",
    ]
