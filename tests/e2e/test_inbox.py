"""The inbox (GET /inbox on routing) in Debian's chromium, on the running system: an agency
signs in with its credential, finds a new referral, opens the handover (the visitor's details,
as they consented), accepts it in two clicks, and the library's desk shows the new status.
axe-core on every state; screenshots in .local/artifacts/."""

import uuid

import httpx
import pytest

from tests.e2e.browser import Keyboard, check_accessibility, chromium_page
from tests.e2e.conftest import credential
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra


async def referred_visit(intake: httpx.AsyncClient, library_token: str) -> str:
    """A visit with a warm referral to the Belastingdienst, registered through the API; its referral id."""
    visit = {
        "channel": "walk_in",
        "questions": [{"category": "digital_government", "theme": "toeslagen", "subtheme": "zorgtoeslag"}],
        "help_given": ["informed"],
        "referral": {
            "consent": True,
            "contact_preference": "phone",
            "contact": {"name": "A. Inbox", "phone": "0687654321"},
        },
    }
    headers = {"Authorization": f"Bearer {library_token}", "Idempotency-Key": str(uuid.uuid4())}
    answer = await intake.post("/v1/help-requests", json=visit, headers=headers)
    assert answer.status_code == 201, answer.text

    async def referred():
        body = (await intake.get(f"/v1/help-requests/{answer.json()['id']}", headers=headers)).json()
        return body["referrals"][0]["referral_id"] if body["referrals"] else None

    return await eventually(referred, timeout=30)


async def test_an_agency_accepts_a_referral_in_its_inbox_and_the_desk_shows_it(system, intake, library_token):
    referral_id = await referred_visit(intake, library_token)
    agency_token = credential("--agency", "belastingdienst")
    async with chromium_page() as page:
        await page.goto(f"{system['routing']}/inbox")
        await check_accessibility(page, "inbox-signed-out")
        keys = Keyboard(page)
        await keys.tab_to(page, "credential")
        await page.keyboard.insert_text(agency_token)
        await keys.press("Enter")
        row = f"#referrals tr[data-referral='{referral_id}']"
        await page.wait_for_selector(row)
        assert await page.get_attribute(row, "data-status") == "sent"
        assert "Zorgtoeslag" in await page.inner_text(row)
        assert "A. Inbox" not in await page.inner_text("#referrals"), "no personal data in the list"
        await check_accessibility(page, "inbox-list")

        await page.click(f"{row} button[data-open]")
        await page.wait_for_selector("#handover-section:not([hidden])")
        handover = await page.inner_text("#handover")
        assert "A. Inbox" in handover and "0687654321" in handover, handover
        await check_accessibility(page, "inbox-handover")

        # Two clicks: the status, then save. Only the transitions the domain allows are offered.
        offered = await page.eval_on_selector_all("#status-choices input", "inputs => inputs.map(i => i.value)")
        assert "accepted" in offered and "sent" not in offered, offered
        await page.fill("#reason", "Wij bellen deze week")
        await page.click("#status-accepted")
        await page.click("#save-status")
        await page.wait_for_selector("#page-status:has-text('Geaccepteerd')")
        await page.wait_for_selector(f"{row}[data-status='accepted']")
        offered = await page.eval_on_selector_all("#status-choices input", "inputs => inputs.map(i => i.value)")
        assert "accepted" not in offered

        # The library's desk, in another tab of the same browser, shows the new status.
        desk = await page.context.new_page()
        await desk.goto(f"{system['intake']}/desk")
        await desk.fill("#credential", library_token)
        await desk.press("#credential", "Enter")
        await desk.wait_for_selector("#desk:not([hidden])")
        accepted = f"#today li[data-referral='{referral_id}'][data-status='accepted']"

        async def shown() -> bool:
            await desk.click("#refresh")
            await desk.wait_for_timeout(300)
            return await desk.query_selector(accepted) is not None

        await eventually(shown, timeout=30, interval=0.5)
        await check_accessibility(desk, "desk-list-after-inbox")
