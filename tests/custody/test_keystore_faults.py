"""Key stores that fail: SSM and Secrets Manager behind a seeded fault proxy, in front of moto.

The proxy answers a share of requests with 500 / 503 / throttling, cuts some
answers short (status and headers, half the body), holds some past the
client's timeout (they still land) and drops some connections after
forwarding them. Applies are rerun until every key is in the store; after
every run, each live key pair's private key must be in the store with the
live fingerprint or still in the state (never in neither place, never in two
places with different fingerprints), no key pair may have been created twice,
and the store's failure is one line, not one per key pair.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from reconciler.custody import key_fingerprint
from reconciler.emulator import Emulator
from reconciler.model import StateEntry
from reconciler.state import LocalBackend
from reconciler.state.s3 import S3Backend
from tests.conftest import aws_client
from tests.emulator_helpers import live_fingerprints
from tests.fault_proxy import FaultProxy, Faults
from tests.helpers import assert_no_leak, run_cli, wait_for_results, write_manifest
from tests.state.test_s3_faults import LOCKED

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

KEY_PAIRS = 16
MAX_RUNS = 10
R = "us-east-1"
FLAKY = Faults(error=0.15, slow=0.03, drop_after=0.05, cut=0.05, delay=1.2)
# The store answers nothing for a while early in the apply: the puts then in
# flight outlast their retries, the rest of the run keeps keys in the state.
OUTAGE = Faults(error=0.05, drop_after=0.05, outage=(4, 60))
# Every request answered 503, the whole run.
DOWN = Faults(outage=(0, 1_000_000))


def stored_key(moto_url: str, ref: Mapping[str, str]) -> str | None:
    """The key a reference points at, read from moto directly (not through the proxy)."""
    store, location = ref["store"], ref["location"]
    if store.startswith("ssm:"):
        ssm: Any = aws_client("ssm", moto_url)
        found = ssm.get_parameters(Names=[location], WithDecryption=True)["Parameters"]
        return str(found[0]["Value"]) if found else None
    secrets: Any = aws_client("secretsmanager", moto_url)
    try:
        return str(secrets.get_secret_value(SecretId=location)["SecretString"])
    except secrets.exceptions.ResourceNotFoundException:
        return None


def lost_keys(entries: dict[str, StateEntry], emu: Emulator, moto_url: str) -> list[str]:
    """Live key pairs whose key is neither in the state nor in the store with the live
    fingerprint, or is in both with different fingerprints."""
    lost = []
    for name, fingerprint in live_fingerprints(emu.url).items():
        entry = entries.get(name)
        held = {
            key_fingerprint(pem, "created")
            for pem in (
                entry.private_key if entry else None,
                stored_key(moto_url, entry.private_key_ref)
                if entry and entry.private_key_ref
                else None,
            )
            if pem is not None
        }
        if held != {fingerprint}:
            lost.append(name)
    return sorted(lost)


def stored_names(moto_url: str, spec: str, prefix: str) -> list[str]:
    """Every key the store holds under the test's prefix (to find strays and duplicates)."""
    if spec.startswith("ssm:"):
        ssm: Any = aws_client("ssm", moto_url)
        pages = ssm.get_paginator("describe_parameters").paginate(
            ParameterFilters=[{"Key": "Name", "Option": "BeginsWith", "Values": [f"/{prefix}/"]}]
        )
        return sorted(p["Name"] for page in pages for p in page["Parameters"])
    secrets: Any = aws_client("secretsmanager", moto_url)
    pages = secrets.get_paginator("list_secrets").paginate(
        Filters=[{"Key": "name", "Values": [prefix]}]
    )
    return sorted(s["Name"] for page in pages for s in page["SecretList"])


def converge(
    tmp_path: Path,
    emulator: Emulator,
    moto_url: str,
    env: dict[str, str],
    read: Any,
    *,
    store: str,
) -> tuple[int, int, list[str]]:
    """Apply until every key is in the store; the runs, force-unlocks and outputs."""
    outputs: list[str] = []
    runs = unlocks = 0
    for runs in range(1, MAX_RUNS + 1):  # noqa: B007 (reported after the loop)
        result = run_cli(
            "apply", "manifests", "--auto-approve", "--parallelism", "8",
            cwd=tmp_path, endpoint=emulator.url, env=env,
        )  # fmt: skip
        outputs += [result.stdout, result.stderr]
        held = LOCKED.search(result.stderr)
        if held is not None:
            # S3 failed as a run released its lock (S3 state only): removed as the message says.
            unlocked = run_cli("force-unlock", held.group(1), cwd=tmp_path, env=env)
            # Through the same failing S3, it may have to be run again, as it then says.
            assert unlocked.returncode == 0 or "run again" in unlocked.stderr, unlocked.stderr
            unlocks += 1
            continue
        assert "internal error:" not in result.stderr
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        # One line for a failing store (or S3 state), however many keys it held back.
        assert len(errors) <= 2, result.stderr
        assert all(
            line.startswith((f"Error: {store}: ", "Error: S3 state: ")) for line in errors
        ), errors
        entries = {a.name: e for a, e in read().entries.items()}
        assert lost_keys(entries, emulator, moto_url) == []
        assert emulator.committed["CreateKeyPair"] == len(live_fingerprints(emulator.url))
        in_state = [n for n, e in entries.items() if e.holds_private_key]
        if result.returncode == 0 and len(entries) == KEY_PAIRS and not in_state:
            break
        if result.returncode == 0:
            # A run that ends well has stored every key it could; only a failing store
            # leaves keys in the state, and then the run says so.
            assert not in_state, result.stderr
    return runs, unlocks, outputs


def check_converged(
    entries: dict[str, StateEntry], emulator: Emulator, moto_url: str, spec: str, prefix: str
) -> None:
    assert len(live_fingerprints(emulator.url)) == KEY_PAIRS
    assert emulator.committed["CreateKeyPair"] == KEY_PAIRS  # nothing created twice
    assert len(entries) == KEY_PAIRS
    for name, entry in entries.items():
        assert entry.private_key is None and entry.private_key_sealed is None, name
        assert entry.private_key_ref is not None, name
        pem = stored_key(moto_url, entry.private_key_ref)
        assert (
            pem is not None
            and key_fingerprint(pem, "created") == live_fingerprints(emulator.url)[name]
        )
    # Exactly one stored key per key pair: none stray, none duplicated.
    assert len(stored_names(moto_url, spec, prefix)) == KEY_PAIRS


def setup_project(tmp_path: Path, keys: str, backend: str = "") -> None:
    (tmp_path / "reconciler.yaml").write_text(f"{backend}keys:\n{keys}  timeout: 1\n")
    body = "\n".join(f"- name: kp-{i:03d}" for i in range(KEY_PAIRS))
    write_manifest(tmp_path / "manifests" / "many.yaml", R, body)


@pytest.mark.parametrize(
    "faults", [pytest.param(FLAKY, id="flaky"), pytest.param(OUTAGE, id="outage")]
)
@pytest.mark.parametrize("scheme", ["ssm", "secretsmanager"])
def test_applies_with_a_failing_key_store_converge_losing_nothing(
    tmp_path: Path, moto_url: str, emulator: Emulator, scheme: str, faults: Faults
) -> None:
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    spec = (
        f"ssm:/{prefix}/{{region}}/{{name}}"
        if scheme == "ssm"
        else f"secretsmanager:{prefix}/{{region}}/{{name}}"
    )
    setup_project(tmp_path, f"  store: {spec}\n")
    proxy = FaultProxy(moto_url, faults, seed=int(os.environ.get("SEED", "13")))
    env = {"AWS_ENDPOINT_URL_SSM": proxy.url, "AWS_ENDPOINT_URL_SECRETS_MANAGER": proxy.url}
    local = LocalBackend(tmp_path / "reconciler.state.json")
    with proxy.running():
        runs, _, outputs = converge(tmp_path, emulator, moto_url, env, local.read, store=spec)
    entries = {a.name: e for a, e in local.read().entries.items()}
    check_converged(entries, emulator, moto_url, spec, prefix)
    assert sum(proxy.counts[f] for f in ("error", "outage", "drop_after", "slow")) > 0
    if faults is OUTAGE:
        assert runs > 1, "the outage did not hold keys back"
    assert_no_leak(outputs, [])
    print(f"{scheme} faults: {runs} runs, {dict(proxy.counts)}, 0 keys lost")


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param(FLAKY, id="flaky"),
        # Neither S3 nor SSM answers for a while: journal records go to the spool and
        # keys stay with them; the next runs move both.
        pytest.param(Faults(error=0.05, drop_after=0.05, outage=(20, 50)), id="outage"),
    ],
)
def test_s3_state_and_an_ssm_key_store_both_failing_converge_losing_nothing(
    tmp_path: Path, moto_url: str, emulator: Emulator, faults: Faults
) -> None:
    s3: Any = aws_client("s3", moto_url)
    bucket = f"faults-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    backend = f"backend:\n  type: s3\n  bucket: {bucket}\n  key: state.json\n  timeout: 1\n"
    setup_project(tmp_path, f"  store: {spec}\n", backend)
    proxy = FaultProxy(moto_url, faults, seed=int(os.environ.get("SEED", "13")))
    env = {"AWS_ENDPOINT_URL_S3": proxy.url, "AWS_ENDPOINT_URL_SSM": proxy.url}
    spool = tmp_path / ".reconciler" / "spool"
    direct = S3Backend(bucket, "state.json", client=s3, spool_dir=spool)
    with proxy.running():
        runs, unlocks, outputs = converge(
            tmp_path, emulator, moto_url, env, direct.read, store=spec
        )
    entries = {a.name: e for a, e in direct.read().entries.items()}
    check_converged(entries, emulator, moto_url, spec, prefix)
    assert not list(spool.glob("*.journal"))
    assert_no_leak(outputs, [])
    print(f"s3 + ssm faults: {runs} runs, {unlocks} force-unlocks, {dict(proxy.counts)}, 0 lost")


def test_a_key_store_that_is_down_holds_keys_in_the_state_and_says_so_once(
    tmp_path: Path, moto_url: str, emulator: Emulator
) -> None:
    prefix = f"down-{uuid.uuid4().hex[:8]}"
    spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    setup_project(tmp_path, f"  store: {spec}\n")
    # Every request fails: the store is down for the whole run.
    proxy = FaultProxy(moto_url, DOWN, seed=1)
    env = {"AWS_ENDPOINT_URL_SSM": proxy.url}
    with proxy.running():
        down = run_cli(
            "apply", "manifests", "--auto-approve", "--parallelism", "4",
            cwd=tmp_path, endpoint=emulator.url, env=env,
        )  # fmt: skip
    assert down.returncode == 1
    errors = [line for line in down.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, down.stderr
    assert errors[0].startswith(f"Error: {spec}: storing the key of {R}/kp-")
    assert "in SSM parameter /" in errors[0] and "tried 9 times" in errors[0]
    assert f"{KEY_PAIRS} private keys are kept in the state" in down.stderr
    assert "the next apply moves them to" in down.stderr
    # Once the store was found failing, no other key was sent: only the 4 workers'
    # puts then in flight were tried (9 times each), not all 16 keys.
    assert proxy.counts["outage"] <= 4 * 9
    local = LocalBackend(tmp_path / "reconciler.state.json")
    entries = {a.name: e for a, e in local.read().entries.items()}
    assert lost_keys(entries, emulator, moto_url) == []
    assert all(e.private_key is not None for e in entries.values())
    # The store answers again: the next apply moves every key first, then replaces
    # one key pair, dropping the key it just stored (the plan was made before).
    again = run_cli(
        "apply", "manifests", "--auto-approve", f"--replace={R}/kp-000",
        cwd=tmp_path, endpoint=emulator.url, env={"AWS_ENDPOINT_URL_SSM": moto_url},
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"Stored {KEY_PAIRS} private key(s) left in the state" in again.stderr
    entries = {a.name: e for a, e in local.read().entries.items()}
    assert lost_keys(entries, emulator, moto_url) == []
    assert all(e.private_key_ref is not None for e in entries.values())
    assert emulator.committed["CreateKeyPair"] == KEY_PAIRS + 1
    assert len(stored_names(moto_url, spec, prefix)) == KEY_PAIRS
    assert "PRIVATE KEY" not in (tmp_path / "reconciler.state.json").read_text()


def test_a_bad_key_store_timeout_is_positioned(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(
        "keys:\n  store: ssm:/k/{region}/{name}\n  timeout: 0\n"
    )
    write_manifest(tmp_path / "manifests" / "one.yaml", R, "- name: kp-one")
    bad = run_cli("plan", "manifests", cwd=tmp_path)
    assert bad.returncode == 1
    assert "reconciler.yaml:3:" in bad.stderr
    assert "keys.timeout must be a number of seconds > 0" in bad.stderr


def test_keys_of_a_run_killed_before_its_store_writes_are_stored_first_thing_next_run(
    tmp_path: Path, moto_url: str, emulator: Emulator
) -> None:
    prefix = f"killed-{uuid.uuid4().hex[:8]}"
    spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    (tmp_path / "reconciler.yaml").write_text(f"keys:\n  store: {spec}\n")
    names = [f"kp-{i:03d}" for i in range(4)]
    write_manifest(tmp_path / "manifests" / "m.yaml", R, "\n".join(f"- name: {n}" for n in names))
    # An SSM endpoint that takes connections and never answers: every store write hangs.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_LIGHTSAIL": emulator.url,
            "AWS_ENDPOINT_URL_SSM": f"http://127.0.0.1:{silent.getsockname()[1]}",
        }
        run = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "apply", "manifests", "--auto-approve"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # Every key is journaled (and its store write under way) when the run dies.
        wait_for_results(tmp_path / "reconciler.state.json.journal", len(names))
        run.send_signal(signal.SIGKILL)
        out, err = run.communicate(timeout=30)
    assert "PRIVATE KEY" in (tmp_path / "reconciler.state.json.journal").read_text()
    # The next apply has a change to ask about and no terminal to ask on: it is refused,
    # but only after the keys the killed run left behind went to their store.
    write_manifest(
        tmp_path / "manifests" / "m.yaml", R, "\n".join(f"- name: {n}" for n in [*names, "kp-new"])
    )
    again = run_cli(
        "apply", "manifests", cwd=tmp_path, endpoint=emulator.url,
        env={"AWS_ENDPOINT_URL_SSM": moto_url},
    )  # fmt: skip
    assert again.returncode == 1 and "needs confirmation" in again.stderr
    assert f"Stored {len(names)} private key(s) left in the state in {spec}" in again.stderr
    local = LocalBackend(tmp_path / "reconciler.state.json")
    entries = {a.name: e for a, e in local.read().entries.items()}
    assert sorted(entries) == names and lost_keys(entries, emulator, moto_url) == []
    assert all(e.private_key_ref is not None for e in entries.values())
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml"]
    assert not [p for p in leftovers if "PRIVATE KEY" in p.read_text(errors="replace")]
    assert "kp-new" not in live_fingerprints(emulator.url)  # nothing else was made
    assert_no_leak([out, err, again.stdout, again.stderr], [])


def test_stored_keys_a_failing_store_cannot_drop_are_named_once(
    tmp_path: Path, moto_url: str, emulator: Emulator
) -> None:
    prefix = f"left-{uuid.uuid4().hex[:8]}"
    spec = f"ssm:/{prefix}/{{region}}/{{name}}"
    setup_project(tmp_path, f"  store: {spec}\n")
    made = run_cli(
        "apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emulator.url,
        env={"AWS_ENDPOINT_URL_SSM": moto_url},
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    proxy = FaultProxy(moto_url, DOWN, seed=2)
    with proxy.running():
        gone = run_cli(
            "destroy", "manifests", "--auto-approve", cwd=tmp_path, endpoint=emulator.url,
            env={"AWS_ENDPOINT_URL_SSM": proxy.url},
        )  # fmt: skip
    assert gone.returncode == 1
    assert live_fingerprints(emulator.url) == {}  # the key pairs are gone all the same
    errors = [line for line in gone.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 2, gone.stderr  # the store's failure, and the keys it left
    assert errors[0].startswith(f"Error: {spec}: deleting SSM parameter /{prefix}/")
    assert errors[1].startswith(f"Error: the stored keys of {KEY_PAIRS} deleted key pair(s)")
    assert f"{R}/kp-000, {R}/kp-001" in errors[1] and "and 11 more" in errors[1]
    assert len(stored_names(moto_url, spec, prefix)) == KEY_PAIRS  # left, and said so
