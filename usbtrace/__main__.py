from usbtrace.cli.main import main

raise SystemExit(main())
