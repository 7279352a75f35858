"""The Docker test environment itself: engine, image, --network none, and the claude stub.

The stub (tests/docker/image/claude-stub, at /usr/local/bin/claude in loop-test:latest) prints
Claude's ``--output-format stream-json`` lines; markers in the prompt steer it (STUB:FAIL, ...).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.images import Image

from tests.docker.fixtures import STUB, TEST_IMAGE, TEST_LABEL, Containers, Finished, stub_args

pytestmark = pytest.mark.docker

IMAGE_SRC = Path(__file__).resolve().parent / "image"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def events(run: Finished) -> list[dict[str, Any]]:
    """The stdout lines as JSON objects; fails on any line that is not JSON."""
    return [json.loads(line) for line in run.lines]


def json_events(run: Finished) -> tuple[list[dict[str, Any]], list[str]]:
    """(the lines that parse as JSON objects, the lines that do not)."""
    parsed, garbage = [], []
    for line in run.lines:
        try:
            obj = json.loads(line)
        except ValueError:
            garbage.append(line)
            continue
        if isinstance(obj, dict):
            parsed.append(obj)
        else:
            garbage.append(line)
    return parsed, garbage


def assistant_texts(evs: list[dict[str, Any]]) -> list[str]:
    return [
        "\n".join(b["text"] for b in e["message"]["content"] if b["type"] == "text")
        for e in evs
        if e["type"] == "assistant"
    ]


# ---- engine and image ------------------------------------------------------------------


def test_image_exists_and_matches_its_sources(
    loop_test_image: Image, docker_containers: Containers
) -> None:
    assert TEST_IMAGE in loop_test_image.tags
    labels = loop_test_image.attrs["Config"]["Labels"]
    assert re.fullmatch(r"[0-9a-f]{16}", labels["loop.test.hash"])
    assert (
        "PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        in loop_test_image.attrs["Config"]["Env"]
    )
    # The stub in the image is byte for byte image/claude-stub here, and executable.
    run = docker_containers.run(["/bin/sh", "-c", f"cat {STUB}; test -x {STUB} && echo EXEC"])
    assert run.exit_code == 0
    stub = (IMAGE_SRC / "claude-stub").read_text()
    assert run.stdout == stub + "EXEC\n"


def test_network_none_container_runs_echo(
    docker_client: docker.DockerClient, docker_containers: Containers
) -> None:
    run = docker_containers.run(["echo", "hello from loop-test"])
    assert run == Finished(0, "hello from loop-test\n", "")

    # No interface but loopback inside; the container carries our labels and network mode.
    container = docker_containers.start(["ls", "/sys/class/net"])
    assert container.wait(timeout=60)["StatusCode"] == 0
    assert container.logs().decode() == "lo\n"
    container.reload()
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    assert container.labels[TEST_LABEL] == "1"


def test_cleanup_removes_the_tests_containers(
    docker_client: docker.DockerClient, docker_containers: Containers
) -> None:
    running = docker_containers.start(["sleep", "600"])
    done = docker_containers.start(["true"])
    done.wait(timeout=60)
    removed = docker_containers.remove_all()
    assert set(removed) == {running.id, done.id}
    listed = docker_client.containers.list(
        all=True, filters={"label": f"loop-test.run={docker_containers.run_id}"}
    )
    assert listed == []


# ---- the claude stub ---------------------------------------------------------------------


def test_stub_default_stream_json(docker_containers: Containers) -> None:
    run = docker_containers.stub(*stub_args("hello world"))
    assert run.exit_code == 0
    assert run.stderr == ""
    evs = events(run)
    assert [e["type"] for e in evs] == ["system", "assistant", "result"]
    init, assistant, result = evs
    sid = init["session_id"]
    assert UUID_RE.match(sid)
    assert init["subtype"] == "init"
    assert assistant["message"]["content"] == [{"type": "text", "text": "Working on: hello world"}]
    assert assistant["session_id"] == sid
    assert result["subtype"] == "success"
    assert result["is_error"] is False
    assert result["result"] == "Done: hello world"
    assert result["session_id"] == sid
    assert result["num_turns"] == 1


def _claude_dir(tmp_path: Path, *sessions: str) -> tuple[Path, dict[str, Any]]:
    """A Claude state dir on the host holding ``sessions`` (for the container's work dir "/"),
    and the ``Containers.stub`` options that mount it as the server does."""
    claude = tmp_path / "claude"
    project = claude / "projects" / "-"
    project.mkdir(parents=True)
    for session in sessions:
        (project / f"{session}.jsonl").write_text('{"type":"user"}\n')
    options = {
        "volumes": {str(claude): {"bind": str(claude), "mode": "rw"}},
        "environment": {"CLAUDE_CONFIG_DIR": str(claude)},
    }
    return project, options


def test_stub_session_ids_resume_and_fork(docker_containers: Containers, tmp_path: Path) -> None:
    project, mount = _claude_dir(tmp_path)
    first = events(docker_containers.stub(*stub_args("one"), **mount))[-1]["session_id"]
    second = events(docker_containers.stub(*stub_args("two"), **mount))[-1]["session_id"]
    assert UUID_RE.match(first) and UUID_RE.match(second)
    assert first != second
    # Each session is kept where Claude keeps it, so a later container can resume it.
    assert sorted(p.name for p in project.iterdir()) == sorted(
        [f"{first}.jsonl", f"{second}.jsonl"]
    )

    resumed = events(docker_containers.stub(*stub_args("again", "--resume", first), **mount))
    assert {e["session_id"] for e in resumed} == {first}
    assert resumed[-1]["result"] == "Done: again"
    assert len((project / f"{first}.jsonl").read_text().splitlines()) == 2

    forked = events(
        docker_containers.stub(*stub_args("branch", "--resume", first, "--fork-session"), **mount)
    )
    forked_ids = {e["session_id"] for e in forked}
    assert len(forked_ids) == 1
    (forked_id,) = forked_ids
    assert forked_id not in (first, second)
    assert UUID_RE.match(forked_id)


def test_stub_cannot_resume_a_session_it_does_not_have(
    docker_containers: Containers, tmp_path: Path
) -> None:
    """As Claude: no transcript in the state dir, no resume — also when the session was made in
    another container whose state dir is gone."""
    made = events(docker_containers.stub(*stub_args("one")))[-1]["session_id"]
    for session in (made, "sess-unknown"):
        for fork in ((), ("--fork-session",)):
            run = docker_containers.stub(*stub_args("again", "--resume", session, *fork))
            assert run.exit_code == 1
            # Claude Code 2.1's answer: an error result without any turn, and the same text
            # on stderr (without a newline).
            [result] = events(run)
            assert (result["type"], result["subtype"]) == ("result", "error_during_execution")
            assert result["is_error"] is True and result["num_turns"] == 0
            assert result["errors"] == [f"No conversation found with session ID: {session}"]
            assert run.stderr == f"No conversation found with session ID: {session}"


def test_stub_echo_args_shows_the_full_command_line(
    docker_containers: Containers, tmp_path: Path
) -> None:
    _, mount = _claude_dir(tmp_path, "sess-1")
    args = [
        "--mcp-config",
        "/work/.loop/mcp-ch_1.json",
        "--model",
        "claude-test-model",
        "--print",
        "--verbose",
        "--output-format",
        "stream-json",
        "--dangerously-skip-permissions",
        "--resume",
        "sess-1",
        "--fork-session",
        "--append-system-prompt",
        "be brief",
        "STUB:ECHO_ARGS please",
    ]
    run = docker_containers.stub(*args, **mount)
    assert run.exit_code == 0
    evs = events(run)
    assert evs[-1]["result"] == " ".join(args)
    assert evs[0]["model"] == "claude-test-model"
    assert evs[-1]["session_id"] != "sess-1"  # forked


def test_stub_fail(docker_containers: Containers, tmp_path: Path) -> None:
    _, mount = _claude_dir(tmp_path, "sess-9")
    run = docker_containers.stub(*stub_args("do it STUB:FAIL", "--resume", "sess-9"), **mount)
    assert run.exit_code == 1
    evs = events(run)
    assert [e["type"] for e in evs] == ["system", "assistant", "result"]
    assert evs[-1]["is_error"] is True
    assert evs[-1]["result"] == "Stub failure: do it STUB:FAIL"
    assert evs[-1]["session_id"] == "sess-9"
    assert "failing with status 1" in run.stderr


def test_stub_exit_without_result(docker_containers: Containers) -> None:
    run = docker_containers.stub(*stub_args("STUB:EXIT now"))
    assert run.exit_code == 3
    evs = events(run)
    assert [e["type"] for e in evs] == ["system", "assistant"]
    assert assistant_texts(evs) == ["Working on: STUB:EXIT now"]
    assert "exiting with status 3" in run.stderr


def test_stub_garbage_lines_between_json(docker_containers: Containers) -> None:
    run = docker_containers.stub(*stub_args("noisy STUB:GARBAGE"))
    assert run.exit_code == 0
    parsed, garbage = json_events(run)
    assert [e["type"] for e in parsed] == ["system", "assistant", "result"]
    assert parsed[-1]["result"] == "Done: noisy STUB:GARBAGE"
    # Two noisy stretches (before the assistant line and before the result line).
    assert garbage.count("stub: this line is not JSON") == 2
    assert garbage.count('{"type": "assistant", "truncated') == 2
    assert garbage.count("") == 2
    assert run.lines[0].startswith('{"type":"system"')
    assert run.lines[-1].startswith('{"type":"result"')
    assert run.stderr.count("stub: noise on stderr") == 2


def test_stub_turns(docker_containers: Containers) -> None:
    run = docker_containers.stub(*stub_args("plan STUB:TURNS=3"))
    assert run.exit_code == 0
    evs = events(run)
    assert [e["type"] for e in evs] == ["system", "assistant", "assistant", "assistant", "result"]
    assert assistant_texts(evs) == [
        "Working on: plan STUB:TURNS=3 (1/3)",
        "Working on: plan STUB:TURNS=3 (2/3)",
        "Working on: plan STUB:TURNS=3 (3/3)",
    ]
    assert [e["message"]["id"] for e in evs[1:4]] == ["msg_stub_1", "msg_stub_2", "msg_stub_3"]
    assert evs[-1]["num_turns"] == 3
    assert evs[-1]["result"] == "Done: plan STUB:TURNS=3"


@pytest.mark.parametrize(
    "prompt",
    [
        'say "hi" to C:\\temp\\new and \\"escaped\\"',
        "line one\nline two\n\n\ttabbed\r\nwindows\n",
        "user: what's $HOME and `id` and $(echo x); * ? [a] %s %d \\n \\t",
        "unicode: héllo wörld ✓ 日本語 🚀",
        "control: \x01\x1b[31mred\x1b[0m \x7f",
        "  leading and trailing spaces  ",
        "--looks-like-a-flag",
    ],
    ids=[
        "quotes-backslashes",
        "newlines-tabs-cr",
        "shell-chars",
        "unicode",
        "control",
        "spaces",
        "flag",
    ],
)
def test_stub_prompt_round_trips_through_json(docker_containers: Containers, prompt: str) -> None:
    run = docker_containers.stub(*stub_args(prompt))
    assert run.exit_code == 0
    assert len(run.lines) == 3  # newlines in the prompt are escaped, never raw
    evs = events(run)
    assert assistant_texts(evs) == [f"Working on: {prompt}"]
    assert evs[-1]["result"] == f"Done: {prompt}"


def close_log_stream(stream: Any) -> None:
    """Close a followed log stream completely. The SDK's ``close()`` shuts the socket but
    leaves the HTTP response (which still holds a reference to it) open, so the socket object
    would be finalised later with a ResourceWarning, in whichever test the collector runs."""
    stream.close()
    stream._response.close()


def test_stub_streams_lines_as_they_happen_and_stops_on_term(
    docker_containers: Containers,
) -> None:
    # STUB:HANG prints the init line, then sleeps until stopped.
    container = docker_containers.start([STUB, *stub_args("wait STUB:HANG")])
    stream = container.logs(stream=True, follow=True, stdout=True, stderr=False)
    try:
        buf = b""
        while b"\n" not in buf:
            buf += next(stream)  # each read is bounded by the client timeout
    finally:
        close_log_stream(stream)
    first = json.loads(buf.split(b"\n", 1)[0])
    assert first["type"] == "system"
    assert first["subtype"] == "init"
    container.reload()
    assert container.status == "running"

    container.stop(timeout=10)  # SIGTERM: the stub traps it and exits 143
    assert container.wait(timeout=60)["StatusCode"] == 143
    lines = container.logs(stdout=True, stderr=False).decode().splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["system"]


def test_stub_slow_lines_arrive_one_by_one(docker_containers: Containers) -> None:
    # STUB:SLOW sleeps 1 s before every line after the first: the first line must reach us
    # through `docker logs --follow` while the container still runs.
    container = docker_containers.start([STUB, *stub_args("easy STUB:SLOW")])
    stream = container.logs(stream=True, follow=True, stdout=True, stderr=False)
    try:
        buf = b""
        while b"\n" not in buf:
            buf += next(stream)
        container.reload()
        assert container.status == "running"
        for chunk in stream:  # to the end of the output
            buf += chunk
    finally:
        close_log_stream(stream)
    assert container.wait(timeout=60)["StatusCode"] == 0
    evs = [json.loads(line) for line in buf.decode().splitlines()]
    assert [e["type"] for e in evs] == ["system", "assistant", "result"]
    assert evs[-1]["result"] == "Done: easy STUB:SLOW"
