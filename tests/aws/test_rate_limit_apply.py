"""An apply against a rate-limited emulator paces itself instead of backing off.

The emulator meters calls with a token bucket per account and region
(``--rate-limit``); the reconciler learns the rate from the first throttles
and then stays under it, so few calls are refused and every key pair is
created exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorConfig, RateLimit
from tests.helpers import run_cli, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e


def test_an_apply_against_a_tight_bucket_converges_with_few_throttles(tmp_path: Path) -> None:
    count = 80
    body = "\n".join(f"- name: kp-{i:03d}" for i in range(count))
    write_manifest(tmp_path / "manifests" / "many.yaml", "us-east-1", body)
    config = EmulatorConfig(latency_ms=5, key_pool=8, seed=3, rate_limits=(RateLimit(40, 5),))
    with Emulator(config) as emu:
        result = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emu.url)
        assert result.returncode == 0, result.stderr
        assert emu.committed["CreateKeyPair"] == count  # each created once
        throttled = sum(emu.throttled.values())
        calls = sum(emu.calls.values())
        # Ten workers start unpaced into a bucket of 5: most of the first round
        # is refused, then the pace holds (bench/ratelimit.py has the figures
        # at 1,000 creates beside botocore's retries).
        assert throttled <= 20, (throttled, calls)
        again = run_cli("plan", "manifests", "--detailed-exitcode", cwd=tmp_path, endpoint=emu.url)
        assert again.returncode == 0, again.stdout
