"""Every event type on the platform: its data model, the topic it travels on, who produces it.

One registry, so a reader finds for any event type who produces and who consumes it (each
service's README names its subscriptions) and so schemas and topics are generated, not typed.
Data models ignore unknown fields when read: producers may add fields, never remove or rename.
"""

from datetime import datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared import reference

# Topics (one per stream of facts; `.dlq` siblings hold what could not be processed).
HELP_REQUESTS = "ido.help-requests.v1"
ROUTING = "ido.routing.v1"
COURSES = "ido.courses.v1"
SUBSIDY = "ido.subsidy.v1"
LIBRARIES = "ido.libraries.v1"


def referral_topic(agency: str) -> str:
    """One topic per receiving organisation, so broker ACLs can give each agency its own."""
    return f"ido.referrals.{agency}.v1"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics(agencies: list[str] | None = None) -> list[str]:
    agencies = agencies if agencies is not None else list(reference.AGENCIES)
    base = [HELP_REQUESTS, ROUTING, COURSES, SUBSIDY, LIBRARIES] + [referral_topic(a) for a in agencies]
    return [t for topic in base for t in (topic, dlq_topic(topic))]


class EventData(BaseModel):
    """Base of every event's `data`. Subclasses name their event type and topic."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_name: ClassVar[str]
    producer: ClassVar[str]

    def topic(self) -> str:
        raise NotImplementedError

    def subject(self) -> str:
        raise NotImplementedError


Category = Literal["digital_government", "library_services", "other"]
ContactPreference = Literal["phone", "email", "do_not_contact"]
RoutingOutcome = Literal["helped_at_desk", "course_advised", "informed", "referred"]
ReferralStatus = Literal[
    "sent",
    "accepted",
    "needs_client_action",
    "got_help",
    "could_not_contact",
    "not_eligible",
    "no_capacity",
    "no_longer_interested",
    "referred_elsewhere",
]


class QuestionFacts(BaseModel):
    """What routing and reporting need of a question: its classification, no free text."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    index: int = Field(ge=0)
    category: Category
    theme: str
    subtheme: str | None = None


class HelpRequested(EventData):
    event_name: ClassVar[str] = "HelpRequested"
    producer: ClassVar[str] = "intake"

    help_request_id: str
    library: str
    location: str | None = None
    channel: Literal["walk_in", "phone", "email", "appointment"]
    questions: list[QuestionFacts] = Field(min_length=1, max_length=10)
    help_given: list[str] = []
    referral_consent: bool = False
    contact_preference: ContactPreference | None = None
    duration_minutes: int | None = None
    registered_at: datetime

    def topic(self) -> str:
        return HELP_REQUESTS

    def subject(self) -> str:
        return self.help_request_id


class QuestionDecision(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    question_index: int = Field(ge=0)
    outcome: RoutingOutcome
    organisation: str | None = None
    referral_id: str | None = None


class HelpRequestRouted(EventData):
    """Routing's decision for every question of one help request."""

    event_name: ClassVar[str] = "HelpRequestRouted"
    producer: ClassVar[str] = "routing"

    help_request_id: str
    library: str
    decisions: list[QuestionDecision]

    def topic(self) -> str:
        return ROUTING

    def subject(self) -> str:
        return self.help_request_id


class ReferredToAgency(EventData):
    """A warm referral, published on the receiving organisation's own topic.

    No contact details: the agency reads those at the event's `dataref` with its credential.
    """

    event_name: ClassVar[str] = "ReferredToAgency"
    producer: ClassVar[str] = "routing"

    referral_id: str
    help_request_id: str
    agency: str
    library: str
    theme: str
    subtheme: str | None = None
    contact_preference: ContactPreference | None = None

    def topic(self) -> str:
        return referral_topic(self.agency)

    def subject(self) -> str:
        return self.referral_id


class ReferralStatusChanged(EventData):
    event_name: ClassVar[str] = "ReferralStatusChanged"
    producer: ClassVar[str] = "routing"

    referral_id: str
    help_request_id: str
    agency: str
    library: str
    status: ReferralStatus
    reason: str | None = None
    changed_at: datetime

    def topic(self) -> str:
        return ROUTING

    def subject(self) -> str:
        return self.referral_id


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_name: cls for cls in (HelpRequested, HelpRequestRouted, ReferredToAgency, ReferralStatusChanged)
}


class UnknownEventType(ValueError):
    pass


def data_model(event_name: str) -> type[EventData]:
    try:
        return EVENT_TYPES[event_name]
    except KeyError:
        raise UnknownEventType(f"unknown event type nl.ido.{event_name}") from None


def json_schemas() -> dict[str, dict]:
    """A JSON Schema per event type's `data`, generated from the models."""
    return {name: model.model_json_schema(mode="serialization") for name, model in EVENT_TYPES.items()}
