"""The instance guard's cost: ``plan --rotate`` of one key pair among N, with M instances.

A plan that deletes, replaces or rotates reads the instances of the regions
concerned (GetInstances, page by page) before it may be applied; a plan with
no such change reads none. Both are run through the real CLI in a fresh
process against the emulator at the usual latency, and the difference is the
guard's price: its pages of instances, one round trip each.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

from bench import workload
from bench.harness import BenchError, aws_env
from bench.report import Report, Target, median, num, runs_text, spread
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig

LAUNCH = {"availabilityZone": "us-east-1a", "blueprintId": "ubuntu_22_04", "bundleId": "nano_3_0"}
BATCH = 20  # instance names per CreateInstances call


def run(report: Report, settings: Settings) -> None:
    count = settings.plan_key_pairs // 10
    instances = 100 if settings.quick else 1_000
    config = EmulatorConfig(latency_ms=settings.latency_ms)
    pages = math.ceil(instances / config.page_size)
    report.section(
        f"instances: plan of {count} key pairs, one rotated (--rotate), {instances} instances "
        f"launched with it, emulator at {num(settings.latency_ms)} ms per call",
        f"the real CLI in a fresh process, start-up included; {runs_text(settings.fast_runs)}",
        "beside the same plan without --rotate, which reads no instance",
    )
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp, Emulator(config) as emulator:
        workdir = Path(tmp)
        key_pairs = workload.seed(emulator.store, count)
        workload.write_manifests(workdir / "manifests", key_pairs)
        workload.write_state(workdir / "reconciler.state.json", emulator.store, key_pairs)
        env = aws_env(workdir, emulator.url)
        _launch(emulator.url, key_pairs[0], instances, env)
        rotate = ("--rotate", f"{workload.REGION}/{key_pairs[0]}")
        plain, guarded, calls = [], [], []
        for _ in range(settings.fast_runs):
            plain.append(_plan(workdir, env, (), expect=0))
            emulator.reset_counters()
            guarded.append(_plan(workdir, env, rotate, expect=1))
            calls.append(emulator.calls["GetInstances"])
    name = f"instances.{instances}"
    report.figure(
        f"{name}.get_instances_calls",
        str(calls[0]),
        ("expected", f"{pages} (ceil({instances}/{config.page_size}) pages x 1 region)"),
        target=Target("==", pages),
        checked=calls[0],
    )
    extra = median(guarded) - median(plain)
    floor = pages * settings.latency_ms / 1000
    report.figure(
        f"{name}.guard_s",
        num(extra),
        ("plan_s", f"{num(median(plain))} without, {num(median(guarded))} with the rotation"),
        ("latency_floor_s", f"{num(floor)} ({pages} pages x {num(settings.latency_ms)} ms)"),
        ("runs_s", f"{spread(plain)} / {spread(guarded)}"),
    )


def _launch(url: str, key_pair: str, count: int, env: dict[str, str]) -> None:
    import boto3

    client = boto3.client(
        "lightsail",
        region_name=workload.REGION,
        endpoint_url=url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    for start in range(0, count, BATCH):
        names = [f"vm-{i:05d}" for i in range(start, min(start + BATCH, count))]
        client.create_instances(instanceNames=names, keyPairName=key_pair, **LAUNCH)


def _plan(workdir: Path, env: dict[str, str], extra: tuple[str, ...], *, expect: int) -> float:
    """Seconds for ``reconciler plan manifests EXTRA`` (exit 1: the guard refuses)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "manifests", *extra],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    took = time.perf_counter() - start
    if done.returncode != expect:
        raise BenchError(f"plan {' '.join(extra)} exited {done.returncode}: {done.stderr[-500:]}")
    return took
