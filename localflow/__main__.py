"""`python -m localflow` runs the `lf` command line."""

from localflow.cli.main import main

raise SystemExit(main())
