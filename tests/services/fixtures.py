"""Fixtures for the scale-out tests: ``postgres_url`` and ``redis_url`` (see ``servers``).

A test asking for one of them is marked ``postgres`` / ``redis`` (tests/conftest.py), so
``-m "not postgres and not redis"`` is the loop without them. Without the programs the tests
skip loudly, and fail instead where ``CI=true`` or ``LOOP_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.services.servers import PostgresServer, RedisServer, ServiceUnavailable


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true" or os.environ.get("LOOP_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (CI=true or LOOP_REQUIRE_SERVICES=1: a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer.start()
    except ServiceUnavailable as err:
        _unavailable(str(err))
        raise AssertionError("unreachable") from err
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's PostgreSQL server, dropped afterwards."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = RedisServer.start()
    except ServiceUnavailable as err:
        _unavailable(str(err))
        raise AssertionError("unreachable") from err
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis server, emptied first (a test that restarted it gets it back up)."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.restart()
    reply = redis_server.command("FLUSHALL")
    assert reply == b"+OK", reply
    return redis_server.url
