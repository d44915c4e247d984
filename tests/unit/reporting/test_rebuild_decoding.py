"""What a rebuild takes from a topic: what the live consumer would apply, nothing it would skip
or dead-letter, each event id once per batch, folded into one change per row."""

from datetime import UTC, datetime
from types import SimpleNamespace

from services.reporting.domain.projections import Increment, QuestionRow
from services.reporting.entrypoints.rebuild import Decoder, RebuildRun
from shared.events import catalog
from shared.events.catalog import HelpRequested, QuestionFacts
from shared.outbox import EventFactory

FACTORY = EventFactory(service="intake", oin="00000001003214345000", base_url="http://intake")
TOPIC = "ido.help-requests.v1"


def visit(help_request_id: str) -> bytes:
    data = HelpRequested(
        help_request_id=help_request_id,
        library="venlo",
        channel="walk_in",
        questions=[QuestionFacts(index=0, category="digital_government", theme="digid")],
        registered_at=datetime(2026, 11, 2, tzinfo=UTC),
    )
    return FACTORY.create(data, correlation_id=None).event.to_bytes()


ERASED = FACTORY.create(
    catalog.PersonalDataErased(
        help_request_id="hr-9", library="venlo", reason="request", erased_at=datetime(2026, 11, 3, tzinfo=UTC)
    ),
    correlation_id=None,
).event.to_bytes()


def test_the_decoder_takes_what_the_live_consumer_applies_and_nothing_else():
    decode = Decoder({TOPIC: ("HelpRequested",)})
    event, data = decode(TOPIC, visit("hr-1"))
    assert event.name == "HelpRequested" and data.help_request_id == "hr-1"
    assert decode(TOPIC, b"{not json") is None, "dead-lettered by the live consumer"
    assert decode(TOPIC, ERASED) is None, "another type on the topic"
    assert decode("ido.other.v1", visit("hr-1")) is None, "not subscribed there"
    broken = visit("hr-2").replace(b'"channel":"walk_in"', b'"channel":"pigeon"')
    assert decode(TOPIC, broken) is None, "data failing its schema is dead-lettered live"


async def test_a_batch_holds_each_event_once_folded_per_row():
    run = RebuildRun.__new__(RebuildRun)
    run.decode = Decoder({TOPIC: ("HelpRequested",)})
    first, second = visit("hr-1"), visit("hr-2")
    records = [SimpleNamespace(topic=TOPIC, value=v) for v in (first, second, first, ERASED, b"junk")]
    batch = await run._batch({"tp": records})
    assert batch.records == 5
    assert len(batch.ids) == len(set(batch.ids)) == 2, "a re-published record counts once"
    assert batch.values == [(TOPIC, first), (TOPIC, second)]
    assert [i.amount for i in batch.changes.of(Increment) if i.measure == "visits"] == [2]
    assert len(batch.changes.of(QuestionRow)) == 2
