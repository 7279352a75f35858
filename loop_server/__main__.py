from loop_server.cli import main

raise SystemExit(main())
