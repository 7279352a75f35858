"""A bounded memo of values derived from keys that fully determine them.

Used on the history path (issue 15), where decoding a row into a ``Message`` and encoding a
message as JSON cost more than the rest of the request together, and the same messages are read
again and again. An entry is never stale: its key is everything its value is made of (a whole
row; a message object, by identity, which the entry keeps alive). When the memo outgrows its
bounds it is emptied whole, which keeps it simple and its cost per lookup flat.

Lookups and stores may come from several threads (the store's readers): each dict operation is
atomic under the GIL; the weight is bookkeeping for the bound, approximate under races.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(Generic[K, V]):
    def __init__(self, *, max_entries: int, max_weight: int) -> None:
        self._map: dict[K, V] = {}
        self._max_entries = max_entries
        self._max_weight = max_weight
        self._weight = 0

    def __len__(self) -> int:
        return len(self._map)

    def get(self, key: K) -> V | None:
        return self._map.get(key)

    def put(self, key: K, value: V, weight: int) -> None:
        """Keep ``value`` for ``key``; ``weight`` (about its size in bytes) counts toward the
        bound, and a value heavier than the whole bound is not kept."""
        if weight > self._max_weight:
            return
        if len(self._map) >= self._max_entries or self._weight + weight > self._max_weight:
            self._map.clear()
            self._weight = 0
        self._map[key] = value
        self._weight += weight
