"""Intake follows routing's events about a help request's referrals, in any order, once."""

from datetime import UTC, datetime, timedelta

from services.intake.domain.model import HelpRequest, RegisterHelpRequest
from shared.events.catalog import QuestionDecision, ReferralHandoverRead, ReferralOverdue, ReferralStatusChanged

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
FACTS = {"referral_id": "r-1", "help_request_id": "hr-1", "question_index": 0, "agency": "cjib", "library": "venlo"}


def help_request() -> HelpRequest:
    cmd = RegisterHelpRequest.model_validate(
        {"channel": "walk_in", "questions": [{"category": "digital_government", "theme": "verkeer"}]}
    )
    return HelpRequest(id="hr-1", library="venlo", registered_at=T0, request=cmd)


def routed(hr: HelpRequest) -> HelpRequest:
    decision = QuestionDecision(question_index=0, outcome="referred", organisation="cjib", referral_id="r-1")
    return hr.apply_routing([decision])


def change(status: str, sequence: int, minutes: int = 0) -> ReferralStatusChanged:
    at = T0 + timedelta(minutes=minutes)
    return ReferralStatusChanged(**FACTS, status=status, changed_at=at, sequence=sequence)


def test_status_changes_show_on_the_referral_and_a_final_one_closes_the_request():
    hr = routed(help_request()).apply_status_change(change("accepted", 2)).apply_status_change(change("got_help", 3))
    [referral] = hr.referrals
    assert (referral.status, referral.sequence, hr.status) == ("got_help", 3, "closed")
    assert [h.status for h in referral.history] == ["accepted", "got_help"]


def test_a_repeated_or_older_change_is_ignored():
    hr = routed(help_request()).apply_status_change(change("got_help", 3, minutes=5))
    again = hr.apply_status_change(change("got_help", 3, minutes=5)).apply_status_change(change("accepted", 2))
    assert again.referrals[0].status == "got_help" and len(again.referrals[0].history) == 1


def test_a_status_change_that_overtakes_the_routing_decision_is_kept():
    early = help_request().apply_status_change(change("accepted", 2))
    assert early.status == "referred"
    hr = routed(early)
    [referral] = hr.referrals
    assert referral.status == "accepted" and hr.decisions[0].outcome == "referred"


def test_overdue_and_handover_reads_are_shown():
    hr = routed(help_request())
    hr = hr.apply_overdue(ReferralOverdue(**FACTS, status="sent", due_at=T0, detected_at=T0))
    hr = hr.apply_handover_read(ReferralHandoverRead(**FACTS, read_at=T0, credential_id="c-1"))
    [referral] = hr.referrals
    assert referral.overdue and [(r.by, r.at) for r in referral.handover_reads] == [("cjib", T0)]
    assert hr.status == "referred"
