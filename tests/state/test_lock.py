"""The state lock, between real processes: contention, waiting, stale locks, force-unlock."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.errors import LockHeldError, StateError
from reconciler.state import LocalBackend, LockInfo

# Takes the lock, prints its LockInfo, then holds it for argv[3] seconds
# (or until a line arrives on stdin when that is negative).
HOLDER = """
import dataclasses, json, sys, time
from reconciler.state import LocalBackend
with LocalBackend(sys.argv[1]).lock(sys.argv[2]) as info:
    print(json.dumps(dataclasses.asdict(info)), flush=True)
    hold = float(sys.argv[3])
    if hold < 0:
        sys.stdin.readline()
    else:
        time.sleep(hold)
"""


class Holder:
    def __init__(self, state: Path, command: str = "apply", hold: float = -1.0) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(state), command, str(hold)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, "the holder process did not take the lock"
        self.info = LockInfo(**json.loads(line))

    def let_go(self) -> None:
        """Tell the holder to release the lock (it then exits)."""
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def release(self) -> None:
        self.let_go()
        assert self.process.wait(timeout=10) == 0

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "reconciler.state.json"


@pytest.fixture
def holders() -> Iterator[list[Holder]]:
    started: list[Holder] = []
    yield started
    for holder in started:
        holder.close()


def hold(holders: list[Holder], state: Path) -> Holder:
    holder = Holder(state, "apply")
    holders.append(holder)
    return holder


def test_a_second_run_fails_at_once_naming_the_holder(state: Path, holders: list[Holder]) -> None:
    holder = hold(holders, state)
    with pytest.raises(LockHeldError) as caught, LocalBackend(state).lock("plan"):
        pass
    message = str(caught.value)
    assert message.startswith("state is locked by apply (pid ")
    assert f"pid {holder.process.pid} on {socket.gethostname()}" in message
    assert f"since {holder.info.created}" in message
    assert f"lock ID {holder.info.id}" in message
    hint = caught.value.hint or ""
    assert "--lock-timeout" in hint
    assert f"reconciler force-unlock {holder.info.id}" in hint
    holder.release()


def test_holder_info_is_in_the_private_lock_file(state: Path, holders: list[Holder]) -> None:
    old = os.umask(0)
    try:
        holder = hold(holders, state)
    finally:
        os.umask(old)
    lock = Path(f"{state}.lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    info = json.loads(lock.read_text())
    assert info == {
        "id": holder.info.id,
        "pid": holder.process.pid,
        "host": socket.gethostname(),
        "command": "apply",
        "created": holder.info.created,
        "user": holder.info.user,
    }
    holder.release()
    assert not lock.exists()


def test_with_a_timeout_the_second_run_waits_for_the_release(
    state: Path, holders: list[Holder]
) -> None:
    holder = hold(holders, state)
    started = time.monotonic()  # the release comes 0.6 s after this, however loaded the machine
    threading.Timer(0.6, holder.let_go).start()
    with LocalBackend(state).lock("apply", timeout=10) as info:
        waited = time.monotonic() - started
        assert info.pid == os.getpid()
        assert json.loads(Path(f"{state}.lock").read_text())["id"] == info.id
    assert 0.6 <= waited < 8
    assert holder.process.wait(timeout=10) == 0


def test_a_timeout_that_runs_out_still_fails(state: Path, holders: list[Holder]) -> None:
    hold(holders, state)
    started = time.monotonic()
    backend = LocalBackend(state)
    with pytest.raises(LockHeldError, match=r"after waiting 0\.3s"), backend.lock("x", timeout=0.3):
        pass
    assert time.monotonic() - started >= 0.3


def test_a_stale_lock_of_a_killed_run_is_taken_over(
    state: Path, holders: list[Holder], caplog: pytest.LogCaptureFixture
) -> None:
    holder = hold(holders, state)
    holder.kill()
    assert Path(f"{state}.lock").exists()  # left behind
    caplog.set_level(logging.WARNING)
    with LocalBackend(state).lock("apply") as info:
        assert info.pid == os.getpid()
    assert f"stale state lock from pid {holder.process.pid}" in caplog.text
    assert not Path(f"{state}.lock").exists()


def test_two_backends_in_one_process_exclude_each_other(state: Path) -> None:
    first = LocalBackend(state)
    with first.lock("apply"):
        with (
            pytest.raises(LockHeldError, match=f"pid {os.getpid()}"),
            LocalBackend(state).lock("x"),
        ):
            pass
        with pytest.raises(StateError, match="already locked by this run"), first.lock("again"):
            pass
    with LocalBackend(state).lock("plan"):
        pass


def test_force_unlock_with_a_wrong_id_is_refused(state: Path, holders: list[Holder]) -> None:
    holder = hold(holders, state)
    with pytest.raises(StateError, match="lock ID does not match"):
        LocalBackend(state).force_unlock("not-the-id")
    assert Path(f"{state}.lock").exists()
    holder.release()


def test_force_unlock_refuses_a_live_holder_unless_forced(
    state: Path, holders: list[Holder]
) -> None:
    holder = hold(holders, state)
    backend = LocalBackend(state)
    with pytest.raises(StateError, match="still running"):
        backend.force_unlock(holder.info.id)
    assert Path(f"{state}.lock").exists()
    backend.force_unlock(holder.info.id, force=True)
    assert not Path(f"{state}.lock").exists()
    with backend.lock("apply") as mine:
        # The old holder's release must not remove the new holder's lock file.
        holder.release()
        assert json.loads(Path(f"{state}.lock").read_text())["id"] == mine.id


def test_force_unlock_removes_a_dead_holders_lock(state: Path, holders: list[Holder]) -> None:
    holder = hold(holders, state)
    holder.kill()
    LocalBackend(state).force_unlock(holder.info.id)
    assert not Path(f"{state}.lock").exists()


def test_force_unlock_without_a_lock_says_so(state: Path) -> None:
    with pytest.raises(StateError, match="not locked"):
        LocalBackend(state).force_unlock("anything")
