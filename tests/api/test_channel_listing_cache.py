"""The channel listing's kept answer (issue 15) never hides a change: every kind of change to
what it shows is in the very next listing (the branch, a file nobody tells the server about,
within ``max_age``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from loop_server.access import CALLER, Caller
from loop_server.api._lean import LeanRequest, LeanRoutes
from loop_server.api.app import create_quart_app
from loop_server.api.deps import ApiDeps
from loop_server.domain import ChannelUpsert, NewMessage
from loop_server.services.channels import StoreChannelLister
from loop_server.services.git import GitBranchReader
from loop_server.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Running:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    async def running_channel_ids(self) -> set[str]:
        return set(self.ids)


class Active:
    def __init__(self) -> None:
        self.ids: set[str] = set()

    def active_chat_channel_ids(self) -> set[str]:
        return set(self.ids)


class Listing:
    def __init__(self, store: Store, loop_dir: str, max_age: float) -> None:
        self.store = store
        self.lister = StoreChannelLister(store)
        self.running = Running()
        self.active = Active()
        self.branches = GitBranchReader(max_age=max_age)
        deps = ApiDeps(
            scheduler=None,  # type: ignore[arg-type]
            background=None,  # type: ignore[arg-type]
            readme="",
            store=self.lister,
            loop_dir=loop_dir,
            platform="local",
            running_channels=self.running,
            active_chats=self.active,
            branches=self.branches,
        )
        self.lean = LeanRoutes()
        create_quart_app(deps, self.lean)

    async def get(self, query: bytes = b"", caller: object = None) -> list[dict[str, Any]]:
        match = self.lean.match("GET", "/api/channels")
        assert match is not None
        core, params = match
        scope = {} if caller is None else {CALLER: caller}
        answer = await self.lean.answer(
            core, LeanRequest("GET", "/api/channels", query, b"", scope), params
        )
        assert answer.status == 200, answer.body
        items: list[dict[str, Any]] = json.loads(answer.body)
        return items

    async def by_id(self) -> dict[str, dict[str, Any]]:
        return {item["channel_id"]: item for item in await self.get()}

    async def upsert(self, channel_id: str, **fields: Any) -> None:
        row = ChannelUpsert(channel_id=channel_id, platform="local", **fields)
        await self.store.channels.upsert(row, NOW)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "loop.db") as opened:
        yield opened


def _message(msg_id: str) -> NewMessage:
    return NewMessage("m", msg_id, "u", "u", "hi", is_bot=False, created_at=NOW)


def _git_repo(path: Path, branch: str) -> None:
    """A repository as ``git init`` + a commit leave it, written by hand (no git needed)."""
    (path / ".git" / "refs" / "heads").mkdir(parents=True)
    (path / ".git" / "HEAD").write_text(f"ref: refs/heads/{branch}\n")
    (path / ".git" / "refs" / "heads" / branch).write_text("0" * 40 + "\n")


async def test_every_change_is_in_the_next_listing(store: Store, tmp_path: Path) -> None:
    listing = Listing(store, str(tmp_path / "loop"), max_age=3600)
    assert await listing.get() == []
    await listing.upsert("a", name="alpha", active=True)
    assert [c["name"] for c in await listing.get()] == ["alpha"]
    # Unchanged: the very same answer is served again.
    reads = listing.branches.reads
    assert [c["name"] for c in await listing.get()] == ["alpha"]
    assert listing.branches.reads == reads

    # A row's update (name, active, dir), another channel, a thread.
    project = tmp_path / "project"
    project.mkdir()
    await listing.upsert("a", name="alpha2", active=False, dir_path=str(project))
    await listing.upsert("b", name="beta", active=True)
    await listing.upsert("t", name="thread", active=True, parent_id="a")
    items = await listing.by_id()
    assert items["a"]["name"] == "alpha2"
    assert items["a"]["active"] is False
    assert items["a"]["dir_path"] == str(project)
    assert items["t"]["parent_id"] == "a"
    assert items["t"]["dir_path"] == str(tmp_path / "loop" / "a" / "work")
    assert set(items) == {"a", "b", "t"}

    # A message to an unknown channel creates it.
    await store.messages.insert(
        _message("1"),
        auto_create_platform="local",
    )
    assert "m" in await listing.by_id()
    # A message to a known channel changes nothing listed (and keeps the answer).
    await store.messages.insert(
        _message("2"),
        auto_create_platform="local",
    )
    assert set(await listing.by_id()) == {"a", "b", "t", "m"}

    # Containers and agent runs starting and ending.
    listing.running.ids.add("b")
    assert (await listing.by_id())["b"]["container_running"] is True
    listing.active.ids.add("a")
    assert (await listing.by_id())["a"]["agent_running"] is True
    listing.running.ids.clear()
    listing.active.ids.clear()
    items = await listing.by_id()
    assert not items["b"]["container_running"]
    assert not items["a"]["agent_running"]

    # A session id is not listed, but its write must not break anything either.
    await store.channels.set_session_id("a", "s1", NOW)
    assert set(await listing.by_id()) == {"a", "b", "t", "m"}

    # A new dir that is a repository: its branch at once (the dirs changed).
    repo = tmp_path / "repo"
    _git_repo(repo, "main")
    await listing.upsert("b", name="beta", active=True, dir_path=str(repo))
    assert (await listing.by_id())["b"]["branch"] == "main"

    # Deletions: a thread with its parent, then a channel.
    await store.channels.delete("a")
    assert set(await listing.by_id()) == {"b", "m"}
    await store.channels.delete_children("b")
    await store.channels.delete("m")
    assert set(await listing.by_id()) == {"b"}

    # Filtered listings (a query, an agent's) are computed afresh and agree with the whole one.
    assert [c["channel_id"] for c in await listing.get(b"query=BET")] == ["b"]
    agent = Caller(channel_id="b")
    assert [c["channel_id"] for c in await listing.get(caller=agent)] == ["b"]


async def test_a_branch_change_is_listed_within_max_age(store: Store, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _git_repo(repo, "main")
    listing = Listing(store, str(tmp_path / "loop"), max_age=0.2)
    await listing.upsert("c", name="c", dir_path=str(repo))
    assert (await listing.by_id())["c"]["branch"] == "main"
    # `git checkout -b topic`, in a terminal the server knows nothing about.
    (repo / ".git" / "refs" / "heads" / "topic").write_text("0" * 40 + "\n")
    (repo / ".git" / "HEAD").write_text("ref: refs/heads/topic\n")
    await trio.sleep(0.25)
    assert (await listing.by_id())["c"]["branch"] == "topic"
    # Detached, then no repository at all.
    (repo / ".git" / "HEAD").write_text("1" * 40 + "\n")
    await trio.sleep(0.25)
    assert (await listing.by_id())["c"]["branch"] == "HEAD"
    (repo / ".git" / "HEAD").unlink()
    (repo / ".git" / "refs" / "heads" / "topic").unlink()
    (repo / ".git" / "refs" / "heads" / "main").unlink()
    for sub in ("refs/heads", "refs", ""):
        (repo / ".git" / sub).rmdir()
    await trio.sleep(0.25)
    assert "branch" not in (await listing.by_id())["c"]


async def test_the_kept_listing_is_byte_for_byte_the_computed_one(
    store: Store, tmp_path: Path
) -> None:
    """The whole listing is joined from kept items; a query's is encoded whole (``go_json``):
    with a query every name matches, both must be the same bytes."""
    listing = Listing(store, str(tmp_path / "loop"), max_age=3600)

    async def both() -> bytes:
        match = listing.lean.match("GET", "/api/channels")
        assert match is not None
        core, params = match
        bodies = []
        for query in (b"", b"query=x"):
            request = LeanRequest("GET", "/api/channels", query, b"", {})
            bodies.append((await listing.lean.answer(core, request, params)).body)
        assert bodies[0] == bodies[1]
        return bodies[0]

    assert await both() == b"[]\n"
    for i, name in enumerate(["x<b>&amp;</b>", "x é 漢字 🎉", "x\u2028\u2029", 'x "q" \\ \b']):
        await listing.upsert(f"c{i}", name=name, active=i % 2 == 0)
    await both()
    listing.running.ids.add("c1")
    listing.active.ids.add("c2")
    await both()
    await listing.upsert("c3", name="x renamed", active=True)
    await store.channels.delete("c0")
    body = await both()
    items = {c["channel_id"]: c for c in json.loads(body)}
    assert set(items) == {"c1", "c2", "c3"}
    assert items["c3"]["name"] == "x renamed"
    assert items["c1"]["container_running"] is True
    assert items["c2"]["agent_running"] is True
