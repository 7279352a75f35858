#!/bin/sh
# Entrypoint of the loop-server agent image: run the command as the host user.
#
# The server passes HOST_UID, HOST_GID, HOST_USER and HOME. Files the agent writes in the
# bind-mounted work dir are then owned by that user on the host, as upstream Loop does.
#
# Claude Code refuses --dangerously-skip-permissions as root ("cannot be used with root/sudo
# privileges") unless IS_SANDBOX=1 says the root process is deliberately sandboxed. So:
#   * host user not root: a passwd/group entry with its uid/gid is added and the command runs
#     with those ids (setpriv), HOME created and owned by it;
#   * host user root (or no HOST_UID): the command runs as root with IS_SANDBOX=1 — this
#     container is the sandbox, and files written are root's, like the host user's.
set -eu

uid=${HOST_UID:-0}
case "$uid" in
    '' | *[!0-9]*) echo "loop-agent: HOST_UID must be a number, got '$uid'" >&2; exit 64 ;;
esac
if [ "$uid" = 0 ]; then
    export IS_SANDBOX=1
    exec "$@"
fi

gid=${HOST_GID:-$uid}
case "$gid" in
    '' | *[!0-9]*) echo "loop-agent: HOST_GID must be a number, got '$gid'" >&2; exit 64 ;;
esac
name=${HOST_USER:-agent}
# A name that is not a plain user name, or one already taken by another id, becomes agent<uid>.
case "$name" in
    '' | *[!A-Za-z0-9._-]* | -*) name="agent$uid" ;;
esac
home=${HOME:-/home/$name}
if [ "$home" = / ] || [ "$home" = /root ]; then
    home=/home/$name
fi

if ! grep -q "^[^:]*:[^:]*:[^:]*:$gid:" /etc/group; then
    if grep -q "^$name:" /etc/group; then group="agent$gid"; else group=$name; fi
    echo "$group:x:$gid:" >>/etc/group
fi
if ! grep -q "^[^:]*:[^:]*:$uid:" /etc/passwd; then
    if grep -q "^$name:" /etc/passwd; then name="agent$uid"; fi
    echo "$name:x:$uid:$gid::$home:/bin/bash" >>/etc/passwd
fi
if [ ! -d "$home" ]; then
    mkdir -p "$home"
    chown "$uid:$gid" "$home"
fi
export HOME="$home" USER="$name" LOGNAME="$name"
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- "$@"
