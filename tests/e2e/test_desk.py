"""The desk (GET /desk on intake) in Debian's chromium, on the running system: a visit with a
warm referral registered by keyboard alone (timed, key presses counted), the referral on the
agency's topic and the outcome on the page; the error summary for the API's invalid-params; a
BSN in a note stopped before anything is sent; nothing personal left in the browser; axe-core
on every state. Screenshots in .local/artifacts/."""

import json
import time

import pytest

from shared.privacy import contains_bsn
from tests.e2e.browser import Keyboard, check_accessibility, chromium_page, wait_for_focus
from tests.kafkatools import TopicReader

pytestmark = pytest.mark.infra

BSN = "111222333"  # passes the elfproef: a BSN as far as anyone can tell
SAMPLES = [BSN, "111 222 333", "111.22.23.33", "123456789", "0612345678", "9991112223334", "000000000", "geen nummer"]


async def sign_in(page, keys: Keyboard, token: str) -> None:
    await keys.tab_to(page, "credential")
    await page.keyboard.insert_text(token)  # pasted, as staff do once per session
    await keys.press("Enter")
    await page.wait_for_selector("#desk:not([hidden])")


async def test_a_visit_registered_by_keyboard_alone_reaches_the_agency_and_its_outcome_shows(
    infra, system, library_token
):
    reader = await TopicReader(infra.kafka_bootstrap_servers, "ido.referrals.belastingdienst.v1").start(from_end=True)
    posts: list[str] = []
    try:
        async with chromium_page() as page:
            page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
            await page.goto(f"{system['intake']}/desk")
            await check_accessibility(page, "desk-signed-out")
            keys = Keyboard(page)
            await sign_in(page, keys, library_token)
            await wait_for_focus(page, "channel-walk_in")
            await page.wait_for_selector("#today-status:has-text('bezoeken'), #today tbody tr")
            await check_accessibility(page, "desk-form")

            # The API's invalid-params, next to the fields and in the summary, which takes focus.
            await keys.tab_to(page, "duration")
            await keys.type("999")
            await keys.tab_to(page, "save")
            await keys.press("Enter")
            await page.wait_for_selector("#error-summary:not([hidden])")
            await wait_for_focus(page, "error-summary")
            summary = await page.inner_text("#error-summary")
            assert "minstens één" in summary and "480" in summary, summary
            assert await page.get_attribute("#error-summary a[href='#duration']", "href") == "#duration"
            assert await page.get_attribute("#duration", "aria-invalid") == "true"
            assert await page.is_visible("#duration-error")
            await check_accessibility(page, "desk-errors")

            # A BSN in a note is flagged in the browser; the visit is not sent.
            sent_before = len(posts)
            await page.fill("#duration", "")
            await page.focus("#theme-search")
            await keys.type("huurtoeslag")
            await keys.press("Enter")
            await keys.tab_to(page, "note-0")
            await keys.type(f"vroeg naar {BSN}")
            await keys.tab_to(page, "save")
            await keys.press("Enter")
            await page.wait_for_selector("#note-0-error")
            assert "BSN" in await page.inner_text("#error-summary")
            assert len(posts) == sent_before, "a note with a BSN never leaves the browser"
            # The page applies shared/privacy.py's rule, not one of its own.
            for sample in SAMPLES:
                assert await page.evaluate("(text) => containsBsn(text)", sample) == contains_bsn(sample), sample

            # The timed registration: a fresh form (the credential stays for this tab), keys only.
            await page.reload()
            await page.wait_for_selector("#desk:not([hidden])")
            await page.wait_for_selector("#theme-search")
            keys.restart()
            await keys.tab_to(page, "theme-search")
            await keys.type("huurtoeslag")
            await keys.press("Enter")
            await keys.tab_to(page, "help-informed")
            await keys.press(" ")
            await keys.tab_to(page, "duration")
            await keys.type("10")
            await keys.tab_to(page, "consent")
            await keys.press(" ")
            await keys.tab_to(page, "contact-name")
            await keys.type("J. de Vries")
            await keys.tab_to(page, "contact-phone")
            await keys.type("0612345678")
            await keys.tab_to(page, "save")
            async with page.expect_response(
                lambda r: r.url.endswith("/v1/help-requests") and r.request.method == "POST"
            ) as saved:
                await keys.press("Enter")
            answer = await saved.value
            assert answer.status == 201, await answer.text()
            help_request_id = (await answer.json())["id"]
            await page.wait_for_selector("#outcome-section:not([hidden])")
            seconds, presses = keys.seconds, keys.presses
            print(f"\nkeyboard-only registration: {seconds:.1f} s, {presses} key presses")
            assert seconds < 30

            records = await reader.until(lambda r: json.loads(r.value)["data"]["help_request_id"] == help_request_id)
            assert records, "the referral reached the Belastingdienst's topic"
            started = time.monotonic()
            await page.wait_for_selector("#outcome [data-outcome='referred']", timeout=30_000)
            print(f"outcome shown {time.monotonic() - started:.1f} s after the referral event was read")
            outcome = await page.inner_text("#outcome")
            assert "Warm doorverwezen naar Belastingdienst" in outcome, outcome
            await check_accessibility(page, "desk-outcome")

            # The form is cleared; nothing personal is kept in the browser.
            assert await page.input_value("#contact-name") == "" and await page.input_value("#contact-phone") == ""
            assert await page.evaluate("document.querySelectorAll('#chosen li').length") == 0
            assert await page.evaluate("localStorage.length") == 0
            assert await page.evaluate("Object.keys(sessionStorage)") == ["ido-desk-credential"]
            await page.wait_for_selector(f"#today tr[data-visit='{help_request_id}'] li[data-referral]")

            await page.click("#sign-out")
            await page.wait_for_selector("#sign-in-section:not([hidden])")
            assert await page.evaluate("sessionStorage.length") == 0
            assert await page.evaluate("document.querySelectorAll('#today tbody tr').length") == 0
    finally:
        await reader.stop()
