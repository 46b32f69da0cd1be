"""(4) Peak RSS of ``reconciler plan`` over N existing key pairs, in a fresh process.

The plan is the real command line (``python -m reconciler plan DIR --state
FILE``) against the emulator in this process, so the child's peak resident
set, read with ``wait4``, is the plan's own: interpreter, boto3, manifests,
state and the live snapshot. The emulator answers at once here; latency does
not change memory. Two states are measured: private keys in the state (as
created key pairs have them by default), and keys in an ``ssm:`` key store,
the state holding references only; plan then checks the stored keys by
metadata (DescribeParameters, 50 keys a call) against ``bench.ssm_stub``.
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from bench import ssm_stub, workload
from bench.harness import BenchError, aws_env, run_child
from bench.report import Report, Target, median, mib, num, runs_text, spread
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig

# Keys in state: plan's peak at 100,000 key pairs before this figure had a
# target (issue 12, main ce772c7); it must not grow.
BASELINE = 859 << 20
# Keys in a key store: the state holds references only.
KEY_STORE_LIMIT = 512 << 20
KEY_STORE = "ssm:/bench/{region}/{name}"
AGREE = 0.01  # two runs whose peaks differ by at most 1% end the runs early


def run(report: Report, settings: Settings) -> None:
    sizes = settings.memory_key_pairs
    runs = runs_text(settings.slow_runs)
    if settings.slow_runs > 1:
        runs += f", or fewer once two agree within {AGREE:.0%}"
    report.section(
        f"memory: peak RSS of `python -m reconciler plan` for {' and '.join(map(str, sizes))} "
        "existing key pairs (no changes), 1 region; keys in state, then in a key store",
        f"a fresh process per run, reaped with wait4; emulator in this process at 0 ms latency; "
        f"{runs}",
    )
    _series(report, settings, "plan", None)
    _series(report, settings, "plan_key_store", KEY_STORE)


def _series(report: Report, settings: Settings, label: str, key_store: str | None) -> None:
    sizes = settings.memory_key_pairs
    peaks: dict[int, float] = {}
    state_size = 0
    for count in sizes:
        rss, walls, state_size = _measure(count, settings.slow_runs, key_store)
        peaks[count] = median(rss)
        largest = count == max(sizes)
        if key_store is None:
            bound: tuple[str, str] = ("baseline", f"{mib(BASELINE)} (before, keys in state)")
            ratio, target = peaks[count] / BASELINE, Target("<=", 1.0)
        else:
            bound = ("limit", f"{mib(KEY_STORE_LIMIT)} (references in state)")
            ratio, target = peaks[count] / KEY_STORE_LIMIT, Target("<", 1.0)
        report.figure(
            f"memory.{label}.{count}.peak_rss",
            mib(peaks[count]),
            *([bound] if largest else []),
            ("state_file", mib(state_size)),
            ("wall_s", f"{num(median(walls))} (start-up included)"),
            ("runs", spread([r / (1 << 20) for r in rss])),
            ratio=ratio if largest else None,
            target=target if largest else None,
        )
    if len(sizes) >= 2:
        low, high = min(sizes), max(sizes)
        slope = (peaks[high] - peaks[low]) / (high - low)
        report.figure(
            f"memory.{label}.per_key_pair_kib",
            num(slope / 1024),
            ("between", f"{low} and {high} key pairs"),
            ("state_bytes_per_entry", num(state_size / high)),
        )


def _measure(count: int, runs: int, key_store: str | None) -> tuple[list[float], list[float], int]:
    key = workload.key_material()
    with (
        TemporaryDirectory(prefix="reconciler-bench-") as tmp,
        Emulator(EmulatorConfig()) as emu,
        ssm_stub.serve(workload.ref_fingerprint(key)) as ssm_url,
    ):
        workdir = Path(tmp)
        key_pairs = workload.seed(emu.store, count)
        manifests = workdir / "manifests"
        workload.write_manifests(manifests, key_pairs)
        state = workdir / "reconciler.state.json"
        state_size = workload.write_state(state, emu.store, key_pairs, key_store=key_store, key=key)
        env = aws_env(workdir, emu.url)
        env["AWS_ENDPOINT_URL_SSM"] = ssm_url
        argv = ["-m", "reconciler", "plan", str(manifests), "--state", str(state)]
        rss: list[float] = []
        walls: list[float] = []
        for _ in range(runs):
            child = run_child(argv, env=env, cwd=workdir, check=False)
            if f"No changes. {count} unchanged." not in child.stdout:
                raise BenchError(
                    f"expected a plan with no changes, got: {child.stdout[-500:]}"
                    f"{child.stderr[-1000:]}"
                )
            rss.append(child.max_rss)
            walls.append(child.wall_s)
            if len(rss) >= 2 and abs(rss[-1] - rss[-2]) <= AGREE * max(rss[-2:]):
                break  # a peak RSS hardly varies; two that agree settle it
    return rss, walls, state_size
