"""Every receiving organisation has its own referral topic. The agencies' topics exist from the
start; a local partner added as data gets its topic the first time a referral goes to it."""

from shared.events.catalog import dlq_topic, referral_topic
from shared.kafka import apply_topics
from shared.settings import InfraSettings


class KafkaReferralTopics:
    def __init__(self, settings: InfraSettings) -> None:
        self.settings = settings
        self._known: set[str] = set()

    async def ensure(self, organisation: str) -> None:
        topic = referral_topic(organisation)
        if topic in self._known:
            return
        await apply_topics(
            self.settings.kafka_bootstrap_servers,
            [topic, dlq_topic(topic)],
            self.settings.kafka_topic_partitions,
            self.settings.kafka_replication_factor,
        )
        self._known.add(topic)
