"""(3) ``apply`` of N creates at 20 ms per call with parallelism P, beside N x 20 ms / P.

The child process does what ``reconciler apply`` does (lock, begin, plan,
journal, execute, commit) against a local state in a fresh folder; the
figure is the wall time from opening the journal to the committed state. The
emulator hands out RSA keys from a pre-generated pool, so its key generation
is not measured. Bytes written and fsyncs are the state backend's own
counters (journal appends and state writes together). The reserve figure is
what reserving journal room before each call costs: the bytes preallocated
(``posix_fallocate``, given back when the journal closes), the allocation calls
that made them, and the fsyncs reserving adds (none: the room needs no fsync
of its own, the record that fills it is fsynced as before).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench import workload
from bench.harness import BenchError, aws_env, process_cpu_s, run_task
from bench.report import Report, Target, calls_text, median, mib, num, runs_text, spread
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig
from reconciler.model import REGIONS

WALL_TARGET = Target("<=", 1.3)
BYTES_TARGET = Target("<=", 3.0)


def run(report: Report, settings: Settings) -> None:
    count, parallelism = settings.apply_creates, settings.apply_parallelism
    bound = count * settings.latency_ms / 1000 / parallelism
    report.section(
        f"apply: {count} creates, emulator at {num(settings.latency_ms)} ms per call, "
        f"parallelism {parallelism}, local state",
        f"emulator key pool of {settings.key_pool} RSA keys: its key generation is not measured",
        f"timed in a fresh process from opening the journal to the committed state; "
        f"{runs_text(settings.slow_runs)}, each in its own region and state",
        "boto3 floor: the same CreateKeyPair calls from raw boto3 on as many threads, "
        "warm client, no journal: the least the Python client takes on this machine",
    )
    config = EmulatorConfig(latency_ms=settings.latency_ms, key_pool=settings.key_pool)
    results: list[dict[str, Any]] = []
    floors: list[dict[str, Any]] = []
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        env = aws_env(workdir, emulator.url)
        for index in range(settings.slow_runs):
            region = REGIONS[index % len(REGIONS)]
            rundir = workdir / f"run-{index}"
            rundir.mkdir()
            manifests = rundir / "manifests"
            workload.write_manifests(manifests, workload.names(count), region=region)
            params = {
                "manifests": str(manifests),
                "state": str(rundir / "reconciler.state.json"),
                "expect": count,
                "parallelism": parallelism,
            }
            emulator.reset_counters()
            served = process_cpu_s()
            result = run_task("apply", params, env=env, cwd=rundir)
            result["emulator_cpu_s"] = process_cpu_s() - served
            result["calls"] = dict(emulator.calls)
            results.append(result)
            floor_params = {
                "region": REGIONS[(index + settings.slow_runs) % len(REGIONS)],
                "count": count,
                "parallelism": parallelism,
            }
            floors.append(run_task("apply_boto3", floor_params, env=env, cwd=rundir))

    walls = [r["wall_s"] for r in results]
    wall = median(walls)
    written = median([r["bytes_written"] for r in results])
    size = median([r["state_size"] for r in results])
    name = f"apply.{count}"
    report.figure(
        f"{name}.wall_s",
        num(wall),
        (
            "bound_s",
            f"{num(bound)} ({count} x {num(settings.latency_ms)} ms / {parallelism})",
        ),
        ratio=wall / bound,
        target=WALL_TARGET,
    )
    report.figure(
        f"{name}.bytes_written",
        mib(written),
        ("state_size", mib(size)),
        ratio=written / size,
        target=BYTES_TARGET,
    )
    fsyncs = median([r["fsyncs"] for r in results])
    report.figure(
        f"{name}.fsyncs",
        f"{fsyncs:.0f}",
        ("per_create", num(fsyncs / count)),
        ("journal_appends", str(results[0]["journal_appends"])),
        ("api_calls", calls_text(results[0]["calls"])),
    )
    reserved = median([r["bytes_reserved"] for r in results])
    report.figure(
        f"{name}.reserve_bytes_per_create",
        f"{reserved / count:.0f}",
        ("preallocated_total", mib(reserved)),
        ("fallocate_calls", f"{median([r['allocations'] for r in results]):.0f}"),
        ("extra_fsyncs_per_create", "0"),
        ("written_per_create", f"{written / count:.0f}"),
        ("fsyncs_per_create", num(fsyncs / count)),
    )
    floor = median([f["wall_s"] for f in floors])
    report.figure(
        f"{name}.boto3_floor_s",
        num(floor),
        ("ours_over_floor", num(wall / floor)),
        ("cpu_s", num(median([r["cpu_s"] for r in results]))),
        ("floor_cpu_s", num(median([f["cpu_s"] for f in floors]))),
    )
    report.figure(
        f"{name}.runs_s",
        spread(walls),
        ("plan_before_s", num(median([r["plan_s"] for r in results]))),
        ("child_wall_with_startup_s", num(median([r["child_wall_s"] for r in results]))),
        ("emulator_cpu_s", num(median([r["emulator_cpu_s"] for r in results]))),
    )


# -- in the child process ----------------------------------------------------


def measure_apply(params: dict[str, Any]) -> dict[str, Any]:
    """``reconciler apply MANIFESTS --state STATE --auto-approve``, timed around execution."""
    from reconciler.apply.executor import Executor
    from reconciler.cli import workflow
    from reconciler.cli.options import Options
    from reconciler.manifests.load import load_desired
    from reconciler.planning.planner import Action
    from reconciler.state import LocalBackend

    expect = params["expect"]
    desired = load_desired([params["manifests"]])
    options = Options(state=params["state"], parallelism=params["parallelism"])
    backend = workflow.open_backend(options)
    if not isinstance(backend, LocalBackend):
        raise BenchError(f"expected a local state backend, got {backend!r}")
    with workflow.lightsail_for(options) as lightsail, backend.lock("apply"):
        planning = time.perf_counter()
        doc = backend.begin()
        plan, _ = workflow.build_plan(desired, doc, lightsail, options)
        planned = time.perf_counter()
        creates = [c for c in plan.changes if c.action is Action.CREATE]
        if len(creates) != expect or len(plan.changes) != expect:
            raise BenchError(f"expected {expect} creates, the plan has {plan.counts()}")
        start, cpu = time.perf_counter(), process_cpu_s()
        journal = backend.journal()
        executor = Executor(lightsail, journal, parallelism=options.parallelism)
        try:
            outcome = executor.run(plan)
        finally:
            backend.commit()
        wall, cpu = time.perf_counter() - start, process_cpu_s() - cpu
    if not outcome.ok or len(outcome.succeeded) != expect:
        failures = "; ".join(f.message for f in outcome.failed[:3])
        raise BenchError(f"{len(outcome.failed)} of {expect} creates failed: {failures}")
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "plan_s": planned - planning,
        "bytes_written": backend.bytes_written,
        "fsyncs": backend.fsync_count,
        "bytes_reserved": backend.bytes_reserved,
        "allocations": backend.allocations,
        "journal_appends": journal.appends,
        "state_size": os.path.getsize(params["state"]),
    }


def measure_boto3_floor(params: dict[str, Any]) -> dict[str, Any]:
    """The same creates from a bare boto3 client on a thread pool: no journal, no state."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    parallelism = params["parallelism"]
    client = boto3.client(
        "lightsail",
        region_name=params["region"],
        config=Config(max_pool_connections=parallelism),
    )
    client.get_key_pairs()  # connect and load the model, once
    calls = [
        {
            "keyPairName": name,
            "tags": [{"key": k, "value": v} for k, v in workload.merged_tags(i).items() if v],
        }
        for i, name in enumerate(workload.names(params["count"]))
    ]

    start, cpu = time.perf_counter(), process_cpu_s()
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        list(pool.map(lambda kwargs: client.create_key_pair(**kwargs), calls))
    return {"wall_s": time.perf_counter() - start, "cpu_s": process_cpu_s() - cpu}
