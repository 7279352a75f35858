"""Errors the store raises. Callers catch ``StoreError``; the subclasses say why."""

from __future__ import annotations


class StoreError(Exception):
    """The database could not do what was asked (unusable file, SQL failure, closed store).

    ``sqlite3.Error`` and ``psycopg.Error`` never escape the store: ``Database`` and
    ``PostgresDatabase`` wrap them in this class (or a subclass) with the original chained as
    ``__cause__``, so callers need one ``except``.
    """


class ConstraintViolation(StoreError):
    """A UNIQUE, CHECK, NOT NULL or FOREIGN KEY constraint refused the write (nothing stored)."""


class ChannelNotFound(StoreError):
    """A message names a channel the store does not know, and auto-creation was not asked for."""

    def __init__(self, channel_id: str) -> None:
        super().__init__(f"channel {channel_id} not found")
        self.channel_id = channel_id
