"""Poison at the edge (issue 12.5): bodies that JSON parsers read differently, or that could
exhaust a parser, are refused with 400 (413 when too large) before any handler; never a 500."""

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from shared.http import MAX_JSON_DEPTH, install_conventions

MAX_BODY = 64 * 1024


class Visit(BaseModel):
    channel: str
    minutes: int | None = None


def app() -> FastAPI:
    service = FastAPI()
    install_conventions(service, "1.0.0", MAX_BODY)

    @service.post("/visits")
    async def register(visit: Visit) -> dict:
        return visit.model_dump()

    return service


async def post(body: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.post("/visits", content=body, headers={"Content-Type": "application/json"})


BAD = {
    "deep nesting": ('{"channel": "phone", "x": ' + "[" * 5000 + "]" * 5000 + "}", 400, "nested deeper"),
    "a little too deep": (
        '{"channel": "phone", "x": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}",
        400,
        "nested deeper",
    ),
    "10 MB string": ('{"channel": "' + "x" * 10_000_000 + '"}', 413, "at most"),
    "invalid UTF-8": (b'{"channel": "\xff\xfe"}', 400, "UTF-8"),
    "duplicate keys": ('{"channel": "phone", "channel": "email"}', 400, "twice"),
    "huge integer": ('{"channel": "phone", "minutes": 1' + "0" * 5000 + "}", 400, "not valid JSON"),
    "number out of range": ('{"channel": "phone", "minutes": 1e400}', 422, None),
    "not JSON": ("{channel: phone", 400, None),
    "a NUL in a text": ('{"channel": "pho\\u0000ne"}', 422, "NUL"),
    "an unpaired surrogate": ('{"channel": "\\uda82x"}', 422, "surrogate"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
async def test_a_malformed_body_gets_a_4xx_problem_and_never_a_crash(case):
    body, status, says = BAD[case]
    answer = await post(body if isinstance(body, bytes) else body.encode())
    assert answer.status_code == status, answer.text[:300]
    assert answer.headers["content-type"] == "application/problem+json"
    if says:
        assert says in answer.json().get("detail", "") + answer.json()["title"]


async def test_a_sound_body_passes_the_guard_unchanged():
    answer = await post(b'{"channel": "phone", "minutes": 15}')
    assert answer.status_code == 200 and answer.json() == {"channel": "phone", "minutes": 15}


async def test_a_nul_in_the_query_string_is_a_422_naming_the_parameter_not_a_database_error():
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        answer = await client.post("/visits?theme=a%00b&page=2", content=b'{"channel": "phone"}')
    assert answer.status_code == 422 and "NUL" in answer.json()["detail"]
    assert [p["name"] for p in answer.json()["invalid-params"]] == ["theme"]


async def test_every_text_that_cannot_be_stored_is_named_in_one_answer():
    answer = await post(b'{"channel": "a\\u0000", "notes": ["ok", "\\ud800"], "x": {"\\u0000": 1}}')
    assert answer.status_code == 422
    names = [p["name"] for p in answer.json()["invalid-params"]]
    assert names == ["channel", "notes.1", "x.(a field name)"], names
