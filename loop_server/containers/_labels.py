"""Labels that mark our containers (SPEC A.5 step 5, §5.6)."""

APP_LABEL = "app"
APP_VALUE = "loop-agent"
CHANNEL_LABEL = "loop-channel"


def channel_labels(channel_id: str) -> dict[str, str]:
    return {APP_LABEL: APP_VALUE, CHANNEL_LABEL: channel_id}
