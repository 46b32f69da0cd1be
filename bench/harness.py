"""Where the code runs: the emulator in this process, the code measured in a child.

The emulator stands in for Lightsail, a remote service whose CPU is not ours,
so it serves from this process while the reconciler (or the naive script)
runs in a fresh child process: each side has its own interpreter lock, and the
child's peak RSS (from ``wait4``, through the ``bench.rss`` launcher) is its
own. Children get an AWS environment that cannot reach a real account: fixed
dummy credentials, no config files, no instance metadata, and the emulator as
the Lightsail endpoint.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CHILD_TIMEOUT_S = 600.0


class BenchError(Exception):
    """A benchmark could not be measured (not a missed target: a broken run)."""


def aws_env(workdir: Path, endpoint_url: str | None = None) -> dict[str, str]:
    """The environment for a child: isolated from any real AWS configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="AKIDBENCHMARK",
        AWS_SECRET_ACCESS_KEY="benchmark-secret",  # the emulator does not check signatures
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(workdir / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(workdir / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        NO_COLOR="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])),
    )
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL_LIGHTSAIL"] = endpoint_url
    return env


@dataclass(frozen=True)
class ChildRun:
    wall_s: float  # from spawn to exit, interpreter start-up included
    cpu_s: float  # user + system
    max_rss: int  # peak resident set size in bytes, the child's own
    stdout: str
    stderr: str

    def result(self) -> dict[str, Any]:
        """The JSON object a ``bench.child`` task printed last."""
        lines = self.stdout.strip().splitlines()
        if not lines:
            raise BenchError(f"the child printed no result; stderr:\n{self.stderr[-2000:]}")
        parsed: dict[str, Any] = json.loads(lines[-1])
        return parsed


def run_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    check: bool = True,
    program: str = sys.executable,
) -> ChildRun:
    """Run ``PROGRAM ARGV...`` (``python`` unless told) to completion; its wall
    time, CPU time and peak RSS.

    It runs under the small ``bench.rss`` launcher, which reaps it with
    ``wait4``: spawned from this process directly, its peak RSS would start
    from this process's (see ``bench.rss``).
    """
    out_path, err_path = cwd / ".child.stdout", cwd / ".child.stderr"
    usage_path = cwd / ".child.usage.json"
    launcher = [sys.executable, "-m", "bench.rss", str(usage_path), str(CHILD_TIMEOUT_S), "--"]
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        subprocess.run(
            [*launcher, program, *argv],
            stdout=out,
            stderr=err,
            env=dict(env),
            cwd=cwd,
            check=True,
            timeout=CHILD_TIMEOUT_S + 60,
        )
    usage = json.loads(usage_path.read_text(encoding="utf-8"))
    run = ChildRun(
        wall_s=usage["wall_s"],
        cpu_s=usage["cpu_s"],
        max_rss=usage["max_rss"],
        stdout=out_path.read_text(encoding="utf-8", errors="replace"),
        stderr=err_path.read_text(encoding="utf-8", errors="replace"),
    )
    for path in (out_path, err_path, usage_path):
        path.unlink()
    if check and usage["exit"] != 0:
        raise BenchError(
            f"`{Path(program).name} {' '.join(argv[:3])} ...` exited {usage['exit']}; stderr:\n"
            f"{run.stderr[-2000:]}"
        )
    return run


def run_task(
    task: str, params: Mapping[str, Any], *, env: Mapping[str, str], cwd: Path
) -> dict[str, Any]:
    """Run one ``bench.child`` task in a fresh process and return what it measured.

    ``child_wall_s`` (start-up included), ``child_cpu_s`` and ``child_max_rss`` are added.
    """
    run = run_child(["-m", "bench.child", task, json.dumps(params)], env=env, cwd=cwd)
    result = run.result()
    result.update(child_wall_s=run.wall_s, child_cpu_s=run.cpu_s, child_max_rss=run.max_rss)
    return result


def process_cpu_s() -> float:
    """CPU seconds (user + system) this process has used, all threads together."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@contextmanager
def emulator_process(
    workdir: Path, *flags: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """``python -m reconciler.emulator --port 0 FLAGS...`` in a process of its own,
    every request logged: yields its URL and its log (one line per request)."""
    log = workdir / ".emulator.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.emulator", "--port", "0", "--log-requests", *flags],
            stdout=subprocess.PIPE,
            stderr=err,
            env=dict(env or aws_env(workdir)),
            cwd=workdir,
        )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if not line.startswith("listening on "):
            proc.kill()
            raise BenchError(f"the emulator did not start: {line!r} {log.read_text()[-1000:]}")
        yield line.removeprefix("listening on ").strip(), log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def requests_logged(log: Path) -> int:
    """How many requests the emulator's log shows so far."""
    return log.read_text(encoding="utf-8", errors="replace").count('"POST ')
