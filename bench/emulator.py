"""(5) The emulator's persistence: N creates with ``--data`` beside the same N in memory.

A fresh emulator serves from this process (no added latency, a key pool so
that RSA generation is not measured); a child process makes N CreateKeyPair
calls from boto3 on 10 threads (the ``apply_boto3`` task). The figure is the
child's wall time with a data file over the time without one, at each size:
persistence that costs O(1) per change keeps the ratio flat as N grows, a
rewrite of the whole file per change makes it grow with N.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench.harness import aws_env, run_task
from bench.report import Report, Target, median, mib, num, runs_text
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig

SIZES = (1_000, 2_000, 4_000, 10_000)
QUICK_SIZES = (200, 400)
PARALLELISM = 10
# Pooled keys repeat; a small pool keeps each fresh emulator's start-up short.
KEY_POOL = 8
RATIO_TARGET = Target("<=", 1.5)


def run(report: Report, settings: Settings) -> None:
    sizes = QUICK_SIZES if settings.quick else SIZES
    report.section(
        f"emulator persistence: N creates with --data beside N in memory, N in "
        f"{', '.join(str(n) for n in sizes)}",
        f"boto3 in a child process on {PARALLELISM} threads, no added latency, emulator "
        f"key pool of {KEY_POOL} RSA keys; {runs_text(settings.slow_runs)} each",
        "ratio: time with a data file over time in memory (O(1) persistence keeps it flat)",
    )
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        workdir = Path(tmp)
        for count in sizes:
            memory = [_creates(workdir, count, data=False) for _ in range(settings.slow_runs)]
            stored = [_creates(workdir, count, data=True) for _ in range(settings.slow_runs)]
            memory_s = median([r["wall_s"] for r in memory])
            data_s = median([r["wall_s"] for r in stored])
            report.figure(
                f"emulator.persist.{count}.data_s",
                num(data_s),
                ("memory_s", num(memory_s)),
                ("fsyncs_per_create", num(median([r["fsyncs"] for r in stored]) / count)),
                ("bytes_written", mib(median([r["bytes_written"] for r in stored]))),
                ("data_file", mib(median([r["file_size"] for r in stored]))),
                ratio=data_s / memory_s,
                target=RATIO_TARGET,
            )


def _creates(workdir: Path, count: int, *, data: bool) -> dict[str, Any]:
    rundir = workdir / f"run-{count}-{'data' if data else 'memory'}"
    rundir.mkdir(exist_ok=True)
    data_path = rundir / "lightsail.json"
    for stale in (data_path, Path(f"{data_path}.log")):
        stale.unlink(missing_ok=True)
    config = EmulatorConfig(data_path=str(data_path) if data else None, key_pool=KEY_POOL)
    with Emulator(config) as emulator:
        env = aws_env(rundir, emulator.url)
        params = {"region": "us-east-1", "count": count, "parallelism": PARALLELISM}
        result = run_task("apply_boto3", params, env=env, cwd=rundir)
        result["fsyncs"] = emulator.store.fsync_count
        result["bytes_written"] = emulator.store.bytes_written
        if emulator.store.count("us-east-1") != count:
            raise RuntimeError(f"expected {count} key pairs in the emulator")
    result["file_size"] = data_path.stat().st_size if data else 0
    return result
