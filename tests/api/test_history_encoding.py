"""A history page from kept encodings (issue 15) is byte for byte what encoding it whole gives,
and a memo never answers for a message it was not made from."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from loop_server.api.messages import encoded_memo, message_json, page_body
from loop_server.domain import ChannelUpsert, Message, NewMessage
from loop_server.gojson import go_json
from loop_server.memo import Memo
from loop_server.store import Store

CONTENTS = [
    "plain",
    "<b>&amp;</b> \u2028\u2029 tags and separators",
    "a literal backslash then b: \\b, a backspace: \b, a form feed: \f",
    'quotes " and \\ and \n newlines \t tabs \x00 nul',
    "unicode: é 漢字 🎉",
    "",
]


def _message(i: int, content: str, *, microsecond: int = 123400) -> Message:
    return Message(
        id=i,
        channel_id="c<1>",
        msg_id=f"m{i}",
        author_id="u",
        author_name="Zoë & co",
        content=content,
        is_bot=i % 2 == 0,
        is_processed=False,
        created_at=datetime(2026, 1, 2, 3, 4, 5, microsecond if i % 3 else 0, tzinfo=UTC),
    )


@pytest.mark.parametrize("next_cursor", [None, 0, 7, 123456789])
def test_page_body_is_the_whole_encoding(next_cursor: int | None) -> None:
    memo = encoded_memo()
    page = [_message(i, c) for i, c in enumerate(CONTENTS, start=1)]
    whole = go_json({"messages": [message_json(m) for m in page], "next_cursor": next_cursor})
    assert page_body(memo, page, next_cursor) == whole
    assert page_body(memo, page, next_cursor) == whole  # from the memo this time
    assert page_body(memo, [], next_cursor) == go_json({"messages": [], "next_cursor": next_cursor})


def test_an_equal_but_other_message_is_encoded_afresh() -> None:
    memo = encoded_memo()
    first = _message(1, "before")
    assert b"before" in page_body(memo, [first], None)
    changed = _message(1, "after")  # same id, other content: must not get the first's bytes
    assert b"after" in page_body(memo, [changed], None)


def test_memo_stays_within_its_bounds() -> None:
    memo: Memo[int, str] = Memo(max_entries=3, max_weight=100)
    for i in range(10):
        memo.put(i, str(i), 10)
        assert len(memo) <= 3
    memo.put(99, "heavy", 1000)  # heavier than the bound: not kept
    assert memo.get(99) is None
    heavy: Memo[int, str] = Memo(max_entries=100, max_weight=100)
    for i in range(20):
        heavy.put(i, "x", 40)
        assert len(heavy) <= 2  # the weight bounds it first


async def test_history_reads_see_every_write(tmp_path: Path) -> None:
    """The store's decoded-row memo keys on whole rows: a page after any change shows it."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    async with await Store.open(tmp_path / "loop.db") as store:
        await store.channels.upsert(ChannelUpsert(channel_id="c", name="c"), now)

        def new(msg_id: str, content: str) -> NewMessage:
            return NewMessage("c", msg_id, "u", "u", content, is_bot=False, created_at=now)

        await store.messages.insert(new("1", "one"))
        assert [m.content for m in await store.messages.page("c", 0, 10)] == ["one"]
        assert [m.content for m in await store.messages.page("c", 0, 10)] == ["one"]
        await store.messages.insert(new("2", "two"))
        assert [m.content for m in await store.messages.page("c", 0, 10)] == ["two", "one"]
        # A caller changing its page does not change the next one's.
        mine = await store.messages.page("c", 0, 10)
        mine.clear()
        assert len(await store.messages.page("c", 0, 10)) == 2
        # A thread's messages, gone with the thread (deleted through its parent).
        await store.channels.upsert(ChannelUpsert(channel_id="t", name="t", parent_id="c"), now)
        await store.messages.insert(
            NewMessage("t", "t1", "u", "u", "in thread", is_bot=False, created_at=now)
        )
        assert [m.content for m in await store.messages.page("t", 0, 10)] == ["in thread"]
        assert await store.channels.delete_children("c") == 1
        assert await store.messages.page("t", 0, 10) == []
        # Pages behind a cursor, and a message that arrives after them.
        first = await store.messages.page("c", 0, 1)
        assert [m.content for m in await store.messages.page("c", first[0].id, 1)] == ["one"]
        await store.messages.insert(new("2b", "two-b"))
        assert [m.content for m in await store.messages.page("c", 0, 1)] == ["two-b"]
        # Deleted and re-created: SQLite may hand out the same ids again.
        await store.channels.delete("c")
        assert await store.messages.page("c", 0, 10) == []
        await store.channels.upsert(ChannelUpsert(channel_id="c", name="c"), now)
        await store.messages.insert(new("3", "three"))
        [again] = await store.messages.page("c", 0, 10)
        assert again.content == "three"
        assert again.msg_id == "3"
