"""The private test servers work: each test's database is its own, and Redis comes back after an
outage. (The scale-out tests build on these; a broken fixture should fail here first.)"""

from __future__ import annotations

import socket
import subprocess

from tests.services.servers import PostgresServer, RedisServer


def _psql(server: PostgresServer, url: str, sql: str) -> str:
    done = subprocess.run(
        [str(server.bin_dir / "psql"), url, "-XAtc", sql], check=True, capture_output=True
    )
    return done.stdout.decode().strip()


def test_each_test_gets_an_empty_database_of_its_own(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    assert postgres_url.startswith("postgresql://postgres@127.0.0.1:")
    name = postgres_url.rsplit("/", 1)[1]
    assert _psql(postgres_server, postgres_url, "SELECT current_database()") == name
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert _psql(postgres_server, postgres_url, tables) == "0"
    other = postgres_server.create_database()
    try:
        assert other != name
    finally:
        postgres_server.drop_database(other)
    listed = _psql(postgres_server, postgres_server.url(), "SELECT datname FROM pg_database")
    assert other not in listed.split()


def test_redis_is_empty_for_each_test_and_survives_a_restart(
    redis_server: RedisServer, redis_url: str
) -> None:
    assert redis_url == f"redis://127.0.0.1:{redis_server.port}/0"
    assert redis_server.command("DBSIZE") == b":0"
    assert redis_server.command("SET", "k", "v") == b"+OK"
    redis_server.restart()
    assert redis_server.command("DBSIZE") == b":0"  # an outage loses every key (no persistence)
    with socket.create_connection(("127.0.0.1", redis_server.port), 5):
        pass
