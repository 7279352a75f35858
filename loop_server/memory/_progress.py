"""A text progress bar for ``loop-server memory index`` (files done / total)."""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 30
_REDRAW_SECONDS = 0.1


class ProgressBar:
    """Call with (done, total). Draws on ``stream`` only when it is a terminal; elsewhere
    (logs, CI) it stays silent and the caller prints a summary line instead."""

    def __init__(self, stream: TextIO, label: str = "indexing") -> None:
        self._stream = stream
        self._label = label
        self._enabled = stream.isatty()
        self._last_draw = float("-inf")
        self._drawn = False

    @property
    def enabled(self) -> bool:
        return self._enabled

    def __call__(self, done: int, total: int) -> None:
        if not self._enabled:
            return
        now = time.monotonic()
        # Redraw at most ten times a second, but always draw the end state.
        if done < total and now - self._last_draw < _REDRAW_SECONDS:
            return
        self._last_draw = now
        self._stream.write("\r" + render(self._label, done, total))
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False


def render(label: str, done: int, total: int) -> str:
    fraction = done / total if total else 1.0
    filled = round(fraction * _WIDTH)
    bar = "#" * filled + "." * (_WIDTH - filled)
    return f"{label} [{bar}] {done}/{total} files {fraction:4.0%}"
