"""The stub of the fast tests (tests/docker/image/claude-stub) prints what the real CLI prints.

Both run the same conversation — a text turn, a Bash tool call and its result, a final turn,
and ``--resume`` of an unknown session — and every line the stub prints must have the shape
of a line the real CLI printed: the same ``type``/``subtype``, and only keys the real one has
(at the top, in ``message`` and in each content block). So the stub cannot drift into shapes
the runner would never see from Claude Code.
"""

from __future__ import annotations

import json
from typing import Any

import docker
import trio

from tests.agent_real.conftest import AGENT_IMAGE, FAKE_KEY, HOLDER_IMAGE, FakeApi, Holder
from tests.docker.fixtures import RUN_LABEL, TEST_LABEL
from tests.fakes.anthropic_api import Reply, ToolCall

FLAGS = ["--print", "--verbose", "--output-format", "stream-json", "--dangerously-skip-permissions"]
LABELS = {TEST_LABEL: "1", RUN_LABEL: "stub-shapes"}


def run_lines(client: docker.DockerClient, image: str, argv: list[str], **kwargs: Any) -> list[Any]:
    container = client.containers.run(
        image, argv, detach=True, labels=LABELS, working_dir="/tmp", **kwargs
    )
    try:
        container.wait(timeout=120)
        out = container.logs(stdout=True, stderr=False).decode()
    finally:
        container.remove(force=True)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def kind(line: dict[str, Any]) -> tuple[str, str, str]:
    content = (line.get("message") or {}).get("content")
    block = content[0].get("type", "") if isinstance(content, list) and content else ""
    return (line.get("type", ""), line.get("subtype", ""), block)


def keys_missing_from_real(stub: dict[str, Any], real: dict[str, Any]) -> set[str]:
    missing = {k for k in stub if k not in real}
    if isinstance(stub.get("message"), dict) and isinstance(real.get("message"), dict):
        s_msg, r_msg = stub["message"], real["message"]
        missing |= {f"message.{k}" for k in s_msg if k not in r_msg}
        for s_block, r_block in zip(
            s_msg.get("content", []), r_msg.get("content", []), strict=False
        ):
            missing |= {f"message.content.{k}" for k in s_block if k not in r_block}
    return missing


async def test_stub_lines_have_the_real_clis_shapes(
    docker_client: docker.DockerClient, holder: Holder, fake_api: FakeApi
) -> None:
    fake_api.fake.add(
        Reply(text="Working on it", tools=(ToolCall("Bash", {"command": "echo stub-tool"}),)),
        Reply(text="Done"),
    )
    env = {"ANTHROPIC_BASE_URL": fake_api.url, "ANTHROPIC_API_KEY": FAKE_KEY}
    network = f"container:{holder.id}"

    def real(argv: list[str]) -> list[Any]:
        return run_lines(docker_client, AGENT_IMAGE, argv, environment=env, network_mode=network)

    def stub(argv: list[str]) -> list[Any]:
        return run_lines(docker_client, HOLDER_IMAGE, argv, network_mode="none")

    with trio.fail_after(240):
        real_lines = await trio.to_thread.run_sync(real, ["claude", *FLAGS, "hi"])
        real_lines += await trio.to_thread.run_sync(
            real, ["claude", *FLAGS, "--resume", "3f1b0e9e-0000-4000-8000-000000000000", "hi"]
        )
        stub_lines = await trio.to_thread.run_sync(stub, ["claude", *FLAGS, "STUB:TOOL hi"])
        stub_lines += await trio.to_thread.run_sync(
            stub, ["claude", *FLAGS, "--resume", "3f1b0e9e-0000-4000-8000-000000000000", "hi"]
        )
    by_kind: dict[tuple[str, str, str], dict[str, Any]] = {}
    for line in real_lines:
        by_kind.setdefault(kind(line), line)
    # The real conversation had every kind of line the runner handles.
    assert {k[:2] for k in by_kind} >= {
        ("system", "init"),
        ("assistant", ""),
        ("user", ""),
        ("result", "success"),
        ("result", "error_during_execution"),
    }
    for line in stub_lines:
        assert kind(line) in by_kind, f"the real CLI never printed a line like {line}"
        assert keys_missing_from_real(line, by_kind[kind(line)]) == set(), line
