"""Labels that mark our containers (SPEC A.5 step 5, §5.6)."""

APP_LABEL = "app"
APP_VALUE = "loop-agent"
CHANNEL_LABEL = "loop-channel"
# On the `sleep infinity` shell containers terminals open (not on agent-run containers, which
# are removed when their run ends): the ones a terminal may be opened in.
ROLE_LABEL = "loop-role"
SHELL_ROLE = "shell"
# The id of the container's agent token (docs/mcp.md), revoked when the container is removed.
TOKEN_LABEL = "loop-token"


def channel_labels(channel_id: str) -> dict[str, str]:
    return {APP_LABEL: APP_VALUE, CHANNEL_LABEL: channel_id}
