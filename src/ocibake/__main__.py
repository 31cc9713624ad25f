"""`python -m ocibake`: the same command line as `ocibake`."""

from ocibake.cli import main

raise SystemExit(main())
