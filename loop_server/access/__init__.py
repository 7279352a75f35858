"""Who may do what: the owner's token, scoped agent tokens, and telling callers apart
(docs/mcp.md, "Token scope")."""

from loop_server.access._caller import (
    CALLER,
    OWNER,
    VIA_AGENT_SOCKET,
    Caller,
    bearer_token,
    identify,
    token_matches,
)
from loop_server.access._tokens import AgentToken, AgentTokens, TokenStatistics

__all__ = [
    "CALLER",
    "OWNER",
    "VIA_AGENT_SOCKET",
    "AgentToken",
    "AgentTokens",
    "Caller",
    "TokenStatistics",
    "bearer_token",
    "identify",
    "token_matches",
]
