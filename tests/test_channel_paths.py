"""Caller-chosen channel ids never lead a host path out of the loop dir (channel_paths)."""

from __future__ import annotations

import os

import pytest

from loop_server.channel_paths import channel_dir_name, fallback_work_dir, mcp_config_path


@pytest.mark.parametrize(
    "channel_id", ["601eb18ac53484e10a3c346e", "C0123ABC", "t1a2b3c4d5e6", "my_channel.v2-x"]
)
def test_plain_ids_are_used_as_they_are(channel_id: str) -> None:
    assert channel_dir_name(channel_id) == channel_id
    assert fallback_work_dir("/data", channel_id) == f"/data/{channel_id}/work"
    assert mcp_config_path("/w", channel_id) == f"/w/.loop/mcp-{channel_id}.json"


@pytest.mark.parametrize(
    "channel_id",
    [
        "..",
        ".",
        "../../../tmp/escaped",
        "/abs",
        "a/b",
        "",
        ".hidden",
        "x\x00y",
        "sp ace",
        "é",
        "a" * 200,
    ],
)
def test_other_ids_become_one_safe_component(channel_id: str) -> None:
    name = channel_dir_name(channel_id)
    assert name.startswith("id-") and len(name) == 35
    assert "/" not in name and name not in (".", "..")
    work = fallback_work_dir("/data", channel_id)
    assert os.path.normpath(work) == f"/data/{name}/work"
    mcp = mcp_config_path("/w", channel_id)
    assert os.path.normpath(mcp) == f"/w/.loop/mcp-{name}.json"


def test_digests_are_stable_and_distinct() -> None:
    assert channel_dir_name("a/b") == channel_dir_name("a/b")
    assert channel_dir_name("a/b") != channel_dir_name("a/c")
    assert channel_dir_name("\ud800") != channel_dir_name("\ud801")  # lone surrogates too
