"""``python -m bench``: run the benchmarks (all, or those named)."""

from bench.cli import main

raise SystemExit(main())
