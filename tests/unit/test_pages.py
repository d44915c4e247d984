"""The desk (intake) and the inbox (routing) as served: Dutch, their own script and style
only (a Content-Security-Policy without inline code), the courses URL and the labels in data
attributes; and the CORS allow-list that lets the desk call courses, and nothing else."""

import html
import json
import re

import httpx
from fastapi import FastAPI

from services.intake.entrypoints.http import desk_router
from services.routing.entrypoints.http import inbox_router
from shared import pages
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ido.test")


def attribute(page: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', page)
    assert match, name
    return html.unescape(match.group(1))


async def test_the_desk_is_served_in_dutch_with_its_own_script_and_the_courses_address():
    app = FastAPI()
    app.include_router(desk_router(courses_url='https://courses.ido.test/"><script>'))
    async with client(app) as http:
        page = await http.get("/desk")
        assert page.status_code == 200 and '<html lang="nl">' in page.text
        assert attribute(page.text, "data-courses-url") == 'https://courses.ido.test/"><script>', "escaped"
        assert json.loads(attribute(page.text, "data-labels"))["statuses"]["accepted"] == "Geaccepteerd"
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "connect-src 'self' https://courses.ido.test" in policy
        assert page.headers["cache-control"] == "no-store"
        scripts = ['<script src="/desk/ido-page.js" defer></script>', '<script src="/desk/desk.js" defer></script>']
        assert "<script>" not in page.text.replace(scripts[0], "").replace(scripts[1], "")
        assert "<style" not in page.text
        script = await http.get("/desk/desk.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "localStorage" not in script.text, "nothing personal kept in the browser"
        assert (await http.get("/desk/ido-page.css")).headers["content-type"].startswith("text/css")
        common = await http.get("/desk/ido-page.js")
        assert "function containsBsn" in common.text and "localStorage" not in common.text
        assert common.headers["content-security-policy"] == policy
    assert "/desk" not in json.dumps(app.openapi()), "not part of the API"


async def test_the_inbox_is_served_in_dutch_with_its_own_script():
    app = FastAPI()
    app.include_router(inbox_router())
    async with client(app) as http:
        page = await http.get("/inbox")
        assert page.status_code == 200 and '<html lang="nl">' in page.text
        assert json.loads(attribute(page.text, "data-labels"))["themes"]["toeslagen"] == "Toeslagen"
        assert "connect-src 'self';" in page.headers["content-security-policy"]
        script = await http.get("/inbox/inbox.js")
        assert script.status_code == 200 and "localStorage" not in script.text
        assert (await http.get("/inbox/inbox.css")).status_code == 200
        common = (pages.COMMON / "ido-page.js").read_text(encoding="utf-8")
        assert (await http.get("/inbox/ido-page.js")).text == common, "the pages' one common script"


def runtime_app(cors: str) -> FastAPI:
    settings = ServiceSettings(service_name="courses", port=18003, IDO_CORS_ORIGINS=cors)  # type: ignore[call-arg]
    return ServiceRuntime(settings).http_app(title="test")


async def test_cors_answers_only_the_origins_listed():
    desk = "http://127.0.0.1:8001"
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with client(runtime_app(f"{desk}, http://localhost:8001/")) as http:
        allowed = await http.options("/healthz", headers={"Origin": desk, **preflight})
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == desk
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert "access-control-allow-credentials" not in allowed.headers, "bearer credentials, no cookies"
        other = await http.options("/healthz", headers={"Origin": "https://evil.test", **preflight})
        assert "access-control-allow-origin" not in other.headers
        simple = await http.get("/healthz", headers={"Origin": "http://localhost:8001"})
        assert simple.headers["access-control-allow-origin"] == "http://localhost:8001"
    async with client(runtime_app("")) as http:
        none = await http.get("/healthz", headers={"Origin": desk})
        assert "access-control-allow-origin" not in none.headers, "no allow-list: no CORS"
