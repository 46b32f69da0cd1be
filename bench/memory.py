"""(4) Peak RSS of ``reconciler plan`` over N existing key pairs, in a fresh process.

The plan is the real command line (``python -m reconciler plan DIR --state
FILE``) against the emulator in this process, so the child's peak resident
set, read with ``wait4``, is the plan's own: interpreter, boto3, manifests,
state (a private key in every entry, as created key pairs have) and the live
snapshot. The emulator answers at once here; latency does not change memory.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from bench import workload
from bench.harness import BenchError, aws_env, run_child
from bench.report import Report, Target, median, mib, num, runs_text, spread
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig

LIMIT = 1 << 30  # 1 GiB
TARGET = Target("<", 1.0)
AGREE = 0.01  # two runs whose peaks differ by at most 1% end the runs early


def run(report: Report, settings: Settings) -> None:
    sizes = settings.memory_key_pairs
    runs = runs_text(settings.slow_runs)
    if settings.slow_runs > 1:
        runs += f", or fewer once two agree within {AGREE:.0%}"
    report.section(
        f"memory: peak RSS of `python -m reconciler plan` for {' and '.join(map(str, sizes))} "
        "existing key pairs (no changes), 1 region",
        f"a fresh process per run, reaped with wait4; emulator in this process at 0 ms latency; "
        f"{runs}",
    )
    peaks: dict[int, float] = {}
    for count in sizes:
        rss, walls, state_size = _measure(count, settings.slow_runs)
        peaks[count] = median(rss)
        largest = count == max(sizes)
        report.figure(
            f"memory.plan.{count}.peak_rss",
            mib(peaks[count]),
            *([("limit", mib(LIMIT))] if largest else []),
            ("state_file", mib(state_size)),
            ("wall_s", f"{num(median(walls))} (start-up included)"),
            ("runs", spread([r / (1 << 20) for r in rss])),
            ratio=peaks[count] / LIMIT if largest else None,
            target=TARGET if largest else None,
        )
    if len(sizes) >= 2:
        low, high = min(sizes), max(sizes)
        slope = (peaks[high] - peaks[low]) / (high - low)
        report.figure(
            "memory.plan.per_key_pair_kib",
            num(slope / 1024),
            ("between", f"{low} and {high} key pairs"),
            ("state_bytes_per_entry", num(state_size / high)),
        )


def _measure(count: int, runs: int) -> tuple[list[float], list[float], int]:
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp, Emulator(EmulatorConfig()) as emu:
        workdir = Path(tmp)
        key_pairs = workload.seed(emu.store, count)
        manifests = workdir / "manifests"
        workload.write_manifests(manifests, key_pairs)
        state = workdir / "reconciler.state.json"
        state_size = workload.write_state(state, emu.store, key_pairs)
        env = aws_env(workdir, emu.url)
        argv = ["-m", "reconciler", "plan", str(manifests), "--state", str(state)]
        rss: list[float] = []
        walls: list[float] = []
        for _ in range(runs):
            child = run_child(argv, env=env, cwd=workdir)
            if f"No changes. {count} unchanged." not in child.stdout:
                raise BenchError(f"expected a plan with no changes, got: {child.stdout[-500:]}")
            rss.append(child.max_rss)
            walls.append(child.wall_s)
            if len(rss) >= 2 and abs(rss[-1] - rss[-2]) <= AGREE * max(rss[-2:]):
                break  # a peak RSS hardly varies; two that agree settle it
    return rss, walls, state_size
