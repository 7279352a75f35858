"""Scoped agent tokens: one per channel container, valid for that channel only.

A token is made just before its container is created, written to a file of its own that is
bind-mounted into that container (never put in its environment, which ``docker inspect`` and
every process in it can read), and revoked when the container is removed. The registry is kept
on disk beside the files (``index.json``), so a shell container that outlives a server restart
keeps working; tokens are compared by their SHA-256 digest, so the index holds no token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INDEX_FILE = "index.json"
_TOKEN_BYTES = 32


@dataclass(frozen=True, slots=True)
class AgentToken:
    token_id: str  # names the file and the container label; not a secret
    channel_id: str
    path: str  # the host file holding the token, mounted into the container


@dataclass(frozen=True, slots=True)
class TokenStatistics:
    live_tokens: int


def _digest(token: bytes) -> str:
    return hashlib.sha256(token).hexdigest()


class AgentTokens:
    """The live agent tokens, their files under ``directory`` and the index of both.

    Blocking file I/O: call the methods that write (``issue``, ``revoke``, ``load``) in a
    thread; ``channel_of`` and ``token_ids`` only read memory.

    Thread-safe: concurrent runs issue and revoke from several worker threads at once (a
    scheduled job and a chat run starting together). Writers hold ``_lock`` from reading the
    registry to renaming the new index into place: two unserialised ``_save`` calls share one
    temporary file, so one's rename finds it gone (``FileNotFoundError``, and the run fails
    with "writing agent token") and one's additions can be lost. The registry is never changed
    in place, only replaced, so readers on the Trio thread see a whole one without the lock.
    """

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._by_digest: dict[str, tuple[str, str]] = {}  # digest -> (token_id, channel_id)
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        return self._dir

    def load(self) -> None:
        """Restore the tokens of containers made before a restart; drop files nobody holds."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        try:
            entries = json.loads((self._dir / INDEX_FILE).read_text("utf-8"))
        except FileNotFoundError:
            entries = {}
        except (OSError, ValueError) as err:
            log.warning("agent tokens: ignoring unreadable %s: %s", INDEX_FILE, err)
            entries = {}
        if not isinstance(entries, dict):
            entries = {}
        restored = {
            digest: (str(entry[0]), str(entry[1]))
            for digest, entry in entries.items()
            if isinstance(entry, list) and len(entry) == 2
        }
        with self._lock:
            self._by_digest = restored
            held = {token_id for token_id, _ in restored.values()} | {INDEX_FILE}
            for path in self._dir.iterdir():
                if path.name not in held and not path.name.startswith("."):
                    path.unlink(missing_ok=True)

    def issue(self, channel_id: str) -> AgentToken:
        """A new token for a container of ``channel_id``, in a file only this server's user
        may read (mode 0400): the agent image runs the agent as that user."""
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        token = secrets.token_urlsafe(_TOKEN_BYTES)
        token_id = secrets.token_hex(8)
        path = self._dir / token_id
        with self._lock:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            try:
                os.write(fd, token.encode("ascii"))
            finally:
                os.close(fd)
            before = self._by_digest
            self._by_digest = {**before, _digest(token.encode("ascii")): (token_id, channel_id)}
            try:
                self._save()
            except BaseException:
                # The caller gets an error and no token to revoke: leave nothing of it behind.
                self._by_digest = before
                path.unlink(missing_ok=True)
                raise
        return AgentToken(token_id, channel_id, str(path))

    def revoke(self, token_id: str) -> None:
        """Forget the token (its calls get 401 from now on) and delete its file. Unknown ids
        are ignored: revoking twice is harmless."""
        with self._lock:
            kept = {d: entry for d, entry in self._by_digest.items() if entry[0] != token_id}
            if len(kept) != len(self._by_digest):
                self._by_digest = kept
                self._save()
            if token_id and os.sep not in token_id and token_id not in (".", "..", INDEX_FILE):
                (self._dir / token_id).unlink(missing_ok=True)

    def channel_of(self, token: bytes) -> str | None:
        """The channel ``token`` is scoped to, or None for a token that is not (or no longer)
        an agent token."""
        entry = self._by_digest.get(_digest(token))
        return entry[1] if entry else None

    def token_ids(self) -> set[str]:
        return {token_id for token_id, _ in self._by_digest.values()}

    def statistics(self) -> TokenStatistics:
        return TokenStatistics(live_tokens=len(self._by_digest))

    def _save(self) -> None:
        """Write the registry to the index (the caller holds ``_lock``)."""
        # Written whole and renamed: a crash mid-write never leaves a torn index.
        entries = {digest: list(entry) for digest, entry in self._by_digest.items()}
        temporary = self._dir / f".{INDEX_FILE}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(entries, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, self._dir / INDEX_FILE)
