"""(2) ``plan`` of N existing key pairs at 20 ms per call, beside a naive boto3 loop.

The N key pairs are declared, in the state, and live with the same tags and
fingerprints, so the plan finds no changes: it is the cost of knowing that.
Ours is timed inside a fresh child process (interpreter start-up and imports
excluded, boto3 client creation included): read the manifests, read the
state, read Lightsail (GetKeyPairs, page by page), diff, render. The naive
script is what a user would write without the tool: ``get_key_pair`` per
name, ``create_key_pair`` for the missing ones; with none missing it is N
GetKeyPair calls, timed on an evenly spread sample and extrapolated linearly.

Beside it, the plan as a user feels it: ``reconciler plan`` from exec to exit
(the console script in a fresh process, start-up, imports and all), against
the emulator in a process of its own serving a ``--data`` file, so that
neither side's CPU or interpreter lock is the other's.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench import workload
from bench.harness import (
    BenchError,
    aws_env,
    emulator_process,
    process_cpu_s,
    requests_logged,
    run_child,
    run_task,
)
from bench.report import Report, Target, calls_text, median, mib, num, runs_text, spread
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig, Store

RATIO_TARGET = Target(">=", 50.0)
FLOOR_TARGET = Target("<=", 1.5)


def run(report: Report, settings: Settings) -> None:
    count = settings.plan_key_pairs
    config = EmulatorConfig(latency_ms=settings.latency_ms)
    report.section(
        f"plan: {count} existing key pairs (no changes) in 1 region, emulator at "
        f"{num(settings.latency_ms)} ms per call, page size {config.page_size}",
        f"ours: in a fresh process, timed from reading manifests to the rendered plan "
        f"(start-up excluded); {runs_text(settings.fast_runs)}",
        f"naive: boto3 get_key_pair per name on {settings.naive_sample} names, extrapolated "
        f"to {count}; {runs_text(settings.slow_runs)}",
    )
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        key_pairs = workload.seed(emulator.store, count)
        manifests = workdir / "manifests"
        workload.write_manifests(manifests, key_pairs)
        state = workdir / "reconciler.state.json"
        state_size = workload.write_state(state, emulator.store, key_pairs)
        env = aws_env(workdir, emulator.url)

        ours: list[dict[str, Any]] = []
        calls: list[dict[str, int]] = []
        params = {"manifests": str(manifests), "state": str(state), "expect": count}
        for _ in range(settings.fast_runs):
            emulator.reset_counters()
            served = process_cpu_s()
            ours.append(run_task("plan", params, env=env, cwd=workdir))
            ours[-1]["emulator_cpu_s"] = process_cpu_s() - served
            calls.append(dict(emulator.calls))

        step = max(1, count // settings.naive_sample)
        sample = key_pairs[::step][: settings.naive_sample]
        sample_file = workdir / "sample.txt"
        sample_file.write_text("\n".join(sample) + "\n", encoding="utf-8")
        naive: list[float] = []
        naive_calls: list[dict[str, int]] = []
        for _ in range(settings.slow_runs):
            emulator.reset_counters()
            result = run_task(
                "naive",
                {"region": workload.REGION, "names": str(sample_file)},
                env=env,
                cwd=workdir,
            )
            naive.append(result["loop_s"])
            naive_calls.append(dict(emulator.calls))

    if any(c != calls[0] for c in calls):
        raise BenchError(f"API calls differ between runs of the same plan: {calls}")
    pages = math.ceil(count / config.page_size)
    made = sum(calls[0].values())
    totals = [r["total_s"] for r in ours]
    ours_s = median(totals)
    naive_s = median(naive) * count / len(sample)
    per_name = (sum(naive_calls[0].values()) - 1) / len(sample)  # one warm-up call
    name = f"plan.{count}"
    report.figure(
        f"{name}.median_s",
        num(ours_s),
        ("naive_s", f"{num(naive_s)} (extrapolated x{count / len(sample):g} from {len(sample)})"),
        ratio=naive_s / ours_s,
        target=RATIO_TARGET,
    )
    floor = pages * settings.latency_ms / 1000
    report.figure(
        f"{name}.vs_floor_s",
        num(ours_s),
        ("latency_floor_s", f"{num(floor)} ({pages} pages x {num(settings.latency_ms)} ms)"),
        ratio=ours_s / floor,
        target=FLOOR_TARGET,
    )
    report.figure(
        f"{name}.api_calls",
        str(made),
        ("expected", f"{pages} (ceil({count}/{config.page_size}) x 1 region)"),
        ("by_operation", calls_text(calls[0])),
        ("naive_calls", f"{round(per_name * count)} ({per_name:g} per name)"),
        target=Target("==", pages),
        checked=made,
    )
    report.figure(
        f"{name}.breakdown_s",
        " ".join(
            f"{part} {num(median([r[part + '_s'] for r in ours]))}"
            for part in ("load", "observe", "diff", "render", "cpu")
        ),
        ("state_file", mib(state_size)),
        ("observe", "state parsed while Lightsail is read"),
    )
    report.figure(
        f"{name}.runs_s",
        spread(totals),
        ("naive_sample_runs_s", spread(naive)),
        ("child_wall_with_startup_s", num(median([r["child_wall_s"] for r in ours]))),
        ("emulator_cpu_s", num(median([r["emulator_cpu_s"] for r in ours]))),
    )

    _whole_process(report, settings)


def _command() -> tuple[str, list[str]]:
    """The console script beside this interpreter, else ``python -m reconciler``."""
    script = Path(sys.executable).with_name("reconciler")
    if script.exists():
        return str(script), []
    return sys.executable, ["-m", "reconciler"]


def _whole_process(report: Report, settings: Settings) -> None:
    count, latency = settings.plan_key_pairs, settings.latency_ms
    page_size = EmulatorConfig().page_size
    program, prefix = _command()
    report.section(
        f"plan, whole process: `{Path(program).name} {' '.join([*prefix, 'plan'])}` of {count} "
        f"existing key pairs (keys in the state, in clear), exec to exit",
        f"emulator: `python -m reconciler.emulator --data FILE --latency-ms {num(latency)}` in "
        f"a process of its own; {runs_text(settings.fast_runs)}",
    )
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        workdir = Path(tmp)
        data = workdir / "emulator.json"
        store = Store(str(data))
        with store.transaction():  # one fsync for the lot
            key_pairs = workload.seed(store, count)
        workload.write_manifests(workdir / "manifests", key_pairs)
        state = workdir / "reconciler.state.json"
        state_size = workload.write_state(state, store, key_pairs)
        store.close()
        argv = [*prefix, "plan", "manifests", "--state", str(state)]
        flags = ("--data", str(data), "--latency-ms", f"{latency:g}")
        with emulator_process(workdir, *flags) as (url, log):
            env = aws_env(workdir, url)
            walls: list[float] = []
            cpus: list[float] = []
            rss: list[float] = []
            calls: list[int] = []
            for _ in range(settings.fast_runs):
                before = requests_logged(log)
                child = run_child(argv, env=env, cwd=workdir, check=False, program=program)
                if f"No changes. {count} unchanged." not in child.stdout:
                    raise BenchError(
                        f"expected a plan with no changes, got: {child.stdout[-500:]}"
                        f"{child.stderr[-1000:]}"
                    )
                time.sleep(0.05)  # the emulator's last log line
                calls.append(requests_logged(log) - before)
                walls.append(child.wall_s)
                cpus.append(child.cpu_s)
                rss.append(child.max_rss)
    pages = math.ceil(count / page_size)
    floor = pages * latency / 1000
    wall = median(walls)
    name = f"plan.{count}.whole_process"
    report.figure(
        f"{name}_s",
        num(wall),
        ("latency_floor_s", f"{num(floor)} ({pages} pages x {num(latency)} ms)"),
        ("above_floor_s", num(wall - floor)),
        ratio=wall / floor,
        target=FLOOR_TARGET,
    )
    report.figure(
        f"{name}.runs_s",
        spread(walls),
        ("cpu_s", num(median(cpus))),
        ("peak_rss", mib(median(rss))),
        ("api_calls", str(calls[0])),
        ("state_file", mib(state_size)),
    )


# -- in the child process ----------------------------------------------------


def measure_plan(params: dict[str, Any]) -> dict[str, Any]:
    """What ``reconciler plan MANIFESTS --state STATE`` does, timed step by step."""
    from reconciler.aws.lightsail import ClientOptions, Lightsail
    from reconciler.cli import workflow
    from reconciler.cli.options import Options
    from reconciler.manifests.load import load_desired
    from reconciler.output import text as render

    start, cpu = time.perf_counter(), process_cpu_s()
    desired = load_desired([params["manifests"]])
    loaded = time.perf_counter()
    options = Options(state=params["state"])
    backend = workflow.open_backend(options)
    lightsail = Lightsail(ClientOptions(pool_size=options.parallelism))
    # As `reconciler plan` does: the state is parsed while Lightsail answers.
    doc, live = workflow.observe(
        desired, workflow.read_without_secrets(backend), lightsail, options
    )
    observed = time.perf_counter()
    plan, _ = workflow.build_plan(desired, doc, lightsail, options, live=live)
    diffed = time.perf_counter()
    text = render.plan_text(plan)
    end, cpu = time.perf_counter(), process_cpu_s() - cpu
    if plan.changes or plan.findings or plan.unchanged != params["expect"]:
        raise BenchError(f"expected a plan with no changes, got: {text[-500:]}")
    return {
        "total_s": end - start,
        "load_s": loaded - start,
        "observe_s": observed - loaded,
        "diff_s": diffed - observed,
        "render_s": end - diffed,
        "cpu_s": cpu,
    }


def measure_naive(params: dict[str, Any]) -> dict[str, Any]:
    """The script a user would write: one GetKeyPair per name, create what is missing."""
    import boto3

    names = Path(params["names"]).read_text(encoding="utf-8").split()
    client = boto3.client("lightsail", region_name=params["region"])
    client.get_key_pair(keyPairName=names[0])  # connect and load the model, once
    start = time.perf_counter()
    for name in names:
        try:
            client.get_key_pair(keyPairName=name)
        except client.exceptions.NotFoundException:
            client.create_key_pair(keyPairName=name)
    return {"loop_s": time.perf_counter() - start, "names": len(names)}
