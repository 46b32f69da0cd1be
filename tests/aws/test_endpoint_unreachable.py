"""Lightsail that does not answer at all (connection refused): one message per run.

An endpoint on an unused port stops the apply before anything is planned; an
endpoint stopped mid-apply stops the run (no new change is started), the
creates under way keep their intents open for the next plan to check, and
either way the failure is one line naming the endpoint and what to do, not
one per key pair. Restarted, the next runs converge with no key pair created
twice and no key lost silently.
"""

from __future__ import annotations

import socket
from pathlib import Path

from reconciler.state import LocalBackend
from tests.aws.test_endpoint_kill import Endpoint, apply
from tests.emulator_helpers import live_fingerprints
from tests.helpers import (
    assert_no_leak,
    created_fingerprint,
    run_cli,
    wait_for_results,
    write_manifest,
)

KEY_PAIRS = 48


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_endpoint_that_refuses_connections_is_one_line_and_nothing_changes(
    tmp_path: Path,
) -> None:
    body = "\n".join(f"- name: kp-{i:03d}" for i in range(4))
    write_manifest(tmp_path / "manifests" / "m.yaml", "us-east-1", body)
    write_manifest(tmp_path / "manifests" / "w.yaml", "eu-west-1", body)
    url = f"http://127.0.0.1:{unused_port()}"
    result = run_cli("apply", "manifests", "--auto-approve", cwd=tmp_path, endpoint=url)
    assert result.returncode == 1
    found = errors(result.stderr)
    assert len(found) == 1, result.stderr
    assert f"cannot reach Lightsail at {url}" in found[0]
    assert "AWS_ENDPOINT_URL_LIGHTSAIL" in result.stderr  # what to do
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "reconciler.state.json").exists()


def test_an_endpoint_stopped_mid_apply_is_reported_once_and_the_rerun_converges(
    tmp_path: Path,
) -> None:
    body = "\n".join(f"- name: kp-{i:03d}" for i in range(KEY_PAIRS))
    write_manifest(tmp_path / "manifests" / "many.yaml", "us-east-1", body)
    endpoint = Endpoint(tmp_path / "emulator.json")
    outputs: list[str] = []
    try:
        url = endpoint.start()
        run = apply(tmp_path, url)
        wait_for_results(tmp_path / "reconciler.state.json.journal", 3)
        endpoint.kill()
        out, err = run.communicate(timeout=120)
        outputs += [out, err]
        assert run.returncode == 1
        assert "Traceback" not in err and "internal error" not in err
        found = errors(err)
        # One line for the endpoint, whatever number of key pairs it cut off.
        assert len(found) == 1, err
        assert found[0].startswith(f"Error: cannot reach Lightsail at {url}")
        assert "the apply stopped" in found[0] and "not started" in found[0]
        assert "Apply finished with errors!" in err
        url = endpoint.start()  # same port, same data
        runs = 1
        for runs in range(2, 6):  # noqa: B007 (reported after the loop)
            again = apply(tmp_path, url)
            out, err = again.communicate(timeout=120)
            outputs += [out, err]
            assert "Traceback" not in err
            if "No changes" in out:
                break
        now = live_fingerprints(url)
        doc = LocalBackend(tmp_path / "reconciler.state.json").read()
    finally:
        endpoint.stop()
    assert sorted(now) == [f"kp-{i:03d}" for i in range(KEY_PAIRS)]
    text = "".join(outputs)
    lost = [name for name in now if f"us-east-1/{name}: key material lost" in text]
    for name, fingerprint in now.items():
        entry = next((e for a, e in doc.entries.items() if a.name == name), None)
        if name in lost:
            continue  # reported by name, never silently
        # Every other live key pair is the one whose key the state holds: none twice.
        assert entry is not None and entry.private_key is not None, name
        assert created_fingerprint(entry.private_key) == fingerprint
    assert not doc.pending or all(p.name in lost for p in doc.pending)
    pems = [e.private_key for e in doc.entries.values() if e.private_key]
    assert_no_leak(outputs, pems)
    print(f"endpoint stopped mid-apply: {runs} runs, {len(lost)} keys lost (reported by name)")
