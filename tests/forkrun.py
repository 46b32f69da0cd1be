"""Run the reconciler CLI as a separate process without paying interpreter start-up.

A fork server (one per test session, started on first use as ``python -m
tests.forkrun SOCKET``) imports the reconciler, boto3 and botocore once and
runs a single thread. For every run it forks a child that sets its own
environment, working directory and standard streams and then runs
``reconciler.cli.app.main`` exactly as ``python -m reconciler`` would. The child
is a real process with its own pid: it can be sent SIGKILL at any moment,
holds its own locks and files, and shares no memory with the test.

Standard output and error go to files in a private temporary directory (not
under the test's tmp_path, which the leak checks scan) and are read back when
the child has exited. The server reports each child's pid, then its exit
status (negative for a signal, as ``subprocess`` does).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

# Imported once in the fork server, never again per run.
PRELOAD = (
    "reconciler.cli.app",
    "reconciler.cli.apply",
    "reconciler.cli.plan",
    "reconciler.cli.workflow",
    "reconciler.apply.executor",
    "reconciler.aws.lightsail",
    "reconciler.state",
    "reconciler.emulator",
    "boto3",
    "botocore.session",
    "botocore.client",
    "botocore.retries.standard",
    "botocore.retries.adaptive",
    "cryptography.hazmat.primitives.asymmetric.rsa",
    "jsonschema",
    "yaml",
)


# -- client (the test process) ----------------------------------------------

_server_lock = threading.Lock()
_server: tuple[subprocess.Popen[bytes], str] | None = None


def _socket_path() -> str:
    global _server
    with _server_lock:
        if _server is None or _server[0].poll() is not None:
            directory = tempfile.mkdtemp(prefix="reconciler-forkserver-")
            path = os.path.join(directory, "sock")
            process = subprocess.Popen(
                [sys.executable, "-m", "tests.forkrun", path],
                cwd=ROOT,
                stdin=subprocess.PIPE,
            )
            deadline = time.monotonic() + 60
            while not os.path.exists(path):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the CLI fork server did not start")
                time.sleep(0.01)
            _server = (process, path)
            atexit.register(_stop, process, directory)
        return _server[1]


def _stop(process: subprocess.Popen[bytes], directory: str) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the server exits at end of input
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)
    shutil.rmtree(directory, ignore_errors=True)


class ForkedCLI:
    """A running CLI process, with the parts of ``subprocess.Popen`` the tests use."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        input: str | None = None,
    ) -> None:
        self.args = ["reconciler", *argv]
        self.returncode: int | None = None
        self._dir = tempfile.mkdtemp(prefix="reconciler-forkrun-")
        stdin = os.devnull
        if input is not None:
            stdin = os.path.join(self._dir, "stdin")
            with open(stdin, "w", encoding="utf-8") as f:
                f.write(input)
        self._out = os.path.join(self._dir, "stdout")
        self._err = os.path.join(self._dir, "stderr")
        request = {
            "argv": list(argv),
            "cwd": str(cwd),
            "env": dict(env),
            "stdin": stdin,
            "out": self._out,
            "err": self._err,
        }
        self._conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._conn.connect(_socket_path())
        self._conn.sendall(json.dumps(request).encode() + b"\n")
        self._reader = self._conn.makefile("rb")
        self.pid = int(self._reader.readline())

    def poll(self) -> int | None:
        if self.returncode is None:
            ready, _, _ = select.select([self._conn], [], [], 0)
            if ready:
                self._read_status()
        return self.returncode

    def _read_status(self) -> None:
        line = self._reader.readline()
        if not line:
            raise RuntimeError("the CLI fork server went away")
        self.returncode = int(line)
        self._reader.close()
        self._conn.close()

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            ready, _, _ = select.select([self._conn], [], [], timeout)
            if not ready:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            self._read_status()
        assert self.returncode is not None
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the exit, then both outputs; the temporary files are removed."""
        self.wait(timeout)
        try:
            return _read(self._out), _read(self._err)
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Like ``subprocess.run([python, -m, reconciler, *argv], capture_output=True, text=True)``."""
    proc = ForkedCLI(argv, cwd=cwd, env=env, input=input)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=10)
        raise
    assert proc.returncode is not None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


# -- server -------------------------------------------------------------------


def _child(request: dict[str, Any]) -> None:
    """In the forked child: become `python -m reconciler ARGV` and exit with its code."""
    code: Any = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        for fd, path, flags in (
            (0, request["stdin"], os.O_RDONLY),
            (1, request["out"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
            (2, request["err"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        ):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        # The streams a fresh interpreter gives a process whose output is a file.
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
        argv = request["argv"]
        sys.argv = ["reconciler", *argv]
        from reconciler.cli.app import main

        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
    if code is None:
        code = 0
    elif not isinstance(code, int):
        with contextlib.suppress(Exception):
            sys.stderr.write(f"{code}\n")
            sys.stderr.flush()
        code = 1
    os._exit(code)


def serve(path: str) -> None:
    """Fork a CLI child per connection; exit when standard input closes."""
    import importlib

    for module in PRELOAD:
        importlib.import_module(module)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.rename(path + ".tmp", path)  # ready
    waiting: dict[int, socket.socket] = {}
    while True:
        try:
            ready, _, _ = select.select([listener, wake_r, sys.stdin], [], [])
        except InterruptedError:
            continue
        if sys.stdin in ready and not os.read(sys.stdin.fileno(), 1):
            return
        if listener in ready:
            conn, _ = listener.accept()
            request = json.loads(conn.makefile("rb").readline())
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                for sock in (listener, conn, *waiting.values()):
                    sock.close()
                os.close(wake_r)
                os.close(wake_w)
                _child(request)
            waiting[pid] = conn
            conn.sendall(f"{pid}\n".encode())
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid)
            with contextlib.suppress(OSError):
                conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
