"""`python -m reconciler` is the same as the `reconciler` console script."""

from reconciler.cli.app import main

raise SystemExit(main())
