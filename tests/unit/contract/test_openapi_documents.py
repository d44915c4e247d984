"""Every service's OpenAPI document is valid OpenAPI and follows the API design rules we hold
to (after the NL API Design Rules: versioned paths, kebab-case, no trailing slashes, problem+json)."""

import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from services.courses.bootstrap import build_app as courses
from services.intake.bootstrap import build_app as intake
from services.reporting.bootstrap import build_app as reporting
from services.routing.bootstrap import build_app as routing
from services.subsidy.bootstrap import build_app as subsidy

SERVICES: dict[str, Any] = {
    "intake": intake,
    "routing": routing,
    "courses": courses,
    "subsidy": subsidy,
    "reporting": reporting,
}
SEGMENT = re.compile(r"^([a-z0-9]+(-[a-z0-9]+)*|\{[a-z_]+\})(\.json|\.csv)?$")


@pytest.fixture(scope="module", params=list(SERVICES))
def spec(request) -> dict:
    return SERVICES[request.param]().openapi()


def test_the_document_is_valid_openapi(spec):
    validate(spec)


def test_paths_are_versioned_kebab_case_without_trailing_slash(spec):
    for path in spec["paths"]:
        if path in ("/healthz", "/readyz"):
            continue
        assert path.startswith("/v1/"), path
        assert not path.endswith("/"), path
        assert all(SEGMENT.match(segment) for segment in path.strip("/").split("/")[1:]), path


def test_every_operation_is_documented(spec):
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary") or operation.get("description"), f"{method.upper()} {path}"
            assert operation.get("responses"), f"{method.upper()} {path}"
