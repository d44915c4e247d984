"""A help request: one visit to an IDO with one to ten questions (the KB registration form)."""

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, model_validator

from shared.events.catalog import (
    ContactPreference,
    QuestionDecision,
    ReferralHandoverRead,
    ReferralOverdue,
    ReferralStatusChanged,
)
from shared.privacy import NoBsn

MAX_QUESTIONS = 10
MAX_NOTE = 1000
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Status = Literal["received", "routed", "referred", "closed"]
Note = Annotated[str, StringConstraints(max_length=MAX_NOTE), NoBsn]


class _Strict(BaseModel):
    # Unknown fields are refused: no mass assignment.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Question(_Strict):
    category: Literal["digital_government", "library_services", "other"]
    # From the taxonomy (intake's themes table, kept by the KB): checked at registration, not
    # here, so visits with a theme retired since stay readable. A free description goes in the note.
    theme: Slug
    subtheme: Slug | None = None
    note: Note | None = None
    # Optional: the receiving organisation staff chose themselves (validated by routing).
    target: Slug | None = None


class Contact(_Strict):
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9 ()-]{6,20}$")
    email: EmailStr | None = None


class Referral(_Strict):
    consent: bool
    contact_preference: ContactPreference = "do_not_contact"
    contact: Contact | None = None

    @model_validator(mode="after")
    def _contact_needs_consent(self) -> "Referral":
        if self.contact is not None and not self.consent:
            raise ValueError("contact details are accepted only with the visitor's consent to be referred")
        return self


class RegisterHelpRequest(_Strict):
    """The command a library sends: POST /v1/help-requests."""

    channel: Literal["walk_in", "phone", "email", "appointment"]
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS)
    help_given: list[Literal["informed", "coached", "helped_at_desk", "course_advised"]] = []
    referral: Referral | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=480)
    location: Slug | None = None


@dataclass(frozen=True)
class Listing:
    """Which of a library's help requests to list, newest first, one page at a time."""

    limit: int = 20
    status: Status | None = None
    theme: str | None = None
    registered_from: datetime | None = None
    registered_to: datetime | None = None
    after: tuple[datetime, str] | None = None  # (registered_at, id) of the last item of the previous page


class StatusChange(BaseModel):
    status: str
    reason: str | None = None
    at: datetime


class HandoverRead(BaseModel):
    at: datetime
    by: str


class ReferralView(BaseModel):
    """A referral of this visit as the library sees it, following the events from routing."""

    referral_id: str
    organisation: str
    question_index: int
    status: str = "sent"
    sequence: int = 1  # of the last status change applied; older or repeated changes are ignored
    overdue: bool = False
    history: list[StatusChange] = []
    handover_reads: list[HandoverRead] = []


_CLOSED = {"got_help", "not_eligible", "no_capacity", "no_longer_interested", "referred_elsewhere", "could_not_contact"}


class HelpRequest(BaseModel):
    """The stored help request and its progress as routing reports it."""

    id: str
    library: str
    registered_at: datetime
    request: RegisterHelpRequest
    status: Status = "received"
    decisions: list[QuestionDecision] = []
    referrals: list[ReferralView] = []
    personal_data_erased_at: datetime | None = None

    def personal_data(self) -> dict[str, Any] | None:
        """What is personal in this visit and may travel sealed: contact details (only with
        consent) and the notes. None when there is nothing personal."""
        referral = self.request.referral
        contact = (
            referral.contact.model_dump(exclude_none=True)
            if referral and referral.consent and referral.contact
            else None
        )
        notes = {str(i): q.note for i, q in enumerate(self.request.questions) if q.note}
        return {"contact": contact, "notes": notes} if contact or notes else None

    def without_personal_data(self, at: datetime) -> "HelpRequest":
        """The visit as it stays after erasure: the registration without contact or notes."""
        questions = [q.model_copy(update={"note": None}) for q in self.request.questions]
        referral = self.request.referral
        request = self.request.model_copy(
            update={
                "questions": questions,
                "referral": referral.model_copy(update={"contact": None}) if referral else None,
            }
        )
        return self.model_copy(update={"request": request, "personal_data_erased_at": at})

    def _with(self, decisions: list[QuestionDecision], referrals: list[ReferralView]) -> "HelpRequest":
        if referrals and all(r.status in _CLOSED for r in referrals):
            status: Status = "closed"
        elif referrals:
            status = "referred"
        else:
            status = "routed" if decisions else "received"
        return self.model_copy(update={"decisions": decisions, "referrals": referrals, "status": status})

    def _referral(self, referral_id: str, organisation: str, question_index: int) -> tuple[ReferralView, list]:
        others = [r for r in self.referrals if r.referral_id != referral_id]
        known = next((r for r in self.referrals if r.referral_id == referral_id), None)
        return known or ReferralView(
            referral_id=referral_id, organisation=organisation, question_index=question_index
        ), others

    def apply_routing(self, decisions: list[QuestionDecision]) -> "HelpRequest":
        # Status events may overtake the routing decision (other key, other partition): keep them.
        known = {r.referral_id for r in self.referrals}
        new = [
            ReferralView(referral_id=d.referral_id, organisation=d.organisation, question_index=d.question_index)
            for d in decisions
            if d.outcome == "referred" and d.referral_id and d.organisation and d.referral_id not in known
        ]
        return self._with(decisions, sorted([*self.referrals, *new], key=lambda r: r.question_index))

    def apply_status_change(self, change: ReferralStatusChanged) -> "HelpRequest":
        referral, others = self._referral(change.referral_id, change.agency, change.question_index)
        if change.sequence <= referral.sequence:
            return self  # an older or repeated change
        updated = referral.model_copy(
            update={
                "status": change.status,
                "sequence": change.sequence,
                "history": sorted(
                    [*referral.history, StatusChange(status=change.status, reason=change.reason, at=change.changed_at)],
                    key=lambda h: h.at,
                ),
            }
        )
        return self._with(self.decisions, sorted([*others, updated], key=lambda r: r.question_index))

    def apply_overdue(self, overdue: ReferralOverdue) -> "HelpRequest":
        referral, others = self._referral(overdue.referral_id, overdue.agency, overdue.question_index)
        updated = referral.model_copy(update={"overdue": True})
        return self._with(self.decisions, sorted([*others, updated], key=lambda r: r.question_index))

    def apply_handover_read(self, read: ReferralHandoverRead) -> "HelpRequest":
        referral, others = self._referral(read.referral_id, read.agency, read.question_index)
        this = HandoverRead(at=read.read_at, by=read.agency)
        reads = referral.handover_reads if this in referral.handover_reads else [*referral.handover_reads, this]
        updated = referral.model_copy(update={"handover_reads": reads})
        return self._with(self.decisions, sorted([*others, updated], key=lambda r: r.question_index))
