"""The platform's topics as code: the event catalog names the topics, shared/events/topics.toml
gives each its retention policy; together they make the topic specifications, which are
compared with what the cluster has (drift)."""

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from shared.events.catalog import all_topics
from shared.settings import InfraSettings

DEFINITION = Path(__file__).parent / "events" / "topics.toml"
ORGANISATION = "{organisation}"


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    configs: dict[str, str] = field(default_factory=dict)

    def drift(self, partitions: int, replication: int, configs: dict[str, str]) -> list[str]:
        """How the cluster's topic differs from this specification, one line per difference."""
        lines = [
            f"{self.name}: {key} is {configs.get(key)!r}, should be {value!r}"
            for key, value in self.configs.items()
            if configs.get(key) != value
        ]
        if partitions != self.partitions:
            lines.append(f"{self.name}: {partitions} partitions, defined {self.partitions} (kept: keys would move)")
        if replication != self.replication:
            lines.append(f"{self.name}: replication {replication}, defined {self.replication} (kept)")
        return lines


@cache
def definition() -> dict[str, Any]:
    return tomllib.loads(DEFINITION.read_text(encoding="utf-8"))


def policy(name: str) -> dict[str, str]:
    """A retention policy's configs (its `why` is documentation)."""
    return {k: v for k, v in definition()["policies"][name].items() if k != "why"}


def platform_topics(settings: InfraSettings, organisations: list[str]) -> list[TopicSpec]:
    """Every topic of the platform (the event catalog's) for these receiving organisations, each
    with its DLQ."""
    return [topic_spec(settings, name) for name in all_topics(organisations)]


def topic_spec(settings: InfraSettings, name: str) -> TopicSpec:
    """The specification of one topic by its name (a referral topic by its template)."""
    configs = {"min.insync.replicas": str(settings.kafka_min_insync_replicas), **policy(_policy_of(name))}
    return TopicSpec(name, settings.kafka_topic_partitions, settings.kafka_replication_factor, configs)


def _policy_of(name: str) -> str:
    if name.endswith(".dlq"):
        return "dead-letters"
    topics = definition()["topics"]
    for template, spec in topics.items():
        prefix, _, suffix = template.partition(ORGANISATION)
        if template == name or (ORGANISATION in template and name.startswith(prefix) and name.endswith(suffix)):
            return str(spec["policy"])
    raise KeyError(f"topic {name!r} is not in {DEFINITION.name}")
