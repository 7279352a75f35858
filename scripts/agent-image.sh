#!/usr/bin/env bash
# scripts/agent-image.sh — build the agent image (loop-agent:latest, the real Claude Code CLI)
# with the offline recipe: `loop-server image build --recipe offline`. `make agent-image` and
# `make test` run it; it does nothing when the image is current.
#
# The offline recipe needs mmdebstrap and npm on the host; as root they are apt-installed when
# missing. Any failure: exit 1 with LOOP_REQUIRE_DOCKER=1 (CI), else a loud warning and exit 0
# (the real-CLI tests then skip, saying why).
#
# Knobs (environment): LOOP_AGENT_IMAGE (default loop-agent:latest), LOOP_REQUIRE_DOCKER=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${LOOP_AGENT_IMAGE:-loop-agent:latest}
REQUIRE=${LOOP_REQUIRE_DOCKER:-0}
APT_LOG=/tmp/loop-agent-image-apt.log
export DEBIAN_FRONTEND=noninteractive

give_up() {
    {
        echo "=================================================================="
        echo "agent-image: THE AGENT IMAGE $IMAGE WAS NOT BUILT: $1"
        if [ "$REQUIRE" = 1 ]; then
            echo "agent-image: LOOP_REQUIRE_DOCKER=1, so this is a failure."
        else
            echo "agent-image: the real-CLI tests will be SKIPPED."
        fi
        echo "=================================================================="
    } >&2
    if [ "$REQUIRE" = 1 ]; then exit 1; fi
    exit 0
}

want=()
command -v mmdebstrap >/dev/null 2>&1 || want+=(mmdebstrap)
command -v npm >/dev/null 2>&1 || want+=(npm)
if [ ${#want[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        give_up "the offline recipe needs ${want[*]} (apt-get install ${want[*]})"
    fi
    echo "agent-image: installing ${want[*]} (apt log: $APT_LOG)"
    # The shared apt lock may be held for a while by another install: wait for it.
    if ! { apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${want[@]}" ||
        { apt-get -o DPkg::Lock::Timeout=600 update -q &&
            apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${want[@]}"; }; } \
        </dev/null >"$APT_LOG" 2>&1; then
        give_up "apt-get install ${want[*]} failed (see $APT_LOG)"
    fi
fi

if ! timeout 10 docker info >/dev/null 2>&1; then
    give_up "no Docker engine answers (run scripts/docker-env.sh)"
fi

"$ROOT/.venv/bin/loop-server" image build --recipe offline --image "$IMAGE" ||
    give_up "loop-server image build --recipe offline failed"
