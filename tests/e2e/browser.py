"""Driving the desk and the inbox in a real browser: Playwright on Debian's chromium (never a
browser Playwright downloads), axe-core's rules on every page state, screenshots kept in
.local/artifacts/, and a keyboard that counts its key presses."""

import shutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shared.settings import REPO_ROOT
from tests.conftest import unavailable

ARTEFACTS = REPO_ROOT / ".local" / "artifacts"
SERIOUS = ("serious", "critical")


@asynccontextmanager
async def chromium_page() -> AsyncIterator[Any]:
    """A fresh page in headless chromium; skipped (failed with CI=true) without the browser.
    A script error on the page fails the test when the page closes."""
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        unavailable("chromium is not installed (.ci/run installs Debian's chromium package)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        unavailable("playwright is not installed (the `test` extra)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 1000}, locale="nl-NL")
            errors: list[str] = []

            def script_error(error: Any) -> None:
                errors.append(str(error))

            context.on("page", lambda opened: opened.on("pageerror", script_error))
            page = await context.new_page()
            yield page
            assert not errors, f"script errors on the page: {errors}"
        finally:
            await browser.close()


async def check_accessibility(page: Any, state: str) -> None:
    """No axe-core violation of impact serious or critical in this state; a screenshot of it."""
    from axe_playwright_python.async_playwright import Axe

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTEFACTS / f"{state}.png"), full_page=True)
    results = await Axe().run(page)
    found = results.response["violations"]
    by_impact = {impact: sum(v["impact"] == impact for v in found) for impact in ("minor", "moderate", *SERIOUS)}
    line = f"{state}: {len(results.response['passes'])} rules passed, violations by impact {by_impact}"
    with (ARTEFACTS / "axe.txt").open("a") as record:  # the figures per page, kept with the screenshots
        record.write(line + "\n")
    violations = [v for v in found if v["impact"] in SERIOUS]
    summary = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]]) for v in violations]
    assert not violations, f"{state}: axe-core found {summary}"


class Keyboard:
    """page.keyboard, counting every key pressed (a typed text counts one press per character)."""

    def __init__(self, page: Any) -> None:
        self.keyboard = page.keyboard
        self.presses = 0
        self.started = time.monotonic()

    def restart(self) -> None:
        self.presses, self.started = 0, time.monotonic()

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    async def press(self, key: str, times: int = 1) -> None:
        for _ in range(times):
            await self.keyboard.press(key)
            self.presses += 1

    async def tab(self, times: int = 1) -> None:
        await self.press("Tab", times)

    async def type(self, text: str) -> None:
        await self.keyboard.type(text)
        self.presses += len(text)

    async def tab_to(self, page: Any, element_id: str, limit: int = 40) -> None:
        """Tab until the element has focus (as a person would: Tab and look), failing after `limit`."""
        for _ in range(limit):
            if await page.evaluate("document.activeElement && document.activeElement.id") == element_id:
                return
            await self.press("Tab")
        raise AssertionError(f"#{element_id} not reached with {limit} Tabs: focus order broken?")


async def focused(page: Any) -> str | None:
    """The id of the element with focus (the pages' CSP forbids eval, so no wait_for_function)."""
    return await page.evaluate("document.activeElement && document.activeElement.id")


async def wait_for_focus(page: Any, element_id: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await focused(page) != element_id:
        assert time.monotonic() < deadline, f"focus is on #{await focused(page)}, not #{element_id}"
        await page.wait_for_timeout(50)
