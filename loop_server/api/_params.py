"""Query parameters shared by the paged routes (message history, task runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, TypeVar

from loop_server.api._responses import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
_INT64_MAX = 2**63 - 1


class HasId(Protocol):
    @property
    def id(self) -> int: ...


RowT = TypeVar("RowT", bound=HasId)


def parse_positive(text: str | None, message: str, default: int) -> int:
    """Go's ``strconv.Atoi``/``ParseInt`` then ``>= 1``; anything else is ``400 message``."""
    if not text:  # upstream only parses a non-empty value
        return default
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit():
        raise ApiError(400, message)
    value = int(text)
    if value < 1 or value > _INT64_MAX:
        raise ApiError(400, message)
    return value


def page_params(args: Mapping[str, str]) -> tuple[int, int]:
    """``limit`` (default 50, silently capped at 200) and ``cursor`` (0 = newest page)."""
    limit = min(parse_positive(args.get("limit"), "invalid limit", DEFAULT_LIMIT), MAX_LIMIT)
    cursor = parse_positive(args.get("cursor"), "invalid cursor", 0)
    return limit, cursor


def cut_page(rows: Sequence[RowT], limit: int) -> tuple[Sequence[RowT], int | None]:
    """Rows were fetched with ``limit + 1`` as a probe: drop the extra one and point
    ``next_cursor`` at the last row kept (upstream's rule), or None on the last page."""
    if len(rows) > limit:
        kept = rows[:limit]
        return kept, kept[-1].id
    return rows, None
