"""Remote storage that fails: S3 state behind a seeded fault proxy, in front of moto.

The proxy answers a share of requests with 500 / 503 / throttling, holds some
past the client's timeout (they still land), and drops some connections after
forwarding them. Applies are rerun until they converge; after every run no live
key pair may be without its private key (in the state, its journal objects or
the local spool), and none may have been created twice.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import Emulator
from reconciler.state.s3 import S3Backend
from tests.conftest import aws_client
from tests.emulator_helpers import live_fingerprints
from tests.fault_proxy import FaultProxy, Faults
from tests.helpers import assert_no_leak, created_fingerprint, run_cli, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

KEY_PAIRS = 24
LOCKED = re.compile(r"is locked by .*lock ID ([0-9a-f-]{36})")
MAX_RUNS = 8


def lost_keys(backend: S3Backend, emu: Emulator) -> list[str]:
    """Live key pairs whose private key is nowhere the next run would find it."""
    held = {a.name: e.private_key for a, e in backend.read().entries.items() if e.private_key}
    return sorted(
        name
        for name, fingerprint in live_fingerprints(emu.url).items()
        if name not in held or created_fingerprint(held[name] or "") != fingerprint
    )


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(Faults(error=0.15, slow=0.03, drop_after=0.05, delay=1.2), id="flaky"),
        # S3 answers nothing for a while in the middle of the apply: the journal
        # object being stored when it starts cannot be, and its results are spooled.
        pytest.param(Faults(error=0.05, drop_after=0.05, outage=(10, 16)), id="outage"),
    ],
)
def test_applies_with_s3_state_through_failing_requests_converge_losing_nothing(
    tmp_path: Path, moto_url: str, emulator: Emulator, faults: Faults
) -> None:
    s3: Any = aws_client("s3", moto_url)
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    (tmp_path / "reconciler.yaml").write_text(
        f"backend:\n  type: s3\n  bucket: {bucket}\n  key: lightsail/state.json\n  timeout: 1\n"
    )
    body = "\n".join(f"- name: kp-{i:03d}" for i in range(KEY_PAIRS))
    write_manifest(tmp_path / "manifests" / "many.yaml", "us-east-1", body)
    proxy = FaultProxy(moto_url, faults, seed=int(os.environ.get("SEED", "13")))
    direct = S3Backend(
        bucket, "lightsail/state.json", client=s3, spool_dir=tmp_path / ".reconciler" / "spool"
    )
    outputs: list[str] = []
    stopped: list[bool] = []
    env = {"AWS_ENDPOINT_URL_S3": proxy.url}
    runs = unlocks = 0
    with proxy.running():
        for runs in range(1, MAX_RUNS + 1):  # noqa: B007 (reported after the loop)
            result = run_cli(
                "apply", "manifests", "--auto-approve", "--parallelism", "8",
                cwd=tmp_path, endpoint=emulator.url, env=env,
            )  # fmt: skip
            outputs += [result.stdout, result.stderr]
            held = LOCKED.search(result.stderr)
            if held is not None:
                # S3 failed as a run released its lock; S3 cannot tell that run is
                # gone, so the operator removes it as the message says.
                unlocked = run_cli("force-unlock", held.group(1), cwd=tmp_path, env=env)
                assert unlocked.returncode == 0, unlocked.stderr
                unlocks += 1
                continue
            assert "internal error:" not in result.stderr
            errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
            # One line for the storage failure that stopped the run, not one per key pair.
            assert len(errors) <= 1, result.stderr
            assert all(line.startswith("Error: S3 state: ") for line in errors), errors
            assert lost_keys(direct, emulator) == []
            assert emulator.committed["CreateKeyPair"] == len(live_fingerprints(emulator.url))
            if result.returncode == 0 and "No changes" in result.stdout:
                break
            stopped.append(result.returncode != 0)
    assert len(live_fingerprints(emulator.url)) == KEY_PAIRS, f"no convergence in {runs} runs"
    assert emulator.committed["CreateKeyPair"] == KEY_PAIRS  # nothing created twice
    assert sum(proxy.counts[f] for f in ("error", "outage", "drop_after", "slow")) > 0
    doc = direct.read()
    assert len(doc.entries) == KEY_PAIRS and not doc.pending
    assert not list((tmp_path / ".reconciler" / "spool").glob("*.journal"))
    pems = [e.private_key for e in doc.entries.values() if e.private_key]
    assert_no_leak(outputs, pems)
    if faults.outage is not None:
        assert stopped[0], "the outage did not stop the first apply"
    print(f"s3 faults: {runs} runs, {unlocks} force-unlocks, {dict(proxy.counts)}, 0 keys lost")
