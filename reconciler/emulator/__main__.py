"""``python -m reconciler.emulator``: run the local Lightsail endpoint."""

from reconciler.emulator.cli import main

raise SystemExit(main())
