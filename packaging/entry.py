"""Entry point of the standalone ``loop-server`` executable (``make binary``).

PyInstaller freezes this script; it does what the console script installed by the package does.
"""

from loop_server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
