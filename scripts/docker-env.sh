#!/usr/bin/env bash
# scripts/docker-env.sh — make sure a Docker engine answers and the test image is current.
#
#   1. If a Docker engine answers (`docker info`), use it.
#   2. Else, as root: install Debian's docker.io + busybox-static if missing, and start
#      `dockerd --bridge=none --iptables=false --ip-masq=false` in the background, with its
#      own data-root/exec-root/pidfile under $STATE_DIR and its log at $LOG.
#      Not root: say so loudly and exit 0 (the Docker tests skip), or exit 1 when
#      LOOP_REQUIRE_DOCKER=1.
#   3. Make sure $IMAGE (loop-test:latest) exists and matches tests/docker/image/ (a busybox
#      root filesystem + the claude stub, `docker import`ed, labelled loop.test.hash=<sha>),
#      and that a `--network none` container runs in it.
#
# (The image sources are not in a top-level docker/ directory on purpose: a directory named
# `docker` at the repository root shadows the docker SDK for mypy — "Module has no attribute
# from_env" — and makes ruff sort `import docker` as first-party.)
#
# Idempotent, non-interactive (CI=true, no stdin), safe to run concurrently (flock).
# Any failure: exit 1 with LOOP_REQUIRE_DOCKER=1, else a loud warning and exit 0.
#
# Knobs (environment):
#   LOOP_REQUIRE_DOCKER=1          a missing engine/image is an error (CI)
#   LOOP_TEST_IMAGE                image tag (default loop-test:latest)
#   LOOP_DOCKER_STATE_DIR          default /var/lib/loop-test-docker
#   LOOP_DOCKER_EXEC_ROOT          default /run/loop-test-docker
#   LOOP_DOCKER_LOG                default /tmp/loop-dockerd.log
#   LOOP_DOCKER_STORAGE_DRIVER     force overlay2 / vfs (default: probed, remembered)
#   LOOP_DOCKER_START_TIMEOUT      seconds to wait for dockerd (default 300: an engine whose
#                                  data-root outlived its processes first removes every stale
#                                  network sandbox, ~0.1 s each, before it answers)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE_SRC=tests/docker/image # relative to $ROOT; its files (and build_rootfs) make the hash
IMAGE=${LOOP_TEST_IMAGE:-loop-test:latest}
STATE_DIR=${LOOP_DOCKER_STATE_DIR:-/var/lib/loop-test-docker}
EXEC_ROOT=${LOOP_DOCKER_EXEC_ROOT:-/run/loop-test-docker}
LOG=${LOOP_DOCKER_LOG:-/tmp/loop-dockerd.log}
APT_LOG=/tmp/loop-docker-apt.log
PIDFILE=$STATE_DIR/dockerd.pid
DRIVER_FILE=$STATE_DIR/storage-driver
START_TIMEOUT=${LOOP_DOCKER_START_TIMEOUT:-300}
REQUIRE=${LOOP_REQUIRE_DOCKER:-0}
export DEBIAN_FRONTEND=noninteractive

say() { printf 'docker-env: %s\n' "$*"; }

# give_up MESSAGE [LOGFILE] — loud message; exit 1 if Docker is required, else 0.
give_up() {
    {
        echo "=================================================================="
        echo "docker-env: NO USABLE DOCKER ENGINE: $1"
        if [ -n "${2:-}" ] && [ -f "$2" ]; then
            echo "---- last lines of $2 ----"
            tail -n 25 "$2"
            echo "----"
        fi
        if [ "$REQUIRE" = 1 ]; then
            echo "docker-env: LOOP_REQUIRE_DOCKER=1, so this is a failure."
        else
            echo "docker-env: the Docker tests will be SKIPPED (set LOOP_REQUIRE_DOCKER=1 to fail)."
        fi
        echo "=================================================================="
    } >&2
    if [ "$REQUIRE" = 1 ]; then exit 1; fi
    exit 0
}

is_root() { [ "$(id -u)" = 0 ]; }

engine_up() { timeout 10 docker info >/dev/null 2>&1; }

server_version() { timeout 10 docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?'; }

# ---- packages ----------------------------------------------------------------------------

busybox_path() {
    local p
    for p in /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
        # Must be the static build: it runs in an image with no libc.
        if [ -n "$p" ] && [ -x "$p" ] && ! ldd "$p" >/dev/null 2>&1; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

apt_install() {
    # Keep package scripts from starting services (a stock dockerd would create a bridge
    # and iptables rules): deny through policy-rc.d unless one is already in place.
    local made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    (
        set -e
        # Update the lists only when apt does not know the packages yet (or they are stale).
        need_update=0
        for pkg in "$@"; do
            policy=$(apt-cache policy "$pkg" 2>/dev/null || true)
            case "$policy" in
                *"Candidate: ("* | "") need_update=1 ;;
            esac
        done
        if [ "$need_update" = 1 ]; then
            apt-get update -q
        fi
        apt_get_install() {
            apt-get install -y -q --no-install-recommends \
                -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
        }
        if ! apt_get_install "$@"; then
            apt-get update -q
            apt_get_install "$@"
        fi
    ) </dev/null >"$APT_LOG" 2>&1 || rc=$?
    if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
    return "$rc"
}

ensure_packages() {
    local want=()
    command -v dockerd >/dev/null 2>&1 || want+=(docker.io)
    command -v docker >/dev/null 2>&1 || want+=(docker.io)
    busybox_path >/dev/null || want+=(busybox-static)
    [ ${#want[@]} -eq 0 ] && return 0
    # shellcheck disable=SC2207
    want=($(printf '%s\n' "${want[@]}" | sort -u))
    say "installing ${want[*]} (apt log: $APT_LOG)"
    local t0=$SECONDS
    apt_install "${want[@]}" || give_up "apt-get install ${want[*]} failed" "$APT_LOG"
    say "installed in $((SECONDS - t0)) s"
}

# ---- dockerd -----------------------------------------------------------------------------

# alive PID — the process exists and is not a zombie (PID 1 here may reap late).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

our_dockerd_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 1
    [ -n "$pid" ] && alive "$pid" && grep -q dockerd "/proc/$pid/comm" 2>/dev/null || return 1
    echo "$pid"
}

# Can this kernel/filesystem mount overlayfs on $STATE_DIR? (overlay2 needs it.)
overlay_works() {
    local d rc=1
    d=$(mktemp -d "$STATE_DIR/overlay-probe.XXXXXX")
    mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/merged"
    if mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" \
        "$d/merged" 2>/dev/null; then
        touch "$d/merged/x" 2>/dev/null && rc=0
        umount "$d/merged" 2>/dev/null || true
    fi
    rm -rf "$d"
    return "$rc"
}

storage_driver() {
    if [ -n "${LOOP_DOCKER_STORAGE_DRIVER:-}" ]; then
        echo "$LOOP_DOCKER_STORAGE_DRIVER"
    elif [ -s "$DRIVER_FILE" ]; then
        cat "$DRIVER_FILE"
    elif overlay_works; then
        echo overlay2
    else
        echo vfs
    fi
}

wait_for_engine() {
    local pid=$1 deadline=$((SECONDS + START_TIMEOUT))
    while ! engine_up; do
        if ! alive "$pid"; then
            give_up "dockerd (pid $pid) exited during start-up" "$LOG"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            give_up "dockerd (pid $pid) did not answer within ${START_TIMEOUT} s (still running; see $LOG)" "$LOG"
        fi
        sleep 0.5
    done
}

start_dockerd() {
    local pid driver host
    # Listen where the clients look: DOCKER_HOST if it is a unix socket, else the default.
    case "${DOCKER_HOST:-}" in
        "") host="unix:///var/run/docker.sock" ;;
        unix://*) host=$DOCKER_HOST ;;
        *) give_up "DOCKER_HOST=$DOCKER_HOST does not answer and is not a local unix socket" ;;
    esac
    mkdir -p "$STATE_DIR/data" "$EXEC_ROOT"
    if pid=$(our_dockerd_pid); then
        say "dockerd (pid $pid) is already starting; waiting for it"
        wait_for_engine "$pid"
        return 0
    fi
    rm -f "$PIDFILE"
    driver=$(storage_driver)
    # Keep the log from growing without bound across many starts.
    if [ -f "$LOG" ] && [ "$(stat -c %s "$LOG")" -gt 10000000 ]; then
        mv -f "$LOG" "$LOG.1"
    fi
    # dockerd starts and supervises its own containerd (under $EXEC_ROOT/containerd) and reuses
    # one that is still running. A dead one's pid file must go: PID 1 on these machines reaps
    # late, and dockerd takes a zombie for a live containerd, then times out dialling it.
    local cpid
    cpid=$(cat "$EXEC_ROOT/containerd/containerd.pid" 2>/dev/null || true)
    if [ -n "$cpid" ] && ! alive "$cpid"; then
        rm -f "$EXEC_ROOT/containerd/containerd.pid"
    fi
    # tini -s (a subreaper; docker.io depends on tini) sits above dockerd and reaps it, its
    # containerd and the containerd shims the moment they exit, instead of leaving zombies.
    local reaper=()
    if command -v tini >/dev/null 2>&1; then reaper=(tini -s --); fi
    echo "=== $(date -u +%FT%TZ) docker-env.sh starts dockerd (storage driver $driver)" >>"$LOG"
    # setsid + nohup: own session, no controlling terminal, survives this script.
    # 9>&-: the daemon must not inherit (and so hold forever) our flock.
    # No bridge, no iptables, no NAT: containers run with --network none only.
    setsid nohup "${reaper[@]}" dockerd \
        --host="$host" \
        --data-root="$STATE_DIR/data" \
        --exec-root="$EXEC_ROOT" \
        --pidfile="$PIDFILE" \
        --storage-driver="$driver" \
        --exec-opt native.cgroupdriver=cgroupfs \
        --bridge=none --iptables=false --ip-masq=false \
        --userland-proxy=false \
        </dev/null >>"$LOG" 2>&1 9>&- &
    pid=$!
    wait_for_engine "$pid" # (tini's pid, if any: it lives exactly as long as dockerd)
    echo "$driver" >"$DRIVER_FILE"
    remove_leftover_containers
    STARTED_PID=$(cat "$PIDFILE" 2>/dev/null || echo "$pid")
    STARTED_DRIVER=$driver
}

# Containers this engine holds from before it started (a data-root that outlived a machine's
# processes: a killed session, a snapshot) are dead weight, and each one's network sandbox
# slows the next start. The engine is ours alone (its own data-root), so they all go.
remove_leftover_containers() {
    local ids
    ids=$(timeout 60 docker ps -aq 2>/dev/null || true)
    [ -z "$ids" ] && return 0
    say "removing $(echo "$ids" | wc -l) container(s) left over from an earlier start"
    # shellcheck disable=SC2086
    timeout 300 docker rm -f $ids >/dev/null 2>&1 || say "some left-over containers could not be removed"
}

stop_our_dockerd() {
    local pid
    pid=$(our_dockerd_pid) || return 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do
        alive "$pid" || return 0
        sleep 0.5
    done
    kill -9 "$pid" 2>/dev/null || true
}

# ---- image -------------------------------------------------------------------------------

# build_rootfs DIR — the image's root filesystem. (Its own text is part of the image hash.)
build_rootfs() {
    local dir=$1 bb applet
    bb=$(busybox_path)
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,tmp,root,dev,proc,sys,var/tmp}
    chmod 1777 "$dir/tmp" "$dir/var/tmp"
    chmod 700 "$dir/root"
    cp "$bb" "$dir/bin/busybox"
    chmod 755 "$dir/bin/busybox"
    # One symlink per applet at its usual place (bin/sh, usr/bin/head, ...).
    "$bb" --list-full | while read -r applet; do
        if [ -n "$applet" ] && [ ! -e "$dir/$applet" ]; then
            ln -s /bin/busybox "$dir/$applet"
        fi
    done
    cp -R "$ROOT/$IMAGE_SRC/rootfs/." "$dir/"
    install -m 755 "$ROOT/$IMAGE_SRC/claude-stub" "$dir/usr/local/bin/claude"
}

image_hash() {
    (
        cd "$ROOT"
        declare -f build_rootfs
        find "$IMAGE_SRC" -type f | LC_ALL=C sort | while read -r f; do
            printf '%s %s ' "$f" "$(stat -c %a "$f")"
            sha256sum <"$f"
        done
    ) | sha256sum | cut -c1-16
}

ensure_image() {
    local want have old_id tmp
    want=$(image_hash)
    have=$(docker image inspect -f '{{index .Config.Labels "loop.test.hash"}}' "$IMAGE" 2>/dev/null || true)
    if [ "$have" = "$want" ]; then
        IMAGE_STATE="is current (hash $want)"
        return 0
    fi
    if ! busybox_path >/dev/null; then
        if is_root; then
            ensure_packages
        else
            give_up "image $IMAGE is missing or stale and there is no static busybox to build it (install busybox-static)"
        fi
    fi
    old_id=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/loop-test-rootfs.XXXXXX")
    build_rootfs "$tmp/rootfs"
    if ! tar -C "$tmp/rootfs" --numeric-owner --owner=0 --group=0 -c . |
        docker import \
            --change "LABEL loop.test.hash=$want" \
            --change 'ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'WORKDIR /' \
            --change 'CMD ["/bin/sh"]' \
            --message "loop-server test image ($IMAGE_SRC, hash $want)" \
            - "$IMAGE" >/dev/null; then
        rm -rf "$tmp"
        give_up "docker import of $IMAGE failed"
    fi
    rm -rf "$tmp"
    if [ -n "$old_id" ]; then
        docker image rm "$old_id" >/dev/null 2>&1 || true # still used by a container: keep it
        IMAGE_STATE="re-imported (hash $want, was ${have:-unlabelled})"
    else
        IMAGE_STATE="imported (hash $want)"
    fi
}

smoke_test() {
    local out
    out=$(timeout 60 docker run --rm --network none --label loop-test=1 "$IMAGE" \
        /bin/sh -c 'echo loop-test-ok' 2>&1) && [ "$out" = loop-test-ok ] && return 0
    SMOKE_ERROR=$out
    return 1
}

# ---- main --------------------------------------------------------------------------------

STARTED_PID=""
STARTED_DRIVER=""
IMAGE_STATE=""
SMOKE_ERROR=""

if is_root; then
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/lock"
    flock -w 600 9 || give_up "could not take the lock $STATE_DIR/lock within 600 s"
fi

if ! command -v docker >/dev/null 2>&1 || ! engine_up; then
    if ! is_root; then
        case "$(timeout 10 docker info 2>&1 || true)" in
            *"ermission denied"*)
                give_up "the Docker socket is there but this user may not use it (docker group?)" ;;
        esac
        give_up "no Docker engine answers and this user is not root, so none can be started here"
    fi
    ensure_packages
    engine_up || start_dockerd # (the install may have brought only a missing client)
fi

ensure_image
if ! smoke_test; then
    # overlay2 can mount here yet fail for containers: fall back to vfs once, on our own dockerd.
    if [ -n "$STARTED_PID" ] && [ "$STARTED_DRIVER" != vfs ] && [ -z "${LOOP_DOCKER_STORAGE_DRIVER:-}" ]; then
        say "a container did not run with storage driver $STARTED_DRIVER ($SMOKE_ERROR); retrying with vfs"
        stop_our_dockerd
        echo vfs >"$DRIVER_FILE"
        start_dockerd
        ensure_image
        smoke_test || give_up "a --network none container does not run in $IMAGE: $SMOKE_ERROR" "$LOG"
    else
        give_up "a --network none container does not run in $IMAGE: $SMOKE_ERROR" "$LOG"
    fi
fi

if [ -n "$STARTED_PID" ]; then
    say "started dockerd $(server_version) (pid $STARTED_PID, storage driver $STARTED_DRIVER, log $LOG)"
else
    say "Docker engine $(server_version) answers"
fi
say "image $IMAGE $IMAGE_STATE; a --network none container runs"
