"""What the subsidy integration tests share: one subsidy instance's HTTP API, in process, on a
database pool of its own; the caller is named in test headers instead of a credential."""

from datetime import datetime
from typing import cast

import httpx
from fastapi import FastAPI, Request

from services.subsidy.entrypoints import http
from shared.auth import Principal, Role
from shared.http import install_conventions
from shared.outbox import EventFactory

EVENTS = EventFactory(service="subsidy", oin="00000001003214345000", base_url="http://subsidy")
KB = {"x-role": "kb", "x-organisation": "kb"}


def subsidy_api(db, now: datetime) -> httpx.AsyncClient:
    async def authenticated(request: Request) -> Principal:
        role, organisation = request.headers["x-role"], request.headers["x-organisation"]
        return Principal(role=cast(Role, role), organisation=organisation, credential_id=f"{organisation}-1")

    app = FastAPI()
    install_conventions(app, "test", 64 * 1024)
    http.install_error_answers(app)
    app.include_router(http.build_router(authenticated=authenticated, db=db, events=EVENTS, clock=lambda: now))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://subsidy")
