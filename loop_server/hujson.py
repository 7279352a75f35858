"""HuJSON: JSON with comments and trailing commas, as upstream's config files allow (the
server's config file, a project's ``.loop/config.json`` read by memory and terminal)."""

from __future__ import annotations

import json
import re
from typing import Any

_COMMENT = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_TRAILING_COMMA = re.compile(r'"(?:\\.|[^"\\])*"|,(\s*[}\]])', re.DOTALL)


def parse_hujson(text: str) -> Any:
    """JSON with comments and trailing commas, as upstream's config.json allows."""

    def drop_comment(match: re.Match[str]) -> str:
        token = match.group(0)
        return token if token.startswith('"') else ""

    def drop_comma(match: re.Match[str]) -> str:
        return match.group(1) if match.group(1) is not None else match.group(0)

    return json.loads(_TRAILING_COMMA.sub(drop_comma, _COMMENT.sub(drop_comment, text)))
