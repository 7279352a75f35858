#!/bin/sh
# `loop-server` inside the agent image: this project on Debian's python3 (the MCP bridge runs
# `loop-server mcp --channel-id ID` here). The package and its dependencies live in /opt.
export PYTHONPATH=/opt/loop-server/app:/opt/loop-server/site
exec python3 -m loop_server "$@"
