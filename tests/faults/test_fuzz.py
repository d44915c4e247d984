"""F6 (issue 12.4) and poison at the edge (12.5): every HTTP API fuzzed from its own OpenAPI
document with schemathesis, every check on, against the running services: no 5xx, every error
application/problem+json, every answer as documented, schema-valid input accepted and invalid
input refused. Our bodies are also checked against data (the theme taxonomy, known libraries
and agencies, consent, no BSN), so a schema-valid body may rightly get 422: schemathesis.toml
says so. At least 1,000 generated cases per service (IDO_FAULT_FUZZ_EXAMPLES examples per
operation and phase; CI may run fewer)."""

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.settings import REPO_ROOT
from tests.e2e.conftest import credential
from tests.faults import harness
from tests.faults.test_fuzz_bodies import MALFORMED

pytestmark = [pytest.mark.infra, pytest.mark.faults]

ST = Path(sys.executable).parent / "st"
EXAMPLES = harness.scaled("FUZZ_EXAMPLES", 150)  # subsidy, the smallest API, made 995-1,217 cases at 80
MIN_CASES = harness.scaled("FUZZ_MIN_CASES", 1000)
# Whose credential reaches most of each API: libraries register, the KB manages reference data.
CALLERS = {"intake": "library", "routing": "kb", "courses": "library", "subsidy": "kb", "reporting": "kb"}


FUZZ_PORT = 8600  # the isolated copy: intake 8601, routing 8602, ...


@pytest.fixture(scope="module")
def system(infra):
    """A separate copy of the five services for the fuzzer: its own databases (created empty,
    dropped after) and consumer groups, on ports 86xx, so what it writes never touches the
    platform's own data. Its events go to the platform's topics like any client's would."""
    copy = asyncio.run(harness.IsolatedCopy.start(infra, FUZZ_PORT))
    yield copy
    asyncio.run(copy.stop())


@pytest.mark.parametrize("service", harness.SERVICES)
def test_f6_every_api_fuzzed_from_its_openapi_document(system: "harness.IsolatedCopy", service):
    token = credential("--kb") if CALLERS[service] == "kb" else credential("--library", "venlo")
    result = subprocess.run(
        [
            str(ST),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{system.base(service)}/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261206",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    generated = re.search(r"(\d+) generated", result.stdout)
    print(f"\nF6 {service}: {generated.group(0) if generated else '?'}; {result.stdout.strip().splitlines()[-1]}")
    report = REPO_ROOT / ".local" / "logs" / f"fuzz-{service}.txt"
    report.write_text(result.stdout)
    failures = result.stdout.split("=== FAILURES ===", 1)[-1]
    assert result.returncode == 0, f"{service}: see {report}\n{failures[:6000]}"
    assert generated and int(generated.group(1)) >= MIN_CASES, f"{service}: {generated and generated.group(0)}"


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
def test_malformed_bodies_get_4xx_from_every_service_and_none_crashes(system: "harness.IsolatedCopy", case):
    body, status = MALFORMED[case]
    targets = {
        "intake": "/v1/help-requests",
        "routing": "/v1/routing-rules",
        "courses": "/v1/course-runs",
        "subsidy": "/v1/applications",
        "reporting": "/v1/admin/rebuild",
    }
    token = credential("--kb")
    with httpx.Client(timeout=30) as client:
        for service, path in targets.items():
            method = "PUT" if service == "routing" else "POST"
            answer = client.request(
                method,
                system.base(service) + path,
                content=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            assert answer.status_code == status, f"{service}: {answer.status_code} {answer.text[:200]}"
            assert answer.headers["content-type"] == "application/problem+json"
            assert client.get(system.base(service) + "/healthz").status_code == 200, f"{service} still serves"
