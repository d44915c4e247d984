"""The dashboard in a real headless Chromium (Debian's package): the page loads, every chart
renders with data, codes are drawn as their Dutch labels (the code in an SVG <title>), the
console stays clean; a screenshot is kept in .local/artifacts/."""

import re
import shutil
import subprocess

import httpx
import pytest

from shared.settings import REPO_ROOT
from tests.conftest import unavailable
from tests.e2e.conftest import credential, url
from tests.kafkatools import eventually

pytestmark = pytest.mark.infra
REPORTING = url("reporting", 8005)
CHARTS = {"rollout", "months", "themes", "locations", "outcomes", "referrals", "courses", "subsidy"}
ARTEFACTS = REPO_ROOT / ".local" / "artifacts"


def chromium(*args: str, profile: str) -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        unavailable("chromium is not installed (.ci/run installs Debian's chromium package)")
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=8000",
        "--window-size=1280,1400",
    ]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


async def test_the_dashboard_renders_every_chart_without_console_errors(system, intake, tmp_path):
    library = {"Authorization": f"Bearer {credential('--library', 'rivierenland')}"}
    kb_token = credential("--kb")
    visit = {
        "channel": "walk_in",
        "questions": [{"category": "digital_government", "theme": "werk-en-uitkering", "subtheme": "ww"}],
    }
    for _ in range(6):  # five or more, so the theme is shown for the country (smaller is "<5")
        assert (await intake.post("/v1/help-requests", json=visit, headers=library)).status_code == 201
    async with httpx.AsyncClient(base_url=REPORTING, timeout=10) as reporting:
        page = await reporting.get("/dashboard")
        assert page.status_code == 200 and 'lang="nl"' in page.text

        async def themes_counted():
            answer = await reporting.get("/v1/monitor/questions", headers={"Authorization": f"Bearer {kb_token}"})
            return answer.json()["counts"] or None

        await eventually(themes_counted)

    address = f"{REPORTING}/dashboard#token={kb_token}"
    dom = chromium("--dump-dom", address, profile=str(tmp_path / "dom"))
    assert dom.returncode == 0, dom.stderr[-2000:]
    charts = dict(re.findall(r'<svg[^>]*data-chart="([a-z]+)"[^>]*>(.*?)</svg>', dom.stdout))
    assert set(charts) == CHARTS
    for with_data in ("rollout", "months", "themes"):  # the visit above guarantees these have data
        assert charts[with_data].count("<rect") >= 1, f"{with_data} drawn from data"
    # The theme is drawn by its Dutch label from GET /v1/labels, its code in the tooltip.
    werk = "Werk en uitkering"
    assert re.search(rf"<text[^>]*>{werk}<title>werk-en-uitkering</title></text>", charts["themes"]), charts["themes"]
    assert charts["themes"].count(">werk-en-uitkering<") == 1, "the code only in the tooltip"
    assert re.search(r'id="status" role="status"></p>', dom.stdout), "no loading error shown"
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    shot = chromium(f"--screenshot={ARTEFACTS / 'dashboard.png'}", address, profile=str(tmp_path / "shot"))
    assert shot.returncode == 0 and (ARTEFACTS / "dashboard.png").stat().st_size > 10_000
