"""Fixtures shared by the hardening tests."""

from tests.hardening._servers import start_server

__all__ = ["start_server"]
