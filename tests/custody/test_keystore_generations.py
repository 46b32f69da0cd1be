"""Generations (earlier keys a rotation kept) in SSM and Secrets Manager when a store
write fails or a run is cut short: the next run finishes what the last one left.

The real CLI against the emulator (Lightsail) and moto in server mode over HTTP,
through the recording proxy of tests/aws_proxy.py where a call must fail or hang.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from reconciler.custody import key_fingerprint
from reconciler.emulator import Emulator
from tests.aws_proxy import recording_proxy
from tests.custody.test_keystore import aws_env, no_private_key_text, start_migrate, unique
from tests.custody.test_rotation_e2e import MANIFEST, age, stored_names
from tests.helpers import CLI_OUTPUTS, run_cli, state_entries, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

R = "us-east-1"
WEB = f"{R}/web"


def cli(project: Path, emulator: Emulator, url: str, *args: str, code: int = 0) -> str:
    result = run_cli(*args, cwd=project, endpoint=emulator.url, env=aws_env(url))
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout + result.stderr


def get(project: Path, emulator: Emulator, url: str, *extra: str) -> str:
    return cli(project, emulator, url, "key", "get", WEB, *extra)


def rotated(tmp_path: Path, emulator: Emulator, url: str, *flags: str) -> tuple[str, str]:
    """Apply, backdate web, apply again (a rotation); web's first key and its second."""
    write_manifest(tmp_path / "m.yaml", R, MANIFEST)
    cli(tmp_path, emulator, url, "apply", "m.yaml", "--auto-approve", *flags)
    first = get(tmp_path, emulator, url)
    age(emulator, "web", 97)
    assert "(rotate)" in cli(tmp_path, emulator, url, "apply", "m.yaml", "--auto-approve")
    return first, get(tmp_path, emulator, url)


def assert_stored_by_reference(project: Path, spec: str) -> dict[str, Any]:
    """web's key and its generation both referenced in ``spec``, no key text on disk."""
    entry = state_entries(project / "reconciler.state.json")[WEB]
    [generation] = entry["generations"]
    for key in (entry, generation):
        assert key["privateKeyRef"]["store"] == spec
        assert "privateKey" not in key and "privateKeySealed" not in key
    # State, its backup, the journal: no private key text anywhere.
    assert no_private_key_text(project) == []
    assert not (project / "reconciler.state.json.journal").exists()
    return dict(entry)


def test_a_generation_left_in_the_state_by_a_failed_store_write_is_stored_by_the_next_apply(
    tmp_path: Path, emulator: Emulator, moto_url: str
) -> None:
    # Rotated while keys were kept in the state: generation 1 holds web's first key there.
    first, second = rotated(tmp_path, emulator, moto_url)
    spec = "ssm:/" + unique("gens") + "/{region}/{name}"
    with recording_proxy(moto_url) as proxy:
        proxy.refused = {"PutParameter"}  # the store refuses every write
        failed = cli(
            tmp_path, emulator, proxy.url, "apply", "m.yaml", "--auto-approve",
            f"--key-store={spec}", code=1,
        )  # fmt: skip
    assert "AccessDenied" in failed
    held = state_entries(tmp_path / "reconciler.state.json")[WEB]
    assert "privateKey" in held["generations"][0]  # kept where it was: never in neither place

    again = cli(tmp_path, emulator, moto_url, "apply", "m.yaml", "--auto-approve")
    assert "Stored 3 private key(s) left in the state" in again  # web's two, steady's
    entry = assert_stored_by_reference(tmp_path, spec)
    assert get(tmp_path, emulator, moto_url, "--generation", "1") == first
    assert get(tmp_path, emulator, moto_url) == second
    steady = state_entries(tmp_path / "reconciler.state.json")[f"{R}/steady"]
    generation = entry["generations"][0]
    locations = {
        entry["privateKeyRef"]["location"],
        generation["privateKeyRef"]["location"],
        steady["privateKeyRef"]["location"],
    }
    assert len(locations) == 3 and stored_names(moto_url, spec) == locations
    assert "No changes" in cli(tmp_path, emulator, moto_url, "plan", "m.yaml")


def test_a_rotation_whose_store_write_failed_is_stored_beside_its_generation_next_time(
    tmp_path: Path, emulator: Emulator, moto_url: str
) -> None:
    spec = "ssm:/" + unique("rotfail") + "/{region}/{name}"
    write_manifest(tmp_path / "m.yaml", R, MANIFEST)
    cli(tmp_path, emulator, moto_url, "apply", "m.yaml", "--auto-approve", f"--key-store={spec}")
    first = get(tmp_path, emulator, moto_url)
    age(emulator, "web", 97)
    with recording_proxy(moto_url) as proxy:
        proxy.refused = {"PutParameter"}
        failed = cli(tmp_path, emulator, proxy.url, "apply", "m.yaml", "--auto-approve", code=1)
    assert "AccessDeniedException" in failed
    held = state_entries(tmp_path / "reconciler.state.json")[WEB]
    # The new key is kept in the state; the old one, a generation, is still in the store
    # at the key pair's plain location.
    assert "privateKey" in held and "privateKeyRef" in held["generations"][0]

    cli(tmp_path, emulator, moto_url, "apply", "m.yaml", "--auto-approve")
    entry = assert_stored_by_reference(tmp_path, spec)
    live = json.loads(cli(tmp_path, emulator, moto_url, "state", "show", WEB))["fingerprint"]
    current = get(tmp_path, emulator, moto_url)
    assert key_fingerprint(current, "created") == live and current != first
    assert get(tmp_path, emulator, moto_url, "--generation", "1") == first
    assert (
        entry["privateKeyRef"]["location"] != entry["generations"][0]["privateKeyRef"]["location"]
    )


@pytest.mark.parametrize(
    ("source", "target", "delete"),
    [("secretsmanager", "ssm", "DeleteSecret"), ("ssm", "state", "DeleteParameter")],
)
def test_an_interrupted_migration_drops_the_copy_a_generation_left_in_the_old_store(
    tmp_path: Path, emulator: Emulator, moto_url: str, source: str, target: str, delete: str
) -> None:
    first, second = rotated(tmp_path, emulator, moto_url)
    prefix = unique("gmig")
    specs = {
        "secretsmanager": f"secretsmanager:{prefix}/{{region}}/{{name}}",
        "ssm": f"ssm:/{prefix}/{{region}}/{{name}}",
        "state": "state",
    }
    old, new = specs[source], specs[target]
    cli(tmp_path, emulator, moto_url, "state", "migrate-keys", "--to", old)
    assert len(stored_names(moto_url, old)) == 3

    with recording_proxy(moto_url) as proxy:
        # Killed once web's generation is recorded in its new store, before its old copy
        # is deleted (steady's is the first deleted, the generation's the second).
        proxy.hold_operation, proxy.hold_at, proxy.hold_before = delete, 2, True
        proc = start_migrate(tmp_path, new, aws_env(proxy.url))
        assert proxy.held.wait(60), "the migration never reached the generation's delete"
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        CLI_OUTPUTS.extend((out, err))
        proxy.release.set()
    entry = state_entries(tmp_path / "reconciler.state.json")[WEB]
    assert entry["generations"][0].get("privateKeyRef", {"store": "state"})["store"] == new
    assert entry["privateKeyRef"]["store"] == old
    assert len(stored_names(moto_url, old)) == 2  # web's key, and the generation's copy

    cli(tmp_path, emulator, moto_url, "state", "migrate-keys", "--to", new)  # resumes
    assert stored_names(moto_url, old) == set()  # no copy left behind
    if new == "state":
        entry = state_entries(tmp_path / "reconciler.state.json")[WEB]
        assert "privateKeyRef" not in entry and "privateKeyRef" not in entry["generations"][0]
    else:
        assert_stored_by_reference(tmp_path, new)
        assert len(stored_names(moto_url, new)) == 3
    assert get(tmp_path, emulator, moto_url, "--generation", "1") == first
    assert get(tmp_path, emulator, moto_url) == second


def test_a_rotation_of_a_key_left_in_the_state_stores_both_keys(
    tmp_path: Path, emulator: Emulator, moto_url: str
) -> None:
    spec = "ssm:/" + unique("stale") + "/{region}/{name}"
    write_manifest(tmp_path / "m.yaml", R, MANIFEST)
    with recording_proxy(moto_url) as proxy:
        proxy.refused = {"PutParameter"}
        cli(
            tmp_path, emulator, proxy.url, "apply", "m.yaml", "--auto-approve",
            f"--key-store={spec}", code=1,
        )  # fmt: skip
    assert "privateKey" in state_entries(tmp_path / "reconciler.state.json")[WEB]
    first = get(tmp_path, emulator, moto_url)
    # The next apply stores the key it finds in the state, and rotates the key pair: the
    # earlier key, as the plan saw it, is kept as generation 1 in the store too.
    age(emulator, "web", 97)
    out = cli(tmp_path, emulator, moto_url, "apply", "m.yaml", "--auto-approve")
    assert "(rotate)" in out
    entry = assert_stored_by_reference(tmp_path, spec)
    assert get(tmp_path, emulator, moto_url, "--generation", "1") == first
    # One copy of the first key: where the state's key was stored at the start of the run.
    steady = state_entries(tmp_path / "reconciler.state.json")[f"{R}/steady"]
    locations = {
        entry["privateKeyRef"]["location"],
        entry["generations"][0]["privateKeyRef"]["location"],
        steady["privateKeyRef"]["location"],
    }
    assert len(locations) == 3 and stored_names(moto_url, spec) == locations


def test_sealed_generations_are_opened_to_be_stored_and_wait_sealed_until_they_can_be(
    tmp_path: Path, emulator: Emulator, moto_url: str
) -> None:
    from tests.state.test_crypto_cli import age_identity

    recipient, identity = age_identity(tmp_path)
    opened = f"--age-identity={identity}"
    write_manifest(tmp_path / "m.yaml", R, MANIFEST)
    cli(
        tmp_path,
        emulator,
        moto_url,
        "apply",
        "m.yaml",
        "--auto-approve",
        f"--encrypt-with=age:{recipient}",
    )
    first = get(tmp_path, emulator, moto_url, opened)
    age(emulator, "web", 97)
    assert "(rotate)" in cli(tmp_path, emulator, moto_url, "apply", "m.yaml", "--auto-approve")
    held = state_entries(tmp_path / "reconciler.state.json")[WEB]
    assert "privateKeySealed" in held["generations"][0]

    spec = "secretsmanager:" + unique("sealed") + "/{region}/{name}"
    args = ("apply", "m.yaml", "--auto-approve", f"--key-store={spec}")
    refused = cli(tmp_path, emulator, moto_url, *args, code=1)
    assert "--age-identity" in refused
    assert (
        "privateKeySealed"
        in state_entries(tmp_path / "reconciler.state.json")[WEB]["generations"][0]
    )
    cli(tmp_path, emulator, moto_url, *args, opened)
    assert_stored_by_reference(tmp_path, spec)
    # In the store, read back without the age identity.
    assert get(tmp_path, emulator, moto_url, "--generation", "1") == first
