"""The endpoint itself dies: the emulator (with --data) SIGKILLed and restarted mid-apply.

Creates in flight when it dies have an unknown outcome: the next run checks
them with GetKeyPair, never creates a name twice, and reports by name any key
pair that went live without its private key reaching the reconciler.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.aws.lightsail import ClientOptions, Lightsail
from reconciler.manifests.load import load_desired
from reconciler.planning.planner import FindingKind, make_plan
from reconciler.state import LocalBackend
from tests.emulator_helpers import live_fingerprints
from tests.helpers import (
    CLI_OUTPUTS,
    assert_no_leak,
    created_fingerprint,
    wait_for_results,
    write_manifest,
)

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

PER_ROUND = 48
ROUNDS = 3
KEY_PAIRS = PER_ROUND * ROUNDS
REPO = Path(__file__).resolve().parents[2]


class Endpoint:
    """``python -m reconciler.emulator --data FILE`` in its own process, on a fixed port."""

    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = 0
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> str:
        args = ["--data", str(self.data), "--port", str(self.port), "--latency-ms", "30"]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "reconciler.emulator", *args, "--key-pool", "8"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.startswith("listening on "), line
        url = line.split()[-1]
        self.port = int(url.rsplit(":", 1)[1])
        return url

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def apply(cwd: Path, url: str) -> subprocess.Popen[str]:
    args = ["apply", "manifests", "--auto-approve", "--parallelism", "4"]
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env={**os.environ, "AWS_ENDPOINT_URL_LIGHTSAIL": url},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_an_endpoint_killed_mid_apply_loses_no_key_silently_and_creates_none_twice(
    tmp_path: Path,
) -> None:
    endpoint = Endpoint(tmp_path / "emulator.json")
    rng = random.Random(11)
    outputs: list[str] = []
    runs = 0
    try:
        url = endpoint.start()
        for round_no in range(ROUNDS):
            # Each round adds key pairs, so every kill lands among creates.
            body = "\n".join(f"- name: kp-{i:03d}" for i in range((round_no + 1) * PER_ROUND))
            write_manifest(tmp_path / "manifests" / "many.yaml", "us-east-1", body)
            run = apply(tmp_path, url)
            wait_for_results(tmp_path / "reconciler.state.json.journal", rng.randint(2, 12))
            endpoint.kill()
            if round_no % 2:
                # Down until the apply gives up: its creates in flight stay
                # outcome-unknown, for the next run to check with GetKeyPair.
                out, err = run.communicate(timeout=120)
                assert run.returncode == 1
                url = endpoint.start()  # same port, same data file
            else:
                time.sleep(0.2)  # back while the apply still retries
                url = endpoint.start()
                out, err = run.communicate(timeout=120)
            outputs += [out, err]
            runs += 1
            assert "Traceback" not in err and "internal error" not in err
        for _ in range(3):
            run = apply(tmp_path, url)
            out, err = run.communicate(timeout=120)
            outputs += [out, err]
            runs += 1
            if "No changes" in out:
                break
        CLI_OUTPUTS.extend(outputs)
        now = live_fingerprints(url)
        doc = LocalBackend(tmp_path / "reconciler.state.json").read()
        final = make_plan(
            load_desired([tmp_path / "manifests"]),
            doc.entries,
            doc.pending,
            Lightsail(ClientOptions(endpoint_url=url)).snapshot(["us-east-1"]),
        )
    finally:
        endpoint.stop()
    assert sorted(now) == [f"kp-{i:03d}" for i in range(KEY_PAIRS)]
    assert final.changes == (), final.changes[:3]
    lost = {f.address.name for f in final.findings if f.kind is FindingKind.LOST_KEY and f.address}
    for name, fingerprint in now.items():
        entry = next((e for a, e in doc.entries.items() if a.name == name), None)
        if name in lost:
            assert entry is None and any(a.name == name for a in doc.pending)
            # Reported by name, not silently dropped.
            assert f"us-east-1/{name}: key material lost" in out + err
            continue
        # Every other live key pair is the one whose key the state holds: none was
        # created a second time behind the state's back.
        assert entry is not None and entry.private_key is not None, name
        assert created_fingerprint(entry.private_key) == fingerprint == entry.fingerprint
    assert all(" 0 destroyed" in o for o in outputs if "Apply " in o)
    pems = [e.private_key for e in doc.entries.values() if e.private_key]
    assert_no_leak(outputs, pems)
    print(f"endpoint kill: {ROUNDS} kills, {runs} runs, {len(lost)} keys lost (reported by name)")
