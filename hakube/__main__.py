from hakube.cli.main import main

raise SystemExit(main())
