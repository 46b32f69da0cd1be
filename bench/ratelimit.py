"""(5) ``apply`` of N creates against a rate limit, beside a Terraform-like client.

The emulator meters calls with a token bucket (``--rate-limit RATE:BURST``,
per account and region) at 20 ms per call. Ours is ``reconciler apply`` with
10 workers, timed as in (3); the pace it learns from the first throttles is
the point. The baseline is what a provider without a pace does: 10 workers,
one CreateKeyPair per key pair through botocore's ``standard`` retry mode
(exponential backoff with jitter, retrying until it gets through). The bound
is N / rate: a client that never wastes a token finishes then (less the burst).
"""

from __future__ import annotations

import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench import workload
from bench.harness import BenchError, aws_env, run_task
from bench.report import Report, Target, num
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig, RateLimit

RATE, BURST = 50.0, 20.0
WALL_TARGET = Target("<=", 1.15)
THROTTLED_TARGET = Target("<=", 0.05)
BASELINE_ATTEMPTS = 25  # the Terraform AWS provider retries up to 25 times


def run(report: Report, settings: Settings) -> None:
    count, parallelism = settings.apply_creates, settings.apply_parallelism
    bound = count / RATE
    report.section(
        f"apply against a rate limit: {count} creates, --rate-limit {RATE:g}:{BURST:g}, "
        f"emulator at {num(settings.latency_ms)} ms per call, parallelism {parallelism}",
        "ours: reconciler apply (plan, journal, execute, commit), timed as in apply above",
        f"baseline: {parallelism} workers, boto3 create_key_pair per key pair, botocore "
        f"'standard' retries (up to {BASELINE_ATTEMPTS} attempts): a Terraform-like provider",
        f"bound: N / rate = {num(bound)} s; throttled: calls refused / calls made; one run each",
    )
    limits = (RateLimit(RATE, BURST),)
    config = EmulatorConfig(
        latency_ms=settings.latency_ms, key_pool=settings.key_pool, rate_limits=limits
    )
    measured: dict[str, dict[str, Any]] = {}
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        workdir = Path(tmp)
        for mode in ("ours", "baseline"):
            # A fresh emulator each: a full bucket and no key pairs.
            with Emulator(config) as emulator:
                env = aws_env(workdir, emulator.url)
                rundir = workdir / mode
                rundir.mkdir()
                if mode == "ours":
                    manifests = rundir / "manifests"
                    workload.write_manifests(manifests, workload.names(count))
                    params: dict[str, Any] = {
                        "manifests": str(manifests),
                        "state": str(rundir / "reconciler.state.json"),
                        "expect": count,
                        "parallelism": parallelism,
                    }
                    result = run_task("apply", params, env=env, cwd=rundir)
                else:
                    params = {"count": count, "parallelism": parallelism}
                    result = run_task("apply_botocore_standard", params, env=env, cwd=rundir)
                if emulator.committed["CreateKeyPair"] != count:
                    raise BenchError(
                        f"{mode}: {emulator.committed['CreateKeyPair']} of {count} created"
                    )
                result["calls"] = sum(emulator.calls.values())
                result["throttled"] = sum(emulator.throttled.values())
                measured[mode] = result

    ours, base = measured["ours"], measured["baseline"]
    name = f"ratelimit.{count}"
    report.figure(
        f"{name}.wall_s",
        num(ours["wall_s"]),
        ("bound_s", f"{num(bound)} ({count} / {RATE:g} per s)"),
        ("baseline_s", num(base["wall_s"])),
        ("baseline_ratio", num(base["wall_s"] / bound)),
        ratio=ours["wall_s"] / bound,
        target=WALL_TARGET,
    )
    share, base_share = ours["throttled"] / ours["calls"], base["throttled"] / base["calls"]
    report.figure(
        f"{name}.throttled_share",
        num(share),
        ("throttled", f"{ours['throttled']} of {ours['calls']} calls"),
        ("baseline_share", num(base_share)),
        ("baseline_throttled", f"{base['throttled']} of {base['calls']} calls"),
        target=THROTTLED_TARGET,
        checked=share,
    )


# -- in the child process ----------------------------------------------------


def measure_botocore_standard(params: dict[str, Any]) -> dict[str, Any]:
    """``parallelism`` workers, one create per key pair, botocore's standard retries."""
    from concurrent.futures import ThreadPoolExecutor

    import boto3
    from botocore.config import Config

    parallelism = params["parallelism"]
    client = boto3.client(
        "lightsail",
        config=Config(
            retries={"mode": "standard", "total_max_attempts": BASELINE_ATTEMPTS},
            max_pool_connections=parallelism,
        ),
    )
    names = workload.names(params["count"])
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        list(pool.map(lambda name: client.create_key_pair(keyPairName=name), names))
    return {"wall_s": time.perf_counter() - start}
