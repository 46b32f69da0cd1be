"""`make bench` keeps working: its quick mode runs every benchmark end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent


def test_quick_benchmarks_run_and_report_every_figure() -> None:
    # The benchmarks measure the real waits, not the shortened ones of the tests.
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_BACKOFF_SCALE"}
    result = subprocess.run(
        [sys.executable, "-m", "bench", "--quick"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for figure in (
        "validate.",
        "plan.",
        ".whole_process_s",
        "apply.",
        "ratelimit.",
        "ratelimit.outage.recovery_s",
        "instances.",
        "memory.plan.",
        "emulator.persist.",
        "startup.validate.",
        "fleet.",
    ):
        assert figure in result.stdout, figure
    assert "targets_met" in result.stdout
