"""The staff pages (the desk on intake, the inbox on routing): served the same way by each
service. A page is its HTML (placeholders filled by the service), its own script and style, and
the pages' common script and style (shared/static/), all under its own path and one
Content-Security-Policy that lets it load only these and talk only to `connect_src`."""

import html
import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from shared.http import Problem

COMMON = Path(__file__).parent / "static"
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


def labels_attribute(labels: dict[str, Any]) -> str:
    """Dutch labels for the page's script, as an HTML attribute value (escaped)."""
    return html.escape(json.dumps(labels, ensure_ascii=False), quote=True)


def page_router(
    name: str, static: Path, page: str, *, title: str, whose: str, connect_src: str = "'self'"
) -> APIRouter:
    """GET /<name>: `page`, its HTML, with the common top (header, session, sign-in form: in
    Dutch, `title` after the platform's name, the credential asked for as `whose` key) in place
    of `__TOP__`; and /<name>/<file> for the page's own `<name>.js` and `<name>.css` (those that
    exist in `static`) and the common `ido-page.js` and `ido-page.css`."""
    router = APIRouter()
    top = (COMMON / "ido-page-top.html").read_text(encoding="utf-8").split("-->\n", 1)[1]
    page = page.replace(
        "__TOP__", top.replace("__TITLE__", html.escape(title)).replace("__WHOSE__", html.escape(whose))
    )
    headers = {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect_src}; "
            "img-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
        ),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
    }
    files = [COMMON / "ido-page.js", COMMON / "ido-page.css", static / f"{name}.js", static / f"{name}.css"]
    assets = {f.name: (f.read_text(encoding="utf-8"), MEDIA_TYPES[f.suffix]) for f in files if f.exists()}

    @router.get(f"/{name}", response_class=HTMLResponse, include_in_schema=False)
    async def serve_page() -> HTMLResponse:
        return HTMLResponse(page, headers=headers)

    @router.get(f"/{name}/{{file}}", include_in_schema=False)
    async def serve_asset(file: str) -> Response:
        if file not in assets:
            raise Problem(404, "Not found")
        body, media_type = assets[file]
        return Response(body, media_type=media_type, headers=headers)

    return router
