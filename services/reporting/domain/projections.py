"""How events become read models: pure functions from an event to the changes it makes to the
read models' rows, and how two changes to one row combine. The live consumer applies the
changes of one event; a rebuild folds thousands of events into one change per row first (the
same rules, so the same figures) and writes each table once per batch.

Nothing here is personal data: ids, classifications, counts, amounts and moments only."""

from collections.abc import Callable, Hashable, Iterable
from datetime import date, datetime
from typing import Any, NamedTuple, Protocol, Self, TypeVar

from shared import reference
from shared.events import catalog
from shared.events.envelope import CloudEvent


class Change(Protocol):
    """A change to one row of a read model: `key` names the row; `then` combines this change
    with a later one to the same row into one. (Changes are named tuples: a rebuild makes
    millions of them.)"""

    @property
    def key(self) -> Hashable: ...

    def then(self, later: Self) -> Self: ...


def _latest(earlier: Any, later: Any) -> Any:
    """Patch semantics: what the later change sets wins, what it leaves unset (None) is kept."""
    return type(earlier)(*(old if new is None else new for old, new in zip(earlier, later, strict=True)))


class Increment(NamedTuple):
    """Add `amount` to the counter identified by `measure` and `dimensions`."""

    measure: str
    dimensions: tuple[tuple[str, str], ...]
    amount: int = 1

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return (self.measure, self.dimensions)

    def then(self, later: "Increment") -> "Increment":
        return Increment(self.measure, self.dimensions, self.amount + later.amount)


class QuestionRow(NamedTuple):
    """One question as on the KB's registration form (no free text, no contact details)."""

    help_request_id: str
    question: int  # 1, 2, ... as on the form
    date: date
    library: str
    location: str
    channel: str
    category: str
    theme: str
    subtheme: str
    help_given: str
    duration_minutes: int | None

    @property
    def key(self) -> tuple[str, int]:
        return (self.help_request_id, self.question)

    def then(self, later: "QuestionRow") -> "QuestionRow":
        return later  # a later registration of the same request replaces the row


class QuestionOutcome(NamedTuple):
    help_request_id: str
    question: int
    outcome: str
    referred_to: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.help_request_id, self.question)

    def then(self, later: "QuestionOutcome") -> "QuestionOutcome":
        return later


class ReferralChange(NamedTuple):
    """What one event tells about a referral. The status with the highest sequence wins, whatever
    the order of arrival (a tie: the later one); once overdue, always overdue."""

    referral_id: str
    agency: str | None = None
    library: str | None = None
    theme: str | None = None
    sent_at: datetime | None = None
    status: str | None = None
    sequence: int | None = None
    accepted_at: datetime | None = None
    overdue: bool = False

    @property
    def key(self) -> str:
        return self.referral_id

    def then(self, later: "ReferralChange") -> "ReferralChange":
        newer = later.sequence is not None and (self.sequence is None or later.sequence >= self.sequence)
        return ReferralChange(
            self.referral_id,
            agency=self.agency if later.agency is None else later.agency,
            library=self.library if later.library is None else later.library,
            theme=self.theme if later.theme is None else later.theme,
            sent_at=self.sent_at if later.sent_at is None else later.sent_at,
            status=later.status if newer else self.status,
            sequence=later.sequence if newer else self.sequence,
            accepted_at=self.accepted_at if later.accepted_at is None else later.accepted_at,
            overdue=self.overdue or later.overdue,
        )


class Location(NamedTuple):
    """An IDO location: its code is unique only within its library, so (library, code) names it."""

    library: str
    code: str
    opened_at: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (self.library, self.code)

    def then(self, later: "Location") -> "Location":
        return self  # opened when first registered; later updates change nothing here


class RunChange(NamedTuple):
    run_id: str
    library: str | None = None
    course_type: str | None = None
    capacity: int | None = None
    first_session_at: datetime | None = None
    status: str | None = None

    @property
    def key(self) -> str:
        return self.run_id

    def then(self, later: "RunChange") -> "RunChange":
        return _latest(self, later)


class EnrolmentState(NamedTuple):
    """The latest state of an enrolment: a run's counts are derived from these."""

    run_id: str
    enrolment_id: str
    state: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.run_id, self.enrolment_id)

    def then(self, later: "EnrolmentState") -> "EnrolmentState":
        return later


class Readiness(NamedTuple):
    library: str
    trained: dict[str, int]

    @property
    def key(self) -> str:
        return self.library

    def then(self, later: "Readiness") -> "Readiness":
        return later


class SubsidyChange(NamedTuple):
    application_id: str
    scheme: str
    library: str
    requested_cents: int | None = None
    granted_cents: int | None = None
    extension_cents: int | None = None
    status: str | None = None

    @property
    def key(self) -> str:
        return self.application_id

    def then(self, later: "SubsidyChange") -> "SubsidyChange":
        return _latest(self, later)


class Payment(NamedTuple):
    """A tranche paid: per application and tranche, so a repeat pays nothing twice."""

    application_id: str
    tranche: str
    amount_cents: int

    @property
    def key(self) -> tuple[str, str]:
        return (self.application_id, self.tranche)

    def then(self, later: "Payment") -> "Payment":
        return later


class SchemeCeiling(NamedTuple):
    scheme: str
    name: str
    budget_ceiling_cents: int

    @property
    def key(self) -> str:
        return self.scheme

    def then(self, later: "SchemeCeiling") -> "SchemeCeiling":
        return later


C = TypeVar("C", bound=Change)


class Changes:
    """Changes to the read models, at most one per row: a change added for a row that already
    has one is combined with it (`then`). Rows come out sorted by key, so every writer locks
    rows in the same order."""

    def __init__(self) -> None:
        self._rows: dict[type, dict[Any, Any]] = {}  # keys: str or tuples of str and int, sortable

    def add(self, *changes: Change) -> None:
        for change in changes:
            rows = self._rows.setdefault(type(change), {})
            earlier = rows.get(change.key)
            rows[change.key] = change if earlier is None else earlier.then(change)

    def of(self, kind: type[C]) -> list[C]:
        rows = self._rows.get(kind, {})
        return [rows[k] for k in sorted(rows)]

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())


def month(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def question_rows(data: catalog.HelpRequested) -> list[QuestionRow]:
    """One row per question, as on the KB's registration form (no free text, no contact)."""
    return [
        QuestionRow(
            help_request_id=data.help_request_id,
            question=q.index + 1,
            date=data.registered_at.date(),
            library=data.library,
            location=data.location or "",
            channel=data.channel,
            category=q.category,
            theme=q.theme,
            subtheme=q.subtheme or "",
            help_given=";".join(data.help_given),
            duration_minutes=data.duration_minutes or None,
        )
        for q in data.questions
    ]


def help_request_increments(data: catalog.HelpRequested) -> list[Increment]:
    m = month(data.registered_at)
    increments = [Increment("visits", (("month", m), ("library", data.library), ("channel", data.channel)))]
    for q in data.questions:
        increments.append(
            Increment(
                "questions",
                (
                    ("month", m),
                    ("library", data.library),
                    ("location", data.location or ""),
                    ("channel", data.channel),
                    ("category", q.category),
                    ("theme", q.theme),
                    ("subtheme", q.subtheme or ""),
                ),
            )
        )
    increments += [
        Increment("help_given", (("month", m), ("library", data.library), ("help", help_given)))
        for help_given in data.help_given
    ]
    return increments


def routing_increments(data: catalog.HelpRequestRouted, at: datetime) -> list[Increment]:
    """Per question routed: where it went (the receiving organisation, or none) and how."""
    return [
        Increment(
            "outcomes",
            (
                ("month", month(at)),
                ("library", data.library),
                ("organisation", d.organisation or ""),
                ("outcome", d.outcome),
            ),
        )
        for d in data.decisions
    ]


# One function per event type: the changes it makes.


def help_requested(event: CloudEvent, data: catalog.HelpRequested) -> list[Change]:
    return [*question_rows(data), *help_request_increments(data)]


def help_request_routed(event: CloudEvent, data: catalog.HelpRequestRouted) -> list[Change]:
    outcomes = [
        QuestionOutcome(data.help_request_id, d.question_index + 1, d.outcome, d.organisation or "")
        for d in data.decisions
    ]
    return [*routing_increments(data, event.time), *outcomes]


def referred_to_agency(event: CloudEvent, data: catalog.ReferredToAgency) -> list[Change]:
    return [
        ReferralChange(data.referral_id, agency=data.agency, library=data.library, theme=data.theme, sent_at=event.time)
    ]


def referral_status_changed(event: CloudEvent, data: catalog.ReferralStatusChanged) -> list[Change]:
    accepted_at = data.changed_at if data.status == "accepted" else None
    return [
        ReferralChange(
            data.referral_id,
            agency=data.agency,
            library=data.library,
            status=data.status,
            sequence=data.sequence,
            accepted_at=accepted_at,
        )
    ]


def referral_overdue(event: CloudEvent, data: catalog.ReferralOverdue) -> list[Change]:
    return [ReferralChange(data.referral_id, agency=data.agency, library=data.library, overdue=True)]


def location_registered(event: CloudEvent, data: catalog.IdoLocationRegistered) -> list[Change]:
    return [Location(data.library, data.code, data.registered_at)]


def course_run_scheduled(event: CloudEvent, data: catalog.CourseRunScheduled) -> list[Change]:
    return [
        RunChange(
            data.run_id,
            library=data.library,
            course_type=data.course_type,
            capacity=data.capacity,
            first_session_at=data.first_session_at,
            status="scheduled",
        )
    ]


def course_run_cancelled(event: CloudEvent, data: catalog.CourseRunCancelled) -> list[Change]:
    return [RunChange(data.run_id, status="cancelled")]


def course_run_capacity_changed(event: CloudEvent, data: catalog.CourseRunCapacityChanged) -> list[Change]:
    return [RunChange(data.run_id, capacity=data.capacity)]


ENROLMENT_STATES = {
    "ParticipantEnrolled": "enrolled",
    "ParticipantWaitlisted": "waitlisted",
    "SeatOffered": "offered",
    "SeatOfferExpired": "offer_expired",
    "EnrolmentCancelled": "cancelled",
    "CourseCompleted": "completed",
}


def enrolment_changed(event: CloudEvent, data: Any) -> list[Change]:
    return [EnrolmentState(data.run_id, data.enrolment_id, ENROLMENT_STATES[event.name])]


def readiness_changed(event: CloudEvent, data: catalog.LibraryReadinessChanged) -> list[Change]:
    return [Readiness(data.library, dict(data.trained_staff))]


def scheme_published(event: CloudEvent, data: catalog.SubsidySchemePublished) -> list[Change]:
    return [SchemeCeiling(data.scheme, data.name, data.budget_ceiling_cents)]


def subsidy_applied(event: CloudEvent, data: catalog.SubsidyApplied) -> list[Change]:
    return [SubsidyChange(data.application_id, data.scheme, data.library, requested_cents=data.requested_cents)]


def subsidy_granted(event: CloudEvent, data: catalog.SubsidyGranted) -> list[Change]:
    return [
        SubsidyChange(
            data.application_id, data.scheme, data.library, granted_cents=data.granted_cents, status="granted"
        )
    ]


def subsidy_rejected(event: CloudEvent, data: catalog.SubsidyRejected) -> list[Change]:
    return [SubsidyChange(data.application_id, data.scheme, data.library, status="rejected")]


def subsidy_paid(event: CloudEvent, data: catalog.SubsidyPaid) -> list[Change]:
    return [
        SubsidyChange(data.application_id, data.scheme, data.library),
        Payment(data.application_id, data.tranche, data.amount_cents),
    ]


def subsidy_renewed(event: CloudEvent, data: catalog.SubsidyRenewed) -> list[Change]:
    return [SubsidyChange(data.application_id, data.scheme, data.library, extension_cents=data.amount_cents)]


Projection = Callable[[CloudEvent, Any], list[Change]]
PROJECTIONS: dict[str, Projection] = {
    "HelpRequested": help_requested,
    "HelpRequestRouted": help_request_routed,
    "ReferredToAgency": referred_to_agency,
    "ReferralStatusChanged": referral_status_changed,
    "ReferralOverdue": referral_overdue,
    "IdoLocationRegistered": location_registered,
    "CourseRunScheduled": course_run_scheduled,
    "CourseRunCancelled": course_run_cancelled,
    "CourseRunCapacityChanged": course_run_capacity_changed,
    **dict.fromkeys(ENROLMENT_STATES, enrolment_changed),
    "LibraryReadinessChanged": readiness_changed,
    "SubsidySchemePublished": scheme_published,
    "SubsidyApplied": subsidy_applied,
    "SubsidyGranted": subsidy_granted,
    "SubsidyRejected": subsidy_rejected,
    "SubsidyPaid": subsidy_paid,
    "SubsidyRenewed": subsidy_renewed,
}


def changes_of(events: Iterable[tuple[CloudEvent, Any]], into: Changes | None = None) -> Changes:
    """The changes of these events, in order, folded to one per row."""
    changes = into if into is not None else Changes()
    for event, data in events:
        changes.add(*PROJECTIONS[event.name](event, data))
    return changes


def agency_themes(agency: str) -> set[str]:
    """The themes whose questions go to this agency by default: its domain."""
    return {
        t.code
        for t in reference.THEMES.values()
        if t.default_organisation == agency or agency in set(t.subthemes.values())
    }


def labels() -> dict[str, dict[str, str]]:
    """The one table of Dutch labels the dashboard draws codes with (`GET /v1/labels`)."""
    return {
        "statuses": dict(reference.REFERRAL_STATUS_LABELS),
        "outcomes": dict(reference.OUTCOME_LABELS),
        "themes": {code: theme.label for code, theme in reference.THEMES.items()},
        "course_types": dict(reference.COURSE_TYPE_LABELS),
        "organisations": dict(reference.AGENCIES),
        "libraries": dict(reference.PILOT_LIBRARIES),
    }
