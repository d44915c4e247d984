"""A warm referral and its closed loop: the receiving organisation reports back through
statuses, each transition validated, and a service level (response time) watches it.

Service level: a referral must reach a final status within the organisation's response time.
The clock pauses while the status is `needs_client_action` (the ball is in the visitor's court)
and resumes, with the paused time added to the deadline, when the status moves on.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import get_args

from shared.events.catalog import ReferralStatus

FINAL: frozenset[str] = frozenset(
    {"got_help", "not_eligible", "no_capacity", "no_longer_interested", "referred_elsewhere"}
)
# could_not_contact is final for the service level but the visitor may still call back.
_REOPENABLE = {"could_not_contact": {"accepted", "needs_client_action", "got_help", "no_longer_interested"}}
_REPORTED = set(get_args(ReferralStatus)) - {"sent"}
_ACTIVE = {
    "sent": _REPORTED,
    "accepted": _REPORTED - {"accepted"},
    "needs_client_action": _REPORTED - {"needs_client_action", "no_capacity"},
}
ALLOWED: dict[str, set[str]] = {**_ACTIVE, **_REOPENABLE}
# Still expected of the receiving organisation: what its inbox lists by default.
OPEN: tuple[str, ...] = ("sent", "accepted", "needs_client_action")


def allowed_after(status: str) -> list[str]:
    """The statuses a referral in `status` may move to, in the catalogue's order."""
    return [s for s in get_args(ReferralStatus) if s in ALLOWED.get(status, set())]


class InvalidTransition(Exception):
    def __init__(self, current: str, wanted: str) -> None:
        allowed = ", ".join(sorted(ALLOWED.get(current, set()))) or "none: the referral is closed"
        super().__init__(f"a referral that is '{current}' cannot become '{wanted}' (allowed: {allowed})")


def is_closed(status: str) -> bool:
    """Closed for the service level: nothing more is expected of the organisation."""
    return status in FINAL or status == "could_not_contact"


@dataclass(frozen=True)
class StatusChange:
    status: str
    reason: str | None
    at: datetime
    by: str


@dataclass(frozen=True)
class Referral:
    referral_id: str
    help_request_id: str
    question_index: int
    agency: str
    library: str
    theme: str
    subtheme: str | None
    contact_preference: str | None
    sent_at: datetime
    due_at: datetime | None
    status: str = "sent"
    version: int = 1
    paused_at: datetime | None = None
    overdue_notified: bool = False
    history: tuple[StatusChange, ...] = field(default_factory=tuple)

    @classmethod
    def send(cls, *, sent_at: datetime, response_time: timedelta, **facts: object) -> "Referral":
        return cls(sent_at=sent_at, due_at=sent_at + response_time, **facts)  # type: ignore[arg-type]

    def change_status(self, status: ReferralStatus, reason: str | None, *, at: datetime, by: str) -> "Referral":
        """The referral after the organisation reported `status`; raises InvalidTransition."""
        if status not in ALLOWED.get(self.status, set()):
            raise InvalidTransition(self.status, status)
        due_at, paused_at = self.due_at, self.paused_at
        if status == "needs_client_action":
            paused_at = at
        elif paused_at is not None and due_at is not None:
            due_at, paused_at = due_at + (at - paused_at), None
        if is_closed(status):
            due_at, paused_at = None, None
        return replace(
            self,
            status=status,
            version=self.version + 1,
            due_at=due_at,
            paused_at=paused_at,
            history=(*self.history, StatusChange(status, reason, at, by)),
        )

    def is_overdue(self, now: datetime) -> bool:
        return (
            not self.overdue_notified
            and self.paused_at is None
            and self.due_at is not None
            and not is_closed(self.status)
            and now >= self.due_at
        )

    def past_due(self, now: datetime) -> bool:
        """On the clock (not paused, not closed) and past its deadline, reported or not."""
        return self.paused_at is None and self.due_at is not None and not is_closed(self.status) and now >= self.due_at

    @property
    def allowed_statuses(self) -> list[str]:
        """What the organisation may report next."""
        return allowed_after(self.status)

    def mark_overdue_notified(self) -> "Referral":
        return replace(self, overdue_notified=True)


@dataclass(frozen=True)
class Listing:
    """Which of an organisation's referrals to list, newest first, one page at a time."""

    limit: int = 20
    statuses: tuple[str, ...] = ()  # empty: every status
    after: tuple[datetime, str] | None = None  # (sent_at, referral_id) of the last item of the previous page


def response_time(hours: int | None, default: timedelta) -> timedelta:
    """The receiving organisation's own response time if it has one, else the platform's."""
    return timedelta(hours=hours) if hours else default
