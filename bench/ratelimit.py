"""(5) ``apply`` of N creates against a rate limit, beside a Terraform-like client.

The emulator meters calls with a token bucket (``--rate-limit RATE:BURST``,
per account and region) at 20 ms per call. Ours is ``reconciler apply`` with
10 workers, timed as in (3); the pace it learns from the first throttles is
the point. The baseline is what a provider without a pace does: 10 workers,
one CreateKeyPair per key pair through botocore's ``standard`` retry mode
(exponential backoff with jitter, retrying until it gets through). The bound
is N / rate: a client that never wastes a token finishes then (less the burst).

Then an outage under the same limit: 10 workers reading through
``Lightsail`` (its pacing and retries) while the emulator answers every
call with a 5xx or a throttle for a while, then recovers. The figure is how
long after the first success the pace is back within 10% of the limit.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from bench import workload
from bench.harness import BenchError, aws_env, run_task
from bench.report import Report, Target, median, num
from bench.settings import Settings
from reconciler.emulator import Emulator, EmulatorConfig, RateLimit

RATE, BURST = 50.0, 20.0
WALL_TARGET = Target("<=", 1.15)
THROTTLED_TARGET = Target("<=", 0.05)
BASELINE_ATTEMPTS = 25  # the Terraform AWS provider retries up to 25 times
# The outage: every call a 5xx or (this share) a throttle.
OUTAGE_THROTTLED = 0.3
RECOVERY_TARGET = Target("<=", 3.0)  # seconds: "within a few seconds of success"
BACK = 0.9  # within 10% of the limit
START_AFTER_S = 3.0  # the child's start-up, before the schedule begins


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
    _outage(report, settings)


def _outage(report: Report, settings: Settings) -> None:
    before, outage, after = (3.0, 4.0, 6.0) if settings.quick else (5.0, 10.0, 10.0)
    runs = settings.slow_runs
    report.section(
        f"recovery after an outage: --rate-limit {RATE:g}:{BURST:g}, {num(before)} s healthy, "
        f"{num(outage)} s of 5xx answers ({OUTAGE_THROTTLED:.0%} throttles instead), "
        f"{num(after)} s healthy; emulator at {num(settings.latency_ms)} ms per call",
        f"10 workers reading (GetKeyPairs) through Lightsail's pace and retries, in a fresh "
        f"process; {runs} run{'s' if runs > 1 else ''}",
        f"recovery: from the first success after the outage to the pace within "
        f"{1 - BACK:.0%} of {RATE:g}/s (or lifted: nothing holds the calls back)",
    )
    config = EmulatorConfig(latency_ms=settings.latency_ms, rate_limits=(RateLimit(RATE, BURST),))
    results: list[dict[str, Any]] = []
    with TemporaryDirectory(prefix="reconciler-bench-") as tmp:
        workdir = Path(tmp)
        for _ in range(runs):
            with Emulator(config) as emulator:
                t0 = time.monotonic() + START_AFTER_S
                schedule = (t0 + before, t0 + before + outage)
                flipper = threading.Thread(
                    target=_outage_schedule, args=(emulator, schedule), daemon=True
                )
                flipper.start()
                params = {
                    "t0": t0,
                    "outage": schedule,
                    "duration": before + outage + after,
                    "workers": 10,
                    "limit": RATE,
                }
                result = run_task(
                    "ratelimit_outage", params, env=aws_env(workdir, emulator.url), cwd=workdir
                )
                flipper.join()
                result["throttled"] = sum(emulator.throttled.values())
                results.append(result)
    recovered = [r["recovery_s"] for r in results]
    if any(r is None for r in recovered):
        report.figure(
            "ratelimit.outage.recovery_s",
            f"never (not within the {num(after)} s after the outage)",
            ("runs_s", "[" + " ".join("never" if r is None else num(r) for r in recovered) + "]"),
            target=RECOVERY_TARGET,
            checked=float("inf"),
        )
        return
    first = results[len(results) // 2]
    report.figure(
        "ratelimit.outage.recovery_s",
        num(median(recovered)),
        ("outage_s", num(outage)),
        ("pace_before", f"{num(first['pace_before'])}/s"),
        ("lowest_pace", f"{num(first['lowest_pace'])}/s"),
        ("throughput_after", f"{num(median([r['throughput_after'] for r in results]))}/s"),
        ("runs_s", "[" + " ".join(num(r) for r in recovered) + "]"),
        target=RECOVERY_TARGET,
        checked=median(recovered),
    )


def _outage_schedule(emulator: Emulator, schedule: tuple[float, float]) -> None:
    """Every call a 5xx or a throttle between the two times (this host's monotonic clock)."""
    start, end = schedule
    time.sleep(max(0.0, start - time.monotonic()))
    emulator.faults.throttle_rate = OUTAGE_THROTTLED
    emulator.faults.error_rate = 1.0 - OUTAGE_THROTTLED
    time.sleep(max(0.0, end - time.monotonic()))
    emulator.faults.throttle_rate = emulator.faults.error_rate = 0.0


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


def measure_outage(params: dict[str, Any]) -> dict[str, Any]:
    """Workers reading through ``Lightsail`` until the schedule ends; the pace sampled."""
    import botocore.exceptions

    from reconciler.aws.lightsail import ClientOptions, Lightsail

    workers, limit = params["workers"], params["limit"]
    start, end = params["outage"]
    finish = params["t0"] + params["duration"]
    lightsail = Lightsail(ClientOptions(pool_size=workers))
    pacer = lightsail.pacer(workload.REGION)
    lock = threading.Lock()
    successes: list[float] = []
    samples: list[tuple[float, float | None]] = []
    done = threading.Event()

    def work() -> None:
        while time.monotonic() < finish:
            try:
                lightsail.read(workload.REGION, "get_key_pairs")
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                continue  # a read that spent its retries in the outage; the next one
            with lock:
                successes.append(time.monotonic())

    def sample() -> None:
        while not done.wait(0.005):
            samples.append((time.monotonic(), pacer.rate))

    time.sleep(max(0.0, params["t0"] - time.monotonic()))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    sampler.join()
    after = [t for t in successes if t >= end]
    first = after[0] if after else None
    back = None
    if first is not None:
        back = next(
            (t for t, rate in samples if t >= first and (rate is None or rate >= BACK * limit)),
            None,
        )
    before = [rate for t, rate in samples if t < start and rate is not None]
    during = [rate for t, rate in samples if start <= t < end and rate is not None]
    tail = [t for t in successes if back is not None and t >= back]
    span = (finish - back) if back is not None else 0.0
    return {
        "recovery_s": None if first is None or back is None else back - first,
        "pace_before": before[-1] if before else float("nan"),
        "lowest_pace": min(during) if during else float("nan"),
        "throughput_after": len(tail) / span if span > 0 else 0.0,
        "successes": len(successes),
    }
