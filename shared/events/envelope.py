"""The CloudEvents 1.0 envelope (structured JSON mode, NL GOV profile) used on every topic.

Context attributes never hold personal data: `subject` is an entity id, `source` a system URN.
The Kafka record key is the subject, so one entity's events stay in order on one partition.
"""

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

CONTENT_TYPE = "application/cloudevents+json"
TYPE_PREFIX = "nl.ido."


class CloudEvent(BaseModel):
    # Unknown extension attributes from newer producers are kept, not refused.
    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"] = "1.0"
    id: uuid.UUID
    source: str = Field(pattern=r"^urn:nld:oin:[0-9]{20}:systeem:[a-z][a-z0-9-]*$")
    type: str = Field(pattern=r"^nl\.ido\.[A-Z][A-Za-z]+$")
    subject: str = Field(min_length=1, max_length=200)
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str
    data: dict[str, Any]
    # Extensions: where the full (possibly personal) details can be fetched with a credential,
    # the id that ties together everything caused by one request, and the W3C trace context of
    # the span that emitted the event (CloudEvents distributed tracing: shared.tracing).
    dataref: str | None = None
    correlationid: str | None = Field(default=None, max_length=100)
    # Not checked beyond its size: a malformed trace context only starts a new trace, it never
    # makes a valid event unprocessable.
    traceparent: str | None = Field(default=None, max_length=100)
    tracestate: str | None = Field(default=None, max_length=512)

    @property
    def name(self) -> str:
        """`nl.ido.HelpRequested` -> `HelpRequested`."""
        return self.type.removeprefix(TYPE_PREFIX)

    def to_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    @property
    def key(self) -> bytes:
        return self.subject.encode()


class InvalidEvent(ValueError):
    """A record that is not a valid CloudEvent of a known type: it goes to the DLQ at once."""


def parse_event(raw: bytes) -> CloudEvent:
    try:
        return CloudEvent.model_validate_json(raw)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) or "(root)" for e in exc.errors())
        raise InvalidEvent(f"not a valid CloudEvent: {fields}") from exc


def new_event(
    *,
    type_name: str,
    subject: str,
    data: dict[str, Any],
    source: str,
    dataschema: str,
    correlation_id: str | None = None,
    dataref: str | None = None,
    event_id: uuid.UUID | None = None,
    traceparent: str | None = None,
) -> CloudEvent:
    return CloudEvent(
        id=event_id or uuid.uuid4(),
        source=source,
        type=TYPE_PREFIX + type_name,
        subject=subject,
        time=datetime.now(UTC),
        dataschema=dataschema,
        data=data,
        dataref=dataref,
        correlationid=correlation_id,
        traceparent=traceparent,
    )


def source_urn(oin: str, service: str) -> str:
    return f"urn:nld:oin:{oin}:systeem:{service}"
