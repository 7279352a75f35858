#!/usr/bin/env bash
# scripts/browser-env.sh — make sure the browser tests have a Chromium to drive.
#
# The browser tests (tests/browser/) drive Debian's own Chromium through Python Playwright's
# bundled driver; Playwright's browser downloads (`playwright install`) are never used, so
# nothing is fetched from outside the package registries.
#
#   1. If $LOOP_CHROMIUM (default /usr/bin/chromium) runs (`--version`), use it.
#   2. Else, as root: apt-get install Debian's `chromium` (no recommends), then check again.
#      Not root, or the install fails: say so loudly and exit 0 (the browser tests skip), or
#      exit 1 when CI=true or LOOP_REQUIRE_BROWSER=1 (there a missing browser is a failure).
#
# Idempotent, non-interactive (CI=true, no stdin), safe to run concurrently (flock; apt itself
# also waits for its own lock).
set -euo pipefail

CHROMIUM=${LOOP_CHROMIUM:-/usr/bin/chromium}
APT_LOG=/tmp/loop-browser-apt.log
LOCK=/tmp/loop-browser-env.lock
export DEBIAN_FRONTEND=noninteractive

required() { [ "${CI:-}" = true ] || [ "${LOOP_REQUIRE_BROWSER:-0}" = 1 ]; }

say() { printf 'browser-env: %s\n' "$*"; }

give_up() {
    {
        echo "=================================================================="
        echo "browser-env: NO USABLE CHROMIUM: $1"
        if [ -f "$APT_LOG" ]; then
            echo "---- last lines of $APT_LOG ----"
            tail -n 15 "$APT_LOG"
            echo "----"
        fi
        if required; then
            echo "browser-env: CI=true or LOOP_REQUIRE_BROWSER=1, so this is a failure."
        else
            echo "browser-env: the browser tests will be SKIPPED (set LOOP_REQUIRE_BROWSER=1 to fail)."
        fi
        echo "=================================================================="
    } >&2
    if required; then exit 1; fi
    exit 0
}

works() { timeout 60 "$CHROMIUM" --headless --no-sandbox --version >/dev/null 2>&1; }

exec 9>"$LOCK"
flock -w 900 9 || give_up "could not take the lock $LOCK within 900 s"

if works; then
    say "$("$CHROMIUM" --version 2>/dev/null) at $CHROMIUM"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    give_up "$CHROMIUM does not run and this user is not root, so it cannot be installed here (apt-get install chromium)"
fi
if [ "$CHROMIUM" != /usr/bin/chromium ]; then
    give_up "LOOP_CHROMIUM=$CHROMIUM does not run (only Debian's /usr/bin/chromium is installed by this script)"
fi

say "installing Debian's chromium (apt log: $APT_LOG)"
t0=$SECONDS
(
    set -e
    # -o DPkg::Lock::Timeout: wait for another apt (the machine's own set-up) instead of failing.
    apt_get() { apt-get -q -o DPkg::Lock::Timeout=900 "$@"; }
    if ! apt_get install -y --no-install-recommends chromium; then
        apt_get update
        apt_get install -y --no-install-recommends chromium
    fi
) </dev/null >"$APT_LOG" 2>&1 || give_up "apt-get install chromium failed"
works || give_up "chromium was installed but $CHROMIUM --version fails"
say "installed $("$CHROMIUM" --version 2>/dev/null) in $((SECONDS - t0)) s"
