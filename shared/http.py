"""HTTP conventions every service follows: problem+json errors (RFC 9457) listing every
invalid field, an `API-Version` header, a body size limit, bearer credentials, and the
/healthz and /readyz endpoints."""

import base64
import json
import math
import time
from collections.abc import Awaitable, Callable, Container, Mapping
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qsl

import asyncpg
import httpx
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import ExpiredCredential, InvalidCredential, KeyStore, Principal, verify_credential
from shared.failures import is_transient
from shared.logging import get_logger

log = get_logger(__name__)

PROBLEM = "application/problem+json"


class Problem(Exception):
    """Raise to answer with a problem+json document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(title)
        self.status, self.title, self.detail = status, title, detail
        self.headers, self.extensions = headers, extensions


def problem_response(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body = {"type": "about:blank", "status": status, "title": title, **({"detail": detail} if detail else {})}
    body |= extensions or {}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


class ProblemDetails(BaseModel):
    """An error, as RFC 9457 problem details (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    status: int
    title: str
    detail: str | None = None
    invalid_params: list[dict[str, Any]] | None = Field(
        None, alias="invalid-params", description="every invalid field, with the reason (400, 422)"
    )


def _documented(description: str) -> dict[str, Any]:
    schema = ProblemDetails.model_json_schema(by_alias=True)
    return {"description": description, "content": {PROBLEM: {"schema": schema}}}


# The errors every operation may answer, documented once for the whole API (OpenAPI `responses`).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _documented("The body is not valid JSON, or a parameter is malformed"),
    401: _documented("No credential, or one that is invalid, expired or revoked"),
    403: _documented("The credential's role or organisation may not do this"),
    404: _documented("Not found, or not the caller's to see"),
    409: _documented("Conflicts with the current state (a transition not allowed, a reused key)"),
    413: _documented("The body is larger than this API accepts"),
    415: _documented("The body is not application/json"),
    422: _documented("Well-formed but invalid: every invalid field in invalid-params"),
    429: _documented("Too many requests for this credential: see Retry-After"),
    500: _documented("An error of the service itself"),
    503: _documented("A dependency (database, broker) is unavailable for now: see Retry-After"),
}


def invalid_field(field: str, reason: str, status: int = 422) -> Problem:
    """Well-formed input that is not acceptable here (an unknown location, a closed window):
    the same answer as a schema error, naming the field."""
    title = "Invalid request" if status == 422 else "Bad request"
    return Problem(status, title, reason, extensions={"invalid-params": [{"name": field, "reason": reason}]})


def field_problem(exc: Exception) -> JSONResponse:
    """The answer for a domain error that carries `field` and `reason`."""
    problem = invalid_field(getattr(exc, "field", "(body)"), getattr(exc, "reason", str(exc)))
    return problem_response(problem.status, problem.title, problem.detail, extensions=problem.extensions)


def _field_name(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header"):
        parts = parts[1:]
    return ".".join(parts) or "(body)"


def invalid_params(errors: list[dict]) -> list[dict[str, str]]:
    # The reason never echoes the input: it may hold personal data.
    return [{"name": _field_name(e["loc"]), "reason": e["msg"]} for e in errors]


# What a dependency that is down raises (shared.failures sorts out which of them are transient).
DEPENDENCY_FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions._base.InternalClientError,
    OSError,
    KafkaError,
    httpx.TransportError,
)
RETRY_AFTER_SECONDS = 5


def install_conventions(app: FastAPI, api_version: str, max_body_bytes: int) -> None:
    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, headers=exc.headers, extensions=exc.extensions)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        params = invalid_params(list(exc.errors()))
        json_broken = any(e["type"] == "json_invalid" for e in exc.errors())
        return problem_response(
            400 if json_broken else 422,
            "Request body is not valid JSON" if json_broken else "Invalid request",
            f"{len(params)} invalid field(s)",
            extensions={"invalid-params": params},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:  # every method of the path, not only those of the first route
            headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(app, request))}
        return problem_response(exc.status_code, str(exc.detail), headers=headers)

    async def _dependency(_: Request, exc: Exception) -> JSONResponse:
        """The database or broker is unavailable: 503 at once, never a hang or a 500."""
        if not is_transient(exc):
            log.error("request failed", error=type(exc).__name__, exc_info=exc)
            return problem_response(500, "Internal error")
        log.warning("dependency unavailable; answered 503", error=type(exc).__name__)
        return problem_response(
            503,
            "Service temporarily unavailable",
            "the database or the message broker is unavailable; nothing was stored, try again shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )

    for dependency_failure in DEPENDENCY_FAILURES:
        app.add_exception_handler(dependency_failure, _dependency)

    async def _bug(_: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the exception after this answer (its server-error handler re-raises).
        return problem_response(500, "Internal error")

    app.add_exception_handler(Exception, _bug)

    app.add_middleware(ApiVersionHeader, version=api_version)
    app.add_middleware(JsonBodyGuard)  # inside the size limit: a body is read whole only once allowed
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)


def _allowed_methods(app: FastAPI, request: Request) -> list[str]:
    """The methods of every route whose path matches the request's."""
    methods: set[str] = set()
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


class ApiVersionHeader:
    """Every response carries `API-Version` (plain ASGI: no task or stream per request)."""

    def __init__(self, app: ASGIApp, version: str) -> None:
        self.app, self.header = app, (b"api-version", version.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, with_version)


MAX_JSON_DEPTH = 32


class JsonBodyGuard:
    """A JSON body must be one that every JSON parser reads the same way, or it is refused with
    400 before any handler sees it: valid UTF-8, no key twice in one object (parsers disagree on
    which one wins), nesting at most MAX_JSON_DEPTH deep, numbers a parser can hold. A text that
    PostgreSQL cannot store (a NUL, a lone surrogate), in the body or the URL, is well-formed but
    unacceptable: 422 naming each such field."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (unstorable := _unstorable_in_url(scope)):
            # No parameter may hold a NUL (PostgreSQL cannot store or compare one).
            return await _unstorable_problem(unstorable)(scope, receive, send)
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"").split(b";")[0].strip().lower()
        if scope["type"] != "http" or content_type != b"application/json":
            return await self.app(scope, receive, send)
        body, more = b"", True
        try:
            while more:
                message = await receive()
                body += message.get("body", b"")
                more = message.get("more_body", False)
        except Problem as exc:  # the size limit, while reading
            return await problem_response(exc.status, exc.title, exc.detail)(scope, receive, send)
        if body:
            value, problem = read_json_body(body)
            if problem:
                return await problem_response(400, "Request body is not acceptable JSON", problem)(scope, receive, send)
            if unstorable := unstorable_fields(value):
                return await _unstorable_problem(unstorable)(scope, receive, send)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def read_json_body(body: bytes) -> tuple[Any, str | None]:
    """The JSON value of this body, or why it is refused (400)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None, "the body is not valid UTF-8"

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("a key appears twice in one object")
        return dict(pairs)

    too_deep = f"nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        value = json.loads(text, object_pairs_hook=no_duplicates)
    except RecursionError:
        return None, too_deep
    except ValueError as exc:
        return None, str(exc).split(":")[0] if "twice" in str(exc) else "the body is not valid JSON"
    return (None, too_deep) if _depth(value) > MAX_JSON_DEPTH else (value, None)


UNSTORABLE = "holds a NUL character or an unpaired surrogate, which no text may hold"


def unstorable_fields(value: Any) -> list[str]:
    """The fields (dotted paths, as in invalid-params) of a well-formed JSON value whose name
    or text PostgreSQL cannot store: its JSON is fine, its content is not (422)."""
    found, stack = [], [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str) and not _storable(item):
            found.append(path or "(body)")
        elif isinstance(item, dict):
            for key, inner in item.items():
                if _storable(key):
                    stack.append((f"{path}.{key}" if path else key, inner))
                else:  # the name itself cannot be shown either
                    found.append(f"{path}.(a field name)" if path else "(a field name)")
        elif isinstance(item, list):
            stack += [(f"{path}.{i}" if path else str(i), inner) for i, inner in enumerate(item)]
    return sorted(found)


def _unstorable_in_url(scope: Scope) -> list[str]:
    if "\x00" in scope["path"]:
        return ["(path)"]
    pairs = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return sorted({name if _storable(name) else "(query)" for name, value in pairs if not _storable(name + value)})


def _unstorable_problem(fields: list[str]) -> JSONResponse:
    detail = f"{', '.join(fields)}: {UNSTORABLE}"
    params = [{"name": field, "reason": UNSTORABLE} for field in fields]
    return problem_response(422, "Invalid request", detail, extensions={"invalid-params": params})


def _storable(text: str) -> bool:
    """Text PostgreSQL can store: valid UTF-8 (no lone surrogate, as JSON's \\ud800 escapes make)
    and no NUL."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _depth(value: Any) -> int:
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if isinstance(item, dict):
            stack += [(v, level + 1) for v in item.values()]
        elif isinstance(item, list):
            stack += [(v, level + 1) for v in item]
    return deepest


class BodySizeLimit:
    """Refuse bodies over the limit with 413, whether Content-Length says so or the stream does."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._too_large(scope, receive, send)
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise Problem(413, "Request body too large", f"at most {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(413, "Request body too large", f"at most {self.max_bytes} bytes")
        await response(scope, receive, send)


_bearer = HTTPBearer(auto_error=False)


async def require_json(request: Request) -> None:
    """A dependency that answers 415 before the body is parsed, unless it is JSON."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Problem(415, "Unsupported media type", "send the body as application/json")


class RateLimiter:
    """A token bucket per credential: `rate` requests per second on average, bursts up to `burst`.
    Per service instance, in memory: a limit against runaway clients, not a quota ledger."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.burst, self.clock = rate, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # credential -> (tokens, last refill)

    def retry_after(self, key: str) -> int:
        """Take one token; 0 if allowed, else the whole seconds to wait before the next try."""
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0
        self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / self.rate))


def credential_dependency(
    store: KeyStore, revoked: Container[str] = (), limiter: RateLimiter | None = None
) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency that answers 401 (problem+json) unless a valid, unrevoked credential
    is sent, and 429 with Retry-After when that credential exceeds its rate."""

    # async: a plain `def` dependency would run in a worker thread, a thread hop per request.
    async def authenticate(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if creds is None:
            raise Problem(401, "Credential required", "send Authorization: Bearer <credential>")
        try:
            principal = verify_credential(store, creds.credentials)
        except ExpiredCredential as expired:
            raise Problem(401, "Credential expired", str(expired)) from None
        except InvalidCredential:
            raise Problem(401, "Invalid credential") from None
        if principal.credential_id in revoked:
            raise Problem(401, "Credential revoked")
        if limiter is not None and (wait := limiter.retry_after(principal.credential_id)):
            raise Problem(429, "Too many requests", f"retry after {wait} s", headers={"Retry-After": str(wait)})
        return principal

    return authenticate


def health_router(readiness: Mapping[str, Callable[[], Awaitable[bool]]]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        checks = {name: "ok" if await check() else "unavailable" for name, check in readiness.items()}
        ready = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks}, status_code=200 if ready else 503
        )

    return router


def next_page(at: datetime, last_id: str) -> str:
    """An opaque, URL-safe cursor for a list ordered by (time, id): where the next page starts."""
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{last_id}".encode()).decode()


def page_after(after: str) -> tuple[datetime, str]:
    """The (time, id) a cursor of `next_page` names; a 422 on the `after` parameter otherwise."""
    try:
        at, last_id = base64.urlsafe_b64decode(after.encode()).decode().split("|", 1)
        return datetime.fromisoformat(at), last_id
    except ValueError:
        raise invalid_field("after", "not a cursor: use the `next` of the previous page") from None
