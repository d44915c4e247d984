"""The CloudEvents envelope and the event catalog."""

import json
import re
import uuid

import pytest

from shared.events.catalog import EVENT_TYPES, ReferredToAgency, all_topics, dlq_topic, json_schemas
from shared.events.envelope import InvalidEvent, new_event, parse_event, source_urn

OIN = "00000001234567890000"
SOURCE_PATTERN = re.compile(r"^urn:nld:oin:\d{20}:systeem:[a-z][a-z0-9-]*$")


def event(**overrides):
    args = {
        "type_name": "HelpRequested",
        "subject": "hr-1",
        "data": {"help_request_id": "hr-1", "questions": [{"index": 0}]},
        "source": source_urn(OIN, "intake"),
        "dataschema": "https://ido.example/v1/schemas/HelpRequested.json",
        "correlation_id": "corr-1",
    }
    return new_event(**{**args, **overrides})


def test_new_event_is_a_valid_cloudevent():
    e = event()
    assert e.specversion == "1.0"
    assert e.type == "nl.ido.HelpRequested"
    assert e.name == "HelpRequested"
    assert SOURCE_PATTERN.match(e.source)
    assert e.source == f"urn:nld:oin:{OIN}:systeem:intake"
    assert isinstance(e.id, uuid.UUID)
    assert e.time.tzinfo is not None
    assert e.key == b"hr-1"


def test_new_event_ids_are_unique_unless_given():
    assert event().id != event().id
    fixed = uuid.uuid4()
    assert event(event_id=fixed).id == fixed


@pytest.mark.parametrize(
    "overrides",
    [
        {"source": "urn:nld:oin:123:systeem:intake"},
        {"source": source_urn(OIN, "Intake")},
        {"type_name": "helpRequested"},
    ],
)
def test_new_event_refuses_bad_source_or_type(overrides):
    with pytest.raises(ValueError):
        event(**overrides)


def test_round_trip():
    original = event(dataref="https://ido.example/v1/help-requests/hr-1")
    raw = original.to_bytes()
    assert json.loads(raw)["specversion"] == "1.0"
    parsed = parse_event(raw)
    assert parsed == original
    assert parsed.data == {"help_request_id": "hr-1", "questions": [{"index": 0}]}
    assert parsed.correlationid == "corr-1"


def test_to_bytes_leaves_out_absent_extensions():
    assert "dataref" not in json.loads(event().to_bytes())


def test_parse_event_refuses_non_json():
    with pytest.raises(InvalidEvent):
        parse_event(b"\xff this is not json")


def test_parse_event_refuses_missing_id():
    doc = json.loads(event().to_bytes())
    del doc["id"]
    with pytest.raises(InvalidEvent) as exc:
        parse_event(json.dumps(doc).encode())
    assert "id" in str(exc.value)


def test_parse_event_refuses_bad_type_without_echoing_values():
    doc = json.loads(event().to_bytes())
    doc["type"] = "com.evil.Secret123456782"
    doc["subject"] = ""  # also invalid
    with pytest.raises(InvalidEvent) as exc:
        parse_event(json.dumps(doc).encode())
    message = str(exc.value)
    assert "type" in message
    assert "subject" in message
    assert "com.evil" not in message
    assert "Secret123456782" not in message


def test_all_topics_have_dlq_siblings():
    topics = all_topics()
    assert "ido.referrals.belastingdienst.v1" in topics
    assert "ido.referrals.belastingdienst.v1.dlq" in topics
    regular = [t for t in topics if not t.endswith(".dlq")]
    assert regular
    assert all(dlq_topic(t) in topics for t in regular)
    assert len(topics) == 2 * len(regular)


def test_referred_to_agency_topic_and_subject():
    referral = ReferredToAgency(
        referral_id="ref-9", help_request_id="hr-1", agency="cjib", library="venlo", theme="verkeer"
    )
    assert referral.topic() == "ido.referrals.cjib.v1"
    assert referral.subject() == "ref-9"


def test_one_schema_per_event_type():
    schemas = json_schemas()
    assert set(schemas) == set(EVENT_TYPES)
    assert all(schema["type"] == "object" and schema["properties"] for schema in schemas.values())


def test_referral_schema_has_no_personal_data_fields():
    properties = json_schemas()["ReferredToAgency"]["properties"]
    assert "referral_id" in properties
    for prop in properties:
        # contact_preference (phone/email/do_not_contact) is a preference, not a contact detail
        assert prop != "contact"
        assert not any(word in prop for word in ("phone", "email", "name", "address"))
