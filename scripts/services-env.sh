#!/usr/bin/env bash
# scripts/services-env.sh — make sure the scale-out tests have PostgreSQL and Redis to start.
#
# The tests (tests/services/) start their own private servers on loopback, in temporary
# directories, and stop them by PID; this script only makes the programs present:
#   - PostgreSQL: Debian's `postgresql` (initdb and pg_ctl under /usr/lib/postgresql/<v>/bin,
#     and the `postgres` user the server runs as when the tests run as root);
#   - Redis: Debian's `redis-server`.
# Missing ones are installed with apt-get when root. Not root, or the install fails: say so
# loudly and exit 0 (those tests skip), or exit 1 when CI=true or LOOP_REQUIRE_SERVICES=1.
#
# Idempotent, non-interactive (no stdin), safe to run concurrently (flock; apt waits for its lock).
set -euo pipefail

APT_LOG=/tmp/loop-services-apt.log
LOCK=/tmp/loop-services-env.lock
export DEBIAN_FRONTEND=noninteractive

required() { [ "${CI:-}" = true ] || [ "${LOOP_REQUIRE_SERVICES:-0}" = 1 ]; }
say() { printf 'services-env: %s\n' "$*"; }

give_up() {
    {
        echo "=================================================================="
        echo "services-env: $1"
        [ -f "$APT_LOG" ] && { echo "---- last lines of $APT_LOG ----"; tail -n 15 "$APT_LOG"; echo "----"; }
        if required; then
            echo "services-env: CI=true or LOOP_REQUIRE_SERVICES=1, so this is a failure."
        else
            echo "services-env: the PostgreSQL/Redis tests will be SKIPPED (LOOP_REQUIRE_SERVICES=1 fails instead)."
        fi
        echo "=================================================================="
    } >&2
    if required; then exit 1; fi
    exit 0
}

have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null && id postgres >/dev/null 2>&1; }
have_redis() { command -v redis-server >/dev/null 2>&1; }

exec 9>"$LOCK"
flock -w 900 9 || give_up "could not take the lock $LOCK within 900 s"

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || give_up "missing ${missing[*]} and this user is not root (apt-get install ${missing[*]})"
    say "installing ${missing[*]} (apt log: $APT_LOG)"
    (
        set -e
        apt_get() { apt-get -q -o DPkg::Lock::Timeout=900 "$@"; }
        # policy-rc.d 101: the packages must not start their own system-wide servers; the tests
        # start private ones and a stray daemon on the default ports would outlive the run.
        # (A policy-rc.d the machine already has is left as it is.)
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT
        fi
        if ! apt_get install -y --no-install-recommends "${missing[@]}"; then
            apt_get update
            apt_get install -y --no-install-recommends "${missing[@]}"
        fi
    ) </dev/null >"$APT_LOG" 2>&1 || give_up "apt-get install ${missing[*]} failed"
fi
have_postgres || give_up "PostgreSQL's initdb or the postgres user is still missing"
have_redis || give_up "redis-server is still missing"
say "$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/postgres $("$(ls -d /usr/lib/postgresql/*/bin | tail -n 1)/postgres" --version | awk '{print $3}'), $(redis-server --version | awk '{print $3}')"
