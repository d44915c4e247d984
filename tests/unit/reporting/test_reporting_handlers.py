"""The live projection on a fake unit of work: an event's changes go to every version the unit
of work names (the active one, a caught-up rebuild's), and to no other."""

from datetime import UTC, datetime

from services.reporting import handlers
from services.reporting.domain.projections import Changes, Increment, QuestionRow
from shared.events.catalog import HelpRequested, QuestionFacts
from shared.outbox import EventFactory

FACTORY = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
VISIT = HelpRequested(
    help_request_id="hr-1",
    library="venlo",
    channel="walk_in",
    questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
    registered_at=datetime(2026, 11, 2, tzinfo=UTC),
)


class FakeVersions:
    def __init__(self, targets: list[int]) -> None:
        self._targets = targets
        self.asked: list = []

    async def targets_of(self, event_ids, event_times) -> dict[int, list[int]]:
        self.asked.extend(event_ids)
        return {version: list(range(len(event_ids))) for version in self._targets}


class FakeReadModels:
    def __init__(self) -> None:
        self.applied: list[tuple[int, Changes]] = []

    async def apply(self, version: int, changes: Changes) -> None:
        self.applied.append((version, changes))


class FakeUnitOfWork:
    def __init__(self, targets: list[int]) -> None:
        self.versions = FakeVersions(targets)
        self.read_models = FakeReadModels()
        self.emitted: list = []
        self.emit = self.emitted.extend


async def test_an_event_is_applied_to_every_version_that_is_to_hold_it():
    event = FACTORY.create(VISIT, correlation_id=None).event
    uow = FakeUnitOfWork(targets=[1, 2])
    await handlers.on_event(event, VISIT, uow=uow)
    assert uow.versions.asked == [event.id]
    assert [version for version, _ in uow.read_models.applied] == [1, 2]
    changes = uow.read_models.applied[0][1]
    assert [r.help_request_id for r in changes.of(QuestionRow)] == ["hr-1"]
    assert sorted(i.measure for i in changes.of(Increment)) == ["questions", "visits"]
    assert uow.emitted == [], "reporting emits no events"


async def test_an_event_every_version_holds_already_changes_nothing():
    event = FACTORY.create(VISIT, correlation_id=None).event
    uow = FakeUnitOfWork(targets=[])
    await handlers.on_event(event, VISIT, uow=uow)
    assert uow.read_models.applied == []


def test_every_subscribed_event_type_has_a_projection_and_every_projection_a_subscription():
    from services.reporting.bootstrap import subscriptions
    from services.reporting.domain.projections import PROJECTIONS

    subscribed = {name for names in subscriptions().values() for name in names}
    assert subscribed == set(PROJECTIONS)


def test_the_live_consumer_reads_the_platform_topics_and_every_organisations_referrals():
    import re

    from services.reporting.bootstrap import live_subscriptions, subscriptions
    from shared.events import catalog

    pattern, by_topic = live_subscriptions()
    reads = re.compile(pattern).match
    assert all(reads(topic) for topic in subscriptions()), "every topic the projections need"
    partner = catalog.referral_topic("welzijn-tiel")
    assert reads(partner) and by_topic[partner] == ("ReferredToAgency",), "a partner's topic, made later"
    for other in (catalog.CREDENTIALS, catalog.dlq_topic(catalog.ROUTING), catalog.dlq_topic(partner), "ido.x.v1"):
        assert not reads(other), other
