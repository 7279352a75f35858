"""loop-server: the Loop API server, re-implemented on Trio."""

__version__ = "0.1.0"
