from loop_server.api._gateway import ASGIApp, events_authorizer

__all__ = ["ASGIApp", "events_authorizer"]
