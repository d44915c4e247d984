"""Every event type on the platform: its data model, the topic it travels on, who produces it.

One registry, so a reader finds for any event type who produces and who consumes it (each
service's README names its subscriptions) and so schemas and topics are generated, not typed.
Data models ignore unknown fields when read: producers may add fields, never remove or rename.
"""

import re
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared import reference

# Topics (one per stream of facts; `.dlq` siblings hold what could not be processed).
HELP_REQUESTS = "ido.help-requests.v1"
ROUTING = "ido.routing.v1"
COURSES = "ido.courses.v1"
SUBSIDY = "ido.subsidy.v1"
LIBRARIES = "ido.libraries.v1"
# Credentials issued and revoked; compacted (key = credential id), read whole by every instance.
CREDENTIALS = "ido.credentials.v1"


def referral_topic(agency: str) -> str:
    """One topic per receiving organisation, so broker ACLs can give each agency its own."""
    return ReferredToAgency.topic_template.format(agency=agency)


def referral_topic_pattern() -> str:
    """A regular expression matching every organisation's referral topic (not their DLQs)."""
    prefix, _, suffix = referral_topic("\0").partition("\0")
    return f"{re.escape(prefix)}[^.]+{re.escape(suffix)}"


def organisation_of(topic: str) -> str | None:
    """The receiving organisation whose referral topic this is, if it is one."""
    if not re.fullmatch(referral_topic_pattern(), topic):
        return None
    prefix, _, suffix = referral_topic("\0").partition("\0")
    return topic.removeprefix(prefix).removesuffix(suffix)


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def all_topics(agencies: list[str] | None = None) -> list[str]:
    agencies = agencies if agencies is not None else list(reference.AGENCIES)
    base = [HELP_REQUESTS, ROUTING, COURSES, SUBSIDY, LIBRARIES, CREDENTIALS] + [referral_topic(a) for a in agencies]
    return [t for topic in base for t in (topic, dlq_topic(topic))]


class EventData(BaseModel):
    """Base of every event's `data`. Subclasses name their event type, producer, topic
    (topic_template, possibly with a {field} placeholder) and the field that is the subject."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_name: ClassVar[str]
    producer: ClassVar[str]
    topic_template: ClassVar[str]
    subject_field: ClassVar[str]
    summary: ClassVar[str] = ""

    def topic(self) -> str:
        return self.topic_template.format(**self.model_dump())

    def subject(self) -> str:
        return str(getattr(self, self.subject_field))


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
    # An organisation the library staff named for this question; routing validates it.
    target: str | None = None


class HelpRequested(EventData):
    event_name: ClassVar[str] = "HelpRequested"
    producer: ClassVar[str] = "intake"
    topic_template: ClassVar[str] = HELP_REQUESTS
    subject_field: ClassVar[str] = "help_request_id"
    summary: ClassVar[str] = "A library registered a visit to its IDO (classification only, no free text)."

    help_request_id: str
    library: str
    location: str | None = None
    # Of the named IDO location: lets routing prefer local partners in that municipality.
    municipality: str | None = None
    channel: Literal["walk_in", "phone", "email", "appointment"]
    questions: list[QuestionFacts] = Field(min_length=1, max_length=10)
    help_given: list[str] = []
    referral_consent: bool = False
    contact_preference: ContactPreference | None = None
    duration_minutes: int | None = None
    registered_at: datetime
    # Contact details (only with consent) and notes, sealed with the request's own data key
    # (shared.sealing); readable only through intake, and not at all once erased.
    sealed: str | None = None


class QuestionDecision(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    question_index: int = Field(ge=0)
    outcome: RoutingOutcome
    organisation: str | None = None
    referral_id: str | None = None
    # The organisation staff named but routing does not know; the question was routed by rules.
    rejected_target: str | None = None
    # The question's classification, so consumers (courses) need not look it up.
    category: Category | None = None
    theme: str | None = None


class PersonalDataErased(EventData):
    event_name: ClassVar[str] = "PersonalDataErased"
    producer: ClassVar[str] = "intake"
    topic_template: ClassVar[str] = HELP_REQUESTS
    subject_field: ClassVar[str] = "help_request_id"
    summary: ClassVar[str] = (
        "A help request's personal data was erased (on request, AVG art. 17, or at the end of its "
        "retention) and its data key destroyed: every service drops its copies."
    )

    help_request_id: str
    library: str
    reason: Literal["request", "retention"]
    erased_at: datetime


class HelpRequestRouted(EventData):
    event_name: ClassVar[str] = "HelpRequestRouted"
    producer: ClassVar[str] = "routing"
    topic_template: ClassVar[str] = ROUTING
    subject_field: ClassVar[str] = "help_request_id"
    summary: ClassVar[str] = "Routing decided, per question, where it goes."

    help_request_id: str
    library: str
    decisions: list[QuestionDecision]


class ReferredToAgency(EventData):
    event_name: ClassVar[str] = "ReferredToAgency"
    producer: ClassVar[str] = "routing"
    topic_template: ClassVar[str] = "ido.referrals.{agency}.v1"
    subject_field: ClassVar[str] = "referral_id"
    summary: ClassVar[str] = (
        "A warm referral on the receiving organisation's own topic. No contact details: the agency "
        "reads the handover at the event's dataref with its own credential."
    )

    referral_id: str
    help_request_id: str
    agency: str
    library: str
    theme: str
    subtheme: str | None = None
    contact_preference: ContactPreference | None = None


class _ReferralFacts(EventData):
    referral_id: str
    help_request_id: str
    question_index: int = Field(ge=0)
    agency: str
    library: str


class ReferralStatusChanged(_ReferralFacts):
    event_name: ClassVar[str] = "ReferralStatusChanged"
    producer: ClassVar[str] = "routing"
    topic_template: ClassVar[str] = ROUTING
    subject_field: ClassVar[str] = "referral_id"
    summary: ClassVar[str] = "The receiving organisation reported progress on a referral."

    status: ReferralStatus
    reason: str | None = None
    changed_at: datetime
    # Increases by one per change of this referral: consumers apply a change only if newer.
    sequence: int = Field(ge=1)


class ReferralOverdue(_ReferralFacts):
    event_name: ClassVar[str] = "ReferralOverdue"
    producer: ClassVar[str] = "routing"
    topic_template: ClassVar[str] = ROUTING
    subject_field: ClassVar[str] = "referral_id"
    summary: ClassVar[str] = "A referral passed its organisation's response time without a final status (once)."

    status: ReferralStatus
    due_at: datetime
    detected_at: datetime


class ReferralHandoverRead(_ReferralFacts):
    event_name: ClassVar[str] = "ReferralHandoverRead"
    producer: ClassVar[str] = "routing"
    topic_template: ClassVar[str] = ROUTING
    subject_field: ClassVar[str] = "referral_id"
    summary: ClassVar[str] = "The receiving organisation read a referral's handover (audit trail)."

    read_at: datetime
    credential_id: str


class _CourseFact(EventData):
    producer: ClassVar[str] = "courses"
    topic_template: ClassVar[str] = COURSES
    subject_field: ClassVar[str] = "run_id"  # a run's events stay in order

    run_id: str
    library: str
    course_type: str


class CourseRunScheduled(_CourseFact):
    event_name: ClassVar[str] = "CourseRunScheduled"
    summary: ClassVar[str] = "A library scheduled a course run at one of its IDO locations."

    location: str
    postcode: str
    capacity: int = Field(ge=1)
    first_session_at: datetime
    sessions: int = Field(ge=1)


class _EnrolmentFact(_CourseFact):
    enrolment_id: str  # never the participant's name or contact: those stay in courses
    position: int = Field(ge=1, description="arrival order in the run")
    at: datetime


class ParticipantEnrolled(_EnrolmentFact):
    event_name: ClassVar[str] = "ParticipantEnrolled"
    summary: ClassVar[str] = "A participant has a seat in a course run."


class ParticipantWaitlisted(_EnrolmentFact):
    event_name: ClassVar[str] = "ParticipantWaitlisted"
    summary: ClassVar[str] = "A course run was full: the participant is on its waitlist (first in, first out)."


class SeatOffered(_EnrolmentFact):
    event_name: ClassVar[str] = "SeatOffered"
    summary: ClassVar[str] = "A seat freed up and is offered to the first on the waitlist until `offered_until`."

    offered_until: datetime


class SeatOfferExpired(_EnrolmentFact):
    event_name: ClassVar[str] = "SeatOfferExpired"
    summary: ClassVar[str] = "A seat offer was not accepted in time; the next on the waitlist is offered it."


class EnrolmentCancelled(_EnrolmentFact):
    event_name: ClassVar[str] = "EnrolmentCancelled"
    summary: ClassVar[str] = "An enrolment (or a place on the waitlist) was cancelled."

    # cancelled by the library, the participant missed the first session, or the run was cancelled
    reason: Literal["cancelled", "no_show", "run_cancelled"] = "cancelled"


class CourseRunCancelled(_CourseFact):
    event_name: ClassVar[str] = "CourseRunCancelled"
    summary: ClassVar[str] = "A library cancelled a course run; its enrolments are cancelled with it."

    at: datetime


class CourseRunCapacityChanged(_CourseFact):
    event_name: ClassVar[str] = "CourseRunCapacityChanged"
    summary: ClassVar[str] = "A library raised or lowered a run's capacity (new seats are offered to the waitlist)."

    capacity: int = Field(ge=1)
    at: datetime


class AttendanceRecorded(_CourseFact):
    event_name: ClassVar[str] = "AttendanceRecorded"
    summary: ClassVar[str] = "Who attended one session of a run (enrolment ids only)."

    session: int = Field(ge=1)
    present: list[str]
    at: datetime


class CourseCompleted(_EnrolmentFact):
    event_name: ClassVar[str] = "CourseCompleted"
    summary: ClassVar[str] = "A participant met the course type's attendance rule."

    sessions_attended: int = Field(ge=1)


class StaffTrainingCompleted(_EnrolmentFact):
    event_name: ClassVar[str] = "StaffTrainingCompleted"
    summary: ClassVar[str] = "A library staff member completed a training (staff id is the library's own pseudonym)."

    staff_member: str


class LibraryReadinessChanged(EventData):
    event_name: ClassVar[str] = "LibraryReadinessChanged"
    producer: ClassVar[str] = "courses"
    topic_template: ClassVar[str] = COURSES
    subject_field: ClassVar[str] = "library"
    summary: ClassVar[str] = "The trainings a library's staff completed, per training: the library's readiness."

    library: str
    trained_staff: dict[str, int]  # training (course type) -> staff members who completed it
    at: datetime


class _SubsidyFact(EventData):
    producer: ClassVar[str] = "subsidy"
    topic_template: ClassVar[str] = SUBSIDY
    subject_field: ClassVar[str] = "application_id"

    application_id: str
    scheme: str
    library: str


class SubsidyApplied(_SubsidyFact):
    event_name: ClassVar[str] = "SubsidyApplied"
    summary: ClassVar[str] = "A library applied for the scheme; the amount its rules give (euro cents)."

    requested_cents: int = Field(ge=0)
    ido_opening_date: date
    applied_at: datetime


class SubsidyGranted(_SubsidyFact):
    event_name: ClassVar[str] = "SubsidyGranted"
    summary: ClassVar[str] = "KB staff granted (all or part of) an application; the amount is reserved on the budget."

    granted_cents: int = Field(gt=0)
    partial: bool
    reason: str
    decided_at: datetime


class SubsidyRejected(_SubsidyFact):
    event_name: ClassVar[str] = "SubsidyRejected"
    summary: ClassVar[str] = "KB staff rejected an application, or it did not fit the remaining budget."

    reason: str
    decided_at: datetime


class SubsidySchemePublished(EventData):
    event_name: ClassVar[str] = "SubsidySchemePublished"
    producer: ClassVar[str] = "subsidy"
    topic_template: ClassVar[str] = SUBSIDY
    subject_field: ClassVar[str] = "scheme"
    summary: ClassVar[str] = "KB staff created or changed a scheme: its window and budget ceiling."

    scheme: str
    name: str
    opens: datetime
    closes: datetime
    budget_ceiling_cents: int = Field(gt=0)


class SubsidyPaid(_SubsidyFact):
    event_name: ClassVar[str] = "SubsidyPaid"
    summary: ClassVar[str] = (
        "A tranche was paid: the advance on grant, the final tranche once the conditions are met "
        "(seen in the other services' events), or the extension year after a renewal."
    )

    tranche: Literal["advance", "final", "extension"]
    amount_cents: int = Field(gt=0)
    paid_at: datetime


class SubsidyRenewed(_SubsidyFact):
    event_name: ClassVar[str] = "SubsidyRenewed"
    summary: ClassVar[str] = "A library confirmed the renewal (extension year) before its deadline."

    year: int
    amount_cents: int = Field(gt=0)
    signed_by: str
    renewed_at: datetime


class IdoLocationRegistered(EventData):
    event_name: ClassVar[str] = "IdoLocationRegistered"
    producer: ClassVar[str] = "intake"
    topic_template: ClassVar[str] = LIBRARIES
    subject_field: ClassVar[str] = "location_id"
    summary: ClassVar[str] = "A library registered or updated one of its IDO locations (rollout coverage)."

    location_id: str
    library: str
    code: str
    name: str
    postcode: str
    city: str
    municipality: str | None = None
    opening_hours_per_week: float = Field(ge=0)
    staff: int = Field(ge=0)
    volunteers: int = Field(ge=0)
    registered_at: datetime


class CredentialIssued(EventData):
    event_name: ClassVar[str] = "CredentialIssued"
    producer: ClassVar[str] = "ido-cli"
    topic_template: ClassVar[str] = CREDENTIALS
    subject_field: ClassVar[str] = "credential_id"
    summary: ClassVar[str] = "An operator issued an API credential (never the secret itself)."

    credential_id: str
    role: Literal["library", "agency", "kb", "service"]
    organisation: str
    key_id: str
    issued_at: datetime
    # When it stops being valid (absent: issued before credentials expired).
    expires_at: datetime | None = None
    # The broker principal issued with it (a receiving organisation's Kafka credential), if any:
    # revoking the credential removes it.
    kafka_principal: str | None = None


class CredentialRevoked(EventData):
    event_name: ClassVar[str] = "CredentialRevoked"
    producer: ClassVar[str] = "ido-cli"
    topic_template: ClassVar[str] = CREDENTIALS
    subject_field: ClassVar[str] = "credential_id"
    summary: ClassVar[str] = "An operator revoked an API credential; every service refuses it from then on."

    credential_id: str
    role: Literal["library", "agency", "kb", "service"]
    organisation: str
    revoked_at: datetime


EVENT_TYPES: dict[str, type[EventData]] = {
    cls.event_name: cls
    for cls in (
        HelpRequested,
        PersonalDataErased,
        HelpRequestRouted,
        ReferredToAgency,
        ReferralStatusChanged,
        ReferralOverdue,
        ReferralHandoverRead,
        IdoLocationRegistered,
        CourseRunScheduled,
        ParticipantEnrolled,
        ParticipantWaitlisted,
        SeatOffered,
        SeatOfferExpired,
        EnrolmentCancelled,
        CourseRunCancelled,
        CourseRunCapacityChanged,
        AttendanceRecorded,
        CourseCompleted,
        StaffTrainingCompleted,
        LibraryReadinessChanged,
        SubsidyApplied,
        SubsidyGranted,
        SubsidyRejected,
        SubsidyPaid,
        SubsidyRenewed,
        SubsidySchemePublished,
        CredentialIssued,
        CredentialRevoked,
    )
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
