"""A terminal reaches only containers loop-server created (its labels), never anyone else's.

Rules: real Docker engine and containers of the test image (network none), removed after each
test; the "foreign" container stands for a user's own container (a database, say) on the same
engine: it has none of loop-server's labels, and it must survive every attempt.
"""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest
import trio
from docker.models.containers import Container

from loop_server.containers import ChannelContainers, ContainerSettings, DockerEngine, DockerExec
from loop_server.containers._ownership import NotOurContainer
from loop_server.terminal import SessionManager
from tests.docker.fixtures import Containers
from tests.terminal.conftest import TEST_IMAGE, StartTerminalServer, start_shell
from tests.terminal.terminal_helpers import DEADLINE, open_terminal

pytestmark = pytest.mark.usefixtures("loop_test_image")

REFUSED = "was not created by loop-server"


@pytest.fixture
def foreign(docker_containers: Containers) -> Container:
    return start_shell(docker_containers, foreign=True)


def still_running(container: Container) -> bool:
    container.reload()
    return container.status == "running"


async def test_create_and_stop_by_container_id_never_touch_a_foreign_container(
    start_terminal_server: StartTerminalServer,
    manager: SessionManager,
    foreign: Container,
    shell_container: Container,
) -> None:
    server = await start_terminal_server()
    with trio.fail_after(DEADLINE):
        async with open_terminal(server.port) as term:
            # By full id, short id and name: each is someone else's container.
            for target in (foreign.id, foreign.id[:12], foreign.name):
                await term.send(type="create", container_id=target)
                message = await term.error("session_failed")
                assert message.startswith(f"container {target} {REFUSED}"), message
                assert "app=loop-agent" in message
            assert manager.statistics().sessions == 0
            # No session, so `stop` has nothing to remove.
            await term.send(type="stop")
            assert await term.error("no_session") == "no active session"
            # The connection still serves loop-server's own containers.
            session_id = await term.create(container_id=shell_container.id, cmd=["/bin/sh"])
            assert session_id
            await term.send(type="stop")
            await term.expect("closed")
            await term.expect("stopped")
    assert still_running(foreign)
    with pytest.raises(docker.errors.NotFound):
        shell_container.reload()  # ours: `stop` removed it, as upstream does


async def test_the_exec_launcher_refuses_a_foreign_container(
    engine: DockerEngine, foreign: Container
) -> None:
    with trio.fail_after(DEADLINE), pytest.raises(NotOurContainer, match=REFUSED):
        await DockerExec(engine).start(foreign.id, ["/bin/sh"])
    top = await trio.to_thread.run_sync(foreign.top)
    assert [row for row in top["Processes"] if "sleep" not in row[-1]] == []  # nothing exec'd
    assert still_running(foreign)


async def test_removal_refuses_a_foreign_container(
    engine: DockerEngine, foreign: Container, shell_container: Container, loop_dir: Path
) -> None:
    settings = ContainerSettings(image=TEST_IMAGE, loop_dir=str(loop_dir), network="none")
    containers = ChannelContainers(engine, settings)
    with trio.fail_after(DEADLINE):
        with pytest.raises(NotOurContainer, match=REFUSED):
            await containers.container_remove(foreign.id)
        with pytest.raises(NotOurContainer, match=REFUSED):
            await containers.container_remove(foreign.name)
        await containers.container_remove(shell_container.id)
        await containers.container_remove("no-such-container")  # gone already: nothing to do
    assert still_running(foreign)
    with pytest.raises(docker.errors.NotFound):
        shell_container.reload()
