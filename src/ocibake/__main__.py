from ocibake.cli import main

raise SystemExit(main())
