"""Building events and outbox documents (no database)."""

import json

from shared.events.catalog import HelpRequestRouted, QuestionDecision, ReferredToAgency
from shared.outbox import EventFactory, PendingEvent, outbox_update, with_outbox

OIN = "00000001234567890000"


def factory():
    return EventFactory(service="routing", oin=OIN, base_url="https://ido.example/")


def referral(n=1):
    return ReferredToAgency(
        referral_id=f"ref-{n}", help_request_id="hr-1", agency="duo", library="katwijk", theme="studie"
    )


def test_create_builds_the_event_from_the_data():
    pending = factory().create(referral(), correlation_id="corr-7", dataref="https://ido.example/v1/referrals/ref-1")
    e = pending.event
    assert pending.topic == "ido.referrals.duo.v1"
    assert e.source == f"urn:nld:oin:{OIN}:systeem:routing"
    assert e.type == "nl.ido.ReferredToAgency"
    assert e.dataschema == "https://ido.example/v1/schemas/ReferredToAgency.json"
    assert e.dataref == "https://ido.example/v1/referrals/ref-1"
    assert e.correlationid == "corr-7"
    assert e.subject == "ref-1"
    assert e.data["agency"] == "duo"


def test_create_serialises_data_as_json():
    routed = HelpRequestRouted(
        help_request_id="hr-1",
        library="katwijk",
        decisions=[QuestionDecision(question_index=0, outcome="helped_at_desk")],
    )
    e = factory().create(routed, correlation_id=None).event
    assert e.correlationid is None
    assert e.dataref is None
    assert e.data["decisions"][0] == {
        "question_index": 0,
        "outcome": "helped_at_desk",
        "organisation": None,
        "referral_id": None,
        "rejected_target": None,
        "category": None,
        "theme": None,
    }


def test_pending_event_document_stores_the_serialised_envelope():
    pending = factory().create(referral(), correlation_id="c")
    doc = pending.to_document()
    assert doc["id"] == str(pending.event.id)
    assert doc["topic"] == pending.topic
    assert json.loads(doc["value"])["subject"] == "ref-1"


def test_with_outbox_with_events():
    events = [factory().create(referral(1), correlation_id="c"), factory().create(referral(2), correlation_id="c")]
    doc = with_outbox({"_id": "hr-1", "library": "katwijk"}, events)
    assert doc["_id"] == "hr-1"
    assert doc["library"] == "katwijk"
    assert doc["outbox_pending"] == 2
    assert [entry["id"] for entry in doc["outbox"]] == [str(e.event.id) for e in events]


def test_with_outbox_without_events():
    original = {"_id": "hr-1"}
    doc = with_outbox(original, [])
    assert doc == {"_id": "hr-1", "outbox": [], "outbox_pending": 0}
    assert original == {"_id": "hr-1"}  # input not mutated


def test_outbox_update_shape():
    events: list[PendingEvent] = [factory().create(referral(), correlation_id="c")]
    update = outbox_update(events)
    assert update == {
        "$push": {"outbox": {"$each": [events[0].to_document()]}},
        "$inc": {"outbox_pending": 1},
    }
