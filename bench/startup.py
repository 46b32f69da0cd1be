"""(5) Start-up: ``reconciler validate`` of one small manifest, beside ``python -c pass``.

What a pre-commit hook or a pull-request check pays on every run: the
interpreter, the imports, reading one file. Both commands run as fresh
processes, interleaved, so that machine noise falls on both alike; the
target is an absolute bound on the median wall time.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from bench.report import Report, Target, median, num, runs_text, spread
from bench.settings import Settings

TARGET = Target("<=", 0.150)
MANIFEST = """\
apiVersion: reconciler.lightsail/v1
kind: KeyPairSet
region: us-east-1
defaults:
  tags: {team: platform}
keyPairs:
  - name: web-prod
    tags: {env: prod}
  - name: ci-deployer
    generate: local
  - name: bastion
    tags: {env: prod, owner: null}
"""


def _command() -> list[str]:
    script = Path(sys.executable).with_name("reconciler")
    return [str(script)] if script.exists() else [sys.executable, "-m", "reconciler"]


def _timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def run(report: Report, settings: Settings) -> None:
    runs = settings.fast_runs * 3
    command = _command()
    report.section(
        "start-up: reconciler validate of one small manifest (3 key pairs), whole process",
        f"baseline: {sys.executable} -c pass; {runs_text(runs)} each, interleaved",
    )
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        folder = Path(tmp)
        (folder / "m.yaml").write_text(MANIFEST, encoding="utf-8")
        validate = [*command, "validate", "m.yaml"]
        bare = [sys.executable, "-c", "pass"]
        _timed(validate, folder)  # warm the page cache for both
        _timed(bare, folder)
        ours_s: list[float] = []
        bare_s: list[float] = []
        for _ in range(runs):
            ours_s.append(_timed(validate, folder))
            bare_s.append(_timed(bare, folder))
    ours, floor = median(ours_s), median(bare_s)
    report.figure(
        "startup.validate.median_s",
        num(ours),
        ("python_pass_s", num(floor)),
        ratio=ours / floor,
        target=TARGET,
        checked=ours,
    )
    report.figure("startup.validate.runs_s", spread(ours_s), ("python_pass_runs_s", spread(bare_s)))
