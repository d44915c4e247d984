"""Every receiving organisation has its own referral topic. The agencies' topics exist from the
start; a local partner added as data gets its topic the first time a referral goes to it, with the
configs shared/events/topics.toml defines."""

from shared.events.catalog import dlq_topic, referral_topic
from shared.kafka import apply_topology
from shared.settings import InfraSettings
from shared.topics import topic_spec


class KafkaReferralTopics:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self._known: set[str] = set()

    async def ensure(self, organisation: str) -> None:
        topic = referral_topic(organisation)
        if topic in self._known:
            return
        specs = [topic_spec(self.settings, topic), topic_spec(self.settings, dlq_topic(topic))]
        await apply_topology(self.settings.kafka_bootstrap_servers, specs)
        self._known.add(topic)
