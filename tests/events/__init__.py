"""Tests of the events hub and the /api/ws endpoint."""
