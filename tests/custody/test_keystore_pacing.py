"""Key-store writes at the store's real limits: paced, not failed over to the state.

SSM PutParameter and Secrets Manager CreateSecret accept a few calls a second
per account and region. Here the fault proxy meters the store with a token
bucket in front of moto; an apply of many key pairs with many workers must
learn that rate from the first throttles and keep under it, storing every
key (none left in the state, the store never given up on) with few calls
throttled.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from reconciler.custody import key_fingerprint
from reconciler.emulator import Emulator
from reconciler.state import LocalBackend
from tests.conftest import aws_client
from tests.emulator_helpers import live_fingerprints
from tests.fault_proxy import FaultProxy, Faults
from tests.helpers import run_cli, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

KEY_PAIRS = 40
R = "us-east-1"
# A store that takes 8 calls a second with a burst of 4, against 8 workers.
LIMITED = Faults(rate_limit=(8, 4))
# Throttled store calls, at most: the first round finds the burst spent before
# the pace is cut, then the pace holds.
MAX_THROTTLED_SHARE = 0.25


def stored_fingerprints(moto_url: str, scheme: str, prefix: str) -> dict[str, str]:
    """The fingerprint of every key stored under ``prefix``, by the location a state
    reference records (a parameter's name, a secret's ARN); read from moto directly."""
    if scheme == "ssm":
        ssm: Any = aws_client("ssm", moto_url)
        pages = ssm.get_paginator("get_parameters_by_path").paginate(
            Path=f"/{prefix}", Recursive=True, WithDecryption=True
        )
        found = {p["Name"]: p["Value"] for page in pages for p in page["Parameters"]}
    else:
        secrets: Any = aws_client("secretsmanager", moto_url)
        pages = secrets.get_paginator("list_secrets").paginate(
            Filters=[{"Key": "name", "Values": [prefix]}]
        )
        arns = [s["ARN"] for page in pages for s in page["SecretList"]]
        found = {arn: secrets.get_secret_value(SecretId=arn)["SecretString"] for arn in arns}
    return {location: key_fingerprint(pem, "created") for location, pem in found.items()}


@pytest.mark.parametrize("scheme", ["ssm", "secretsmanager"])
def test_an_apply_against_a_rate_limited_key_store_stores_every_key(
    tmp_path: Path, moto_url: str, emulator: Emulator, scheme: str
) -> None:
    prefix = f"paced-{uuid.uuid4().hex[:8]}"
    spec = (
        f"ssm:/{prefix}/{{region}}/{{name}}"
        if scheme == "ssm"
        else f"secretsmanager:{prefix}/{{region}}/{{name}}"
    )
    (tmp_path / "reconciler.yaml").write_text(f"keys:\n  store: {spec}\n")
    body = "\n".join(f"- name: kp-{i:03d}" for i in range(KEY_PAIRS))
    write_manifest(tmp_path / "manifests" / "many.yaml", R, body)
    proxy = FaultProxy(moto_url, LIMITED, seed=1)
    env = {"AWS_ENDPOINT_URL_SSM": proxy.url, "AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.url}
    with proxy.running():
        applied = run_cli(
            "apply", "manifests", "--auto-approve", "--parallelism", "8",
            cwd=tmp_path, endpoint=emulator.url, env=env,
        )  # fmt: skip
        assert applied.returncode == 0, applied.stderr
        assert "kept in the state" not in applied.stderr
        assert not [line for line in applied.stderr.splitlines() if line.startswith("Error:")]
        # Plan checks the store's labels through the same limit: nothing lost, nothing to do.
        planned = run_cli(
            "plan", "manifests", "--detailed-exitcode", cwd=tmp_path, endpoint=emulator.url, env=env
        )
        assert planned.returncode == 0, planned.stdout + planned.stderr
    local = LocalBackend(tmp_path / "reconciler.state.json")
    entries = {a.name: e for a, e in local.read().entries.items()}
    live = live_fingerprints(emulator.url)
    assert len(entries) == len(live) == KEY_PAIRS
    assert emulator.committed["CreateKeyPair"] == KEY_PAIRS
    stored = stored_fingerprints(moto_url, scheme, prefix)
    assert len(stored) == KEY_PAIRS  # one stored key per key pair, none stray
    for name, entry in entries.items():
        assert not entry.holds_private_key, name
        assert entry.private_key_ref is not None, name
        assert stored.get(entry.private_key_ref["location"]) == live[name], name
    assert "PRIVATE KEY" not in (tmp_path / "reconciler.state.json").read_text()
    calls = sum(proxy.counts.values())
    throttled = proxy.counts["throttled"]
    assert throttled > 0, "the store was never at its limit"
    assert throttled <= MAX_THROTTLED_SHARE * calls, dict(proxy.counts)
    print(f"{scheme}: {calls} store calls, {throttled} throttled")
