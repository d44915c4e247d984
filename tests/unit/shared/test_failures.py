"""Whose fault a failure is (shared.failures), and what a caller hears of it: a dependency that
is down is a 503 with Retry-After at once; anything else a 500; both application/problem+json."""

import asyncpg
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, RequestTimedOutError, TopicAuthorizationFailedError
from fastapi import FastAPI

from shared.failures import is_transient
from shared.http import install_conventions

TRANSIENT = [
    ConnectionRefusedError("refused"),
    ConnectionResetError("reset"),
    TimeoutError("pool"),
    asyncpg.exceptions.CannotConnectNowError("starting up"),
    asyncpg.exceptions.AdminShutdownError("shutting down"),
    asyncpg.exceptions.TooManyConnectionsError("too many"),
    asyncpg.exceptions.SerializationError("serialize"),
    asyncpg.exceptions.DeadlockDetectedError("deadlock"),
    asyncpg.exceptions.ConnectionDoesNotExistError("closed mid-statement"),
    KafkaConnectionError(),
    RequestTimedOutError(),
    httpx.ConnectError("intake unreachable"),
    asyncpg.exceptions._base.InternalClientError("cannot switch to state 15; another operation (2) is in progress"),
]
THE_WORKS_FAULT = [
    RuntimeError("a bug"),
    LookupError("help request not found"),
    ValueError("bad"),
    asyncpg.exceptions.UniqueViolationError("duplicate key"),
    asyncpg.exceptions.QueryCanceledError("statement timeout"),
    TopicAuthorizationFailedError(),
    FileNotFoundError("no such file"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_a_dependency_that_is_down_is_transient(exc):
    assert is_transient(exc)


def test_a_failure_caused_by_a_dependency_that_went_down_is_transient():
    """asyncpg, rolling back on a connection the server terminated, raises InterfaceError."""
    try:
        try:
            raise asyncpg.exceptions.AdminShutdownError("terminating connection")
        except asyncpg.PostgresError as shutdown:
            raise asyncpg.InterfaceError("cannot call Transaction.rollback(): the connection is closed") from shutdown
    except asyncpg.InterfaceError as closed:
        assert is_transient(closed)
    assert not is_transient(asyncpg.InterfaceError("another operation is in progress"))


@pytest.mark.parametrize("exc", THE_WORKS_FAULT, ids=lambda e: type(e).__name__)
def test_a_failure_of_the_work_itself_is_not(exc):
    assert not is_transient(exc)


async def answer_when_raising(exc: Exception) -> httpx.Response:
    app = FastAPI()
    install_conventions(app, "1.0.0", 1024)

    @app.get("/x")
    async def fails() -> None:
        raise exc

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get("/x")


@pytest.mark.parametrize("exc", TRANSIENT[:9], ids=lambda e: type(e).__name__)
async def test_a_request_meeting_a_dependency_that_is_down_gets_503_with_retry_after(exc):
    answer = await answer_when_raising(exc)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["title"] == "Service temporarily unavailable"


@pytest.mark.parametrize("exc", [RuntimeError("bug"), asyncpg.exceptions.UniqueViolationError("dup")])
async def test_any_other_failure_is_a_500_problem(exc):
    answer = await answer_when_raising(exc)
    assert answer.status_code == 500 and answer.headers["content-type"] == "application/problem+json"
