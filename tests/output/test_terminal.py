"""At a terminal: the confirmation prompt, live progress, colour and NO_COLOR."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.emulator import Emulator, EmulatorConfig
from tests import helpers
from tests.helpers import state_entries, write_manifest

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e


def run_in_terminal(
    args: list[str], cwd: Path, url: str, answer: str | None, no_color: bool = True
) -> tuple[int, str]:
    """Run the CLI with stdin/stdout/stderr on a pseudo-terminal; type ``answer``."""
    leader, follower = pty.openpty()
    env = dict(os.environ, AWS_ENDPOINT_URL_LIGHTSAIL=url)
    env.pop("NO_COLOR", None)
    if no_color:
        env["NO_COLOR"] = "1"
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *args],
        cwd=cwd,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    answered = answer is None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not answered and b"Enter a value:" in output:
            os.write(leader, (answer or "").encode() + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    proc.wait(timeout=10)
    os.close(leader)
    text = output.decode(errors="replace")
    helpers.CLI_OUTPUTS.append(text)
    return proc.returncode, text


def test_prompt_accepts_only_yes(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web")
    with Emulator(EmulatorConfig(key_pool=2)) as emu:
        code, out = run_in_terminal(["apply", "m.yaml"], tmp_path, emu.url, answer="y")
        assert code == 1 and "cancelled; nothing was changed" in out
        assert emu.calls["CreateKeyPair"] == 0
        code, out = run_in_terminal(["apply", "m.yaml"], tmp_path, emu.url, answer="yes")
        assert code == 0, out
        assert "Only 'yes' will be accepted" in out
        assert set(state_entries(tmp_path / "reconciler.state.json")) == {"us-east-1/web"}


def test_progress_counts_on_a_terminal(tmp_path: Path) -> None:
    body = "\n".join(f"- name: kp-{i}" for i in range(12))
    write_manifest(tmp_path / "m.yaml", "us-east-1", body)
    with Emulator(EmulatorConfig(key_pool=4, latency_ms=10)) as emu:
        code, out = run_in_terminal(
            ["apply", "m.yaml", "--auto-approve"], tmp_path, emu.url, answer=None
        )
    assert code == 0, out
    assert "[12/12] applied, 0 failed" in out
    assert "\r" in out  # one line rewritten in place, not 12 lines
    assert "create us-east-1/kp-0: done" not in out


def test_colour_on_a_terminal_unless_no_color(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web")
    with Emulator(EmulatorConfig(key_pool=2)) as emu:
        _, coloured = run_in_terminal(["plan", "m.yaml"], tmp_path, emu.url, None, no_color=False)
        _, plain = run_in_terminal(["plan", "m.yaml"], tmp_path, emu.url, None, no_color=True)
    assert "\x1b[32m+\x1b[0m" in coloured
    assert "\x1b[" not in plain and "+ us-east-1/web" in plain
