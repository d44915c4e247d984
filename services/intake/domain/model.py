"""A help request: one visit to an IDO with one to ten questions (the KB registration form)."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator, model_validator

from services.intake.domain.privacy import contains_bsn
from shared import reference
from shared.events.catalog import ContactPreference, QuestionDecision

MAX_QUESTIONS = 10
MAX_NOTE = 1000
Slug = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
Status = Literal["received", "routed", "referred", "closed"]


class _Strict(BaseModel):
    # Unknown fields are refused: no mass assignment.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Question(_Strict):
    category: Literal["digital_government", "library_services", "other"]
    theme: Slug
    subtheme: Slug | None = None
    note: str | None = Field(default=None, max_length=MAX_NOTE)

    @field_validator("note")
    @classmethod
    def _no_bsn(cls, note: str | None) -> str | None:
        if note and contains_bsn(note):
            raise ValueError("contains what looks like a BSN; the IDO may not process a BSN, leave it out")
        return note

    @model_validator(mode="after")
    def _known_theme(self) -> "Question":
        if self.category != "digital_government":
            return self
        theme = reference.THEMES.get(self.theme)
        if theme is None:
            raise ValueError(f"unknown theme '{self.theme}'; see GET /v1/themes")
        if self.subtheme and theme.subthemes and self.subtheme not in theme.subthemes:
            raise ValueError(f"unknown subtheme '{self.subtheme}' for theme '{self.theme}'")
        return self


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


class ReferralView(BaseModel):
    referral_id: str
    organisation: str
    question_index: int
    status: str


class HelpRequest(BaseModel):
    """The stored help request and its progress as routing reports it."""

    id: str
    library: str
    registered_at: datetime
    request: RegisterHelpRequest
    status: Status = "received"
    decisions: list[QuestionDecision] = []
    referrals: list[ReferralView] = []

    def apply_routing(self, decisions: list[QuestionDecision]) -> "HelpRequest":
        referrals = [
            ReferralView(
                referral_id=d.referral_id, organisation=d.organisation, question_index=d.question_index, status="sent"
            )
            for d in decisions
            if d.outcome == "referred" and d.referral_id and d.organisation
        ]
        return self.model_copy(
            update={"decisions": decisions, "referrals": referrals, "status": "referred" if referrals else "routed"}
        )
