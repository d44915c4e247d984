"""Building events (no database)."""

from shared.events.catalog import HelpRequestRouted, QuestionDecision, ReferredToAgency
from shared.outbox import EventFactory

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
