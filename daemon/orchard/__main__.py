"""`python -m orchard` is the `orchard` command."""

from orchard.cli.main import main

raise SystemExit(main())
