"""The inbox's list: which statuses a referral offers next, when it is past due, and that the
list handler answers only an organisation that receives referrals, with its own (no database)."""

from datetime import UTC, datetime, timedelta

import pytest

from services.routing import handlers
from services.routing.domain.referral import ALLOWED, Listing, Referral
from services.routing.entrypoints.http import ReferralItem, ReferralView
from shared.auth import Principal

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def referral(**changes) -> Referral:
    facts = dict(referral_id="r-1", help_request_id="hr-1", question_index=0, agency="cjib", library="katwijk")
    facts |= dict(theme="verkeer", subtheme="verkeersboete", contact_preference="phone")
    return Referral.send(sent_at=NOW, response_time=timedelta(days=5), **(facts | changes))


def test_the_statuses_offered_are_the_domains_transitions_in_catalogue_order():
    sent = referral()
    assert set(sent.allowed_statuses) == ALLOWED["sent"] and sent.allowed_statuses[0] == "accepted"
    accepted = sent.change_status("accepted", None, at=NOW, by="cjib")
    assert "accepted" not in accepted.allowed_statuses
    closed = accepted.change_status("got_help", None, at=NOW, by="cjib")
    assert closed.allowed_statuses == []
    gone = accepted.change_status("could_not_contact", None, at=NOW, by="cjib")
    assert set(gone.allowed_statuses) == ALLOWED["could_not_contact"], "the visitor may still call back"


def test_past_due_is_open_unpaused_and_past_the_deadline_whether_reported_or_not():
    sent = referral()
    assert not sent.past_due(NOW + timedelta(days=4))
    assert sent.past_due(NOW + timedelta(days=5))
    assert sent.mark_overdue_notified().past_due(NOW + timedelta(days=6)), "still late after the report"
    waiting = sent.change_status("needs_client_action", None, at=NOW, by="cjib")
    assert not waiting.past_due(NOW + timedelta(days=30)), "the clock is paused"
    done = sent.change_status("got_help", None, at=NOW, by="cjib")
    assert not done.past_due(NOW + timedelta(days=30))


def test_a_list_item_carries_the_clock_and_no_personal_data():
    item = ReferralItem.of(referral(), NOW + timedelta(days=6))
    assert (item.overdue, item.paused, item.due_at) == (True, False, NOW + timedelta(days=5))
    assert not {"contact", "note", "history"} & set(ReferralItem.model_fields)
    assert item.allowed_statuses == referral().allowed_statuses
    assert ReferralView.of(referral(), contact=None, note=None).allowed_statuses == referral().allowed_statuses


class FakeReferrals:
    def __init__(self, *referrals: Referral) -> None:
        self.rows = list(referrals)
        self.asked: list[tuple[str, Listing]] = []

    async def of_organisation(self, agency: str, listing: Listing) -> list[Referral]:
        self.asked.append((agency, listing))
        found = [r for r in self.rows if r.agency == agency and (not listing.statuses or r.status in listing.statuses)]
        return found[: listing.limit]


async def test_the_list_is_the_callers_own_and_only_an_organisation_may_ask():
    repo = FakeReferrals(referral(), referral(referral_id="r-2", agency="uwv"))
    cjib = Principal(role="agency", organisation="cjib", credential_id="c-1")
    listing = Listing(limit=10, statuses=("sent",))
    found = await handlers.list_referrals(listing, caller=cjib, referrals=repo)
    assert [r.referral_id for r in found] == ["r-1"]
    assert repo.asked == [("cjib", listing)], "asked for the caller's organisation, as given"
    for role in ("library", "kb", "service"):
        with pytest.raises(handlers.NotReceiving):
            await handlers.list_referrals(
                listing, caller=Principal(role=role, organisation="cjib", credential_id="c"), referrals=repo
            )
