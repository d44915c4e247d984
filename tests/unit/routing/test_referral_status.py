"""The referral's closed loop: allowed transitions and the service-level clock."""

from datetime import UTC, datetime, timedelta

import pytest

from services.routing.domain.referral import InvalidTransition, Referral

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def sent(response_time: timedelta = 5 * DAY) -> Referral:
    return Referral.send(
        sent_at=T0,
        response_time=response_time,
        referral_id="r-1",
        help_request_id="hr-1",
        question_index=0,
        agency="cjib",
        library="venlo",
        theme="verkeer",
        subtheme="verkeersboete",
        contact_preference="phone",
    )


def test_a_status_change_is_recorded_with_reason_and_a_new_version():
    referral = sent().change_status("accepted", "in behandeling", at=T0 + DAY, by="cjib")
    assert (referral.status, referral.version) == ("accepted", 2)
    assert [(h.status, h.reason, h.by) for h in referral.history] == [("accepted", "in behandeling", "cjib")]


@pytest.mark.parametrize(
    "final", ["got_help", "not_eligible", "no_capacity", "no_longer_interested", "referred_elsewhere"]
)
def test_nothing_follows_a_final_status(final):
    closed = sent().change_status(final, None, at=T0, by="cjib")
    with pytest.raises(InvalidTransition, match="closed"):
        closed.change_status("accepted", None, at=T0 + DAY, by="cjib")


def test_no_capacity_cannot_follow_needs_client_action_but_got_help_can():
    waiting = sent().change_status("needs_client_action", None, at=T0, by="cjib")
    with pytest.raises(InvalidTransition):
        waiting.change_status("no_capacity", None, at=T0, by="cjib")
    assert waiting.change_status("got_help", None, at=T0, by="cjib").status == "got_help"


def test_a_visitor_who_could_not_be_contacted_may_still_call_back():
    unreachable = sent().change_status("could_not_contact", None, at=T0, by="cjib")
    assert unreachable.change_status("accepted", "belde zelf terug", at=T0 + DAY, by="cjib").status == "accepted"


def test_overdue_once_the_response_time_has_passed():
    referral = sent(response_time=2 * DAY)
    assert not referral.is_overdue(T0 + 2 * DAY - timedelta(seconds=1))
    assert referral.is_overdue(T0 + 2 * DAY)
    assert not referral.mark_overdue_notified().is_overdue(T0 + 10 * DAY), "emitted once only"


def test_the_clock_pauses_while_the_visitor_has_to_act():
    referral = sent(response_time=2 * DAY).change_status("needs_client_action", None, at=T0 + DAY, by="cjib")
    assert not referral.is_overdue(T0 + 10 * DAY), "paused: no overdue while waiting for the visitor"
    resumed = referral.change_status("accepted", None, at=T0 + 4 * DAY, by="cjib")
    # One day used before the pause, three days paused: the deadline moved by three days.
    assert resumed.due_at == T0 + 5 * DAY
    assert not resumed.is_overdue(T0 + 5 * DAY - timedelta(minutes=1))
    assert resumed.is_overdue(T0 + 5 * DAY)


def test_a_final_status_stops_the_clock():
    done = sent(response_time=DAY).change_status("got_help", None, at=T0 + timedelta(hours=1), by="cjib")
    assert done.due_at is None and not done.is_overdue(T0 + 30 * DAY)
