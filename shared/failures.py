"""Whose fault a failure is.

A dependency that is down or busy (PostgreSQL or Kafka unreachable, the pool exhausted, the
server shutting down, a transaction that lost a serialization race or a deadlock) is not the
fault of the record or request being handled: the work is kept and tried again once the
dependency is back, and an HTTP caller is told to retry (503 with Retry-After). Anything else
(a record that breaks a rule, a bug) fails the same way every time: a record goes to its DLQ,
a request gets its 4xx or a 500."""

import errno
import socket

import asyncpg
import httpx
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

# SQLSTATE classes that say "the server, not the statement": connection exception (08),
# insufficient resources (53), operator intervention (57: shutdown, cannot connect now) and
# transaction rollback (40: serialization failure, deadlock). 57014 (a statement cancelled by
# its timeout) is the statement's own doing, and is left out.
TRANSIENT_SQLSTATE_CLASSES = ("08", "40", "53", "57")
NOT_TRANSIENT_SQLSTATES = ("57014",)


def is_transient(exc: BaseException) -> bool:
    """True if `exc` says a dependency is unavailable for now, not that the work is wrong; also
    when it was caused by such a failure (asyncpg's "connection is closed" after the server
    terminated it, raised while rolling back)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if _transient_itself(exc):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def _transient_itself(exc: BaseException) -> bool:
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        return state[:2] in TRANSIENT_SQLSTATE_CLASSES and state not in NOT_TRANSIENT_SQLSTATES
    if isinstance(exc, KafkaError):
        return bool(exc.retriable) or isinstance(exc, KafkaConnectionError | KafkaTimeoutError)
    # A connection refused or reset, a pool that had no connection to give in time, a
    # connection the server closed in the middle of a statement, an HTTP dependency unreachable.
    return isinstance(
        exc,
        ConnectionError
        | TimeoutError
        | socket.gaierror
        | asyncpg.exceptions.ConnectionDoesNotExistError
        # "cannot switch to state ...": asyncpg's protocol on a connection the server dropped
        # mid-operation (seen while PostgreSQL stopped under load); the pool discards it.
        | asyncpg.exceptions._base.InternalClientError
        | httpx.TransportError,
    ) or (isinstance(exc, OSError) and exc.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH))
