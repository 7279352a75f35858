"""Wall-clock time behind a seam, so scheduling logic can be driven by tests."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from loop_server.timefmt import now_utc


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return now_utc()
