"""``python -m bench [BENCHMARK ...] [--quick] [--strict]``: run, print, summarise.

Prints the machine (core count, load, Python) first, since every figure
depends on it, then each benchmark's lines, then the total time and which
targets were missed. Exits 0 unless a benchmark broke, or ``--strict`` is
given and a target was missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence

from bench import apply, emulator, fleet, instances, memory, plan, ratelimit, startup, validate
from bench.harness import BenchError
from bench.report import Report, num
from bench.settings import FULL, QUICK, Settings

BENCHMARKS: dict[str, Callable[[Report, Settings], None]] = {
    "validate": validate.run,
    "plan": plan.run,
    "fleet": fleet.run,
    "apply": apply.run,
    "ratelimit": ratelimit.run,
    "instances": instances.run,
    "memory": memory.run,
    "emulator": emulator.run,
    "startup": startup.run,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="The lightsail-reconciler benchmarks."
    )
    parser.add_argument(
        "benchmarks",
        nargs="*",
        metavar="BENCHMARK",
        help=f"any of {', '.join(BENCHMARKS)} (default: all, in that order)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and single runs: a smoke test"
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    return parser


def _header(report: Report, settings: Settings) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report.say("lightsail-reconciler benchmarks")
    report.say(
        f"python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.system()} {platform.machine()}; cpu_count {os.cpu_count()}; "
        f"load average {load}"
    )
    if settings.quick:
        report.say("quick run: reduced sizes and runs; targets are set for the full sizes")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [name for name in args.benchmarks if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r}; choose from {', '.join(BENCHMARKS)}")
    settings = QUICK if args.quick else FULL
    chosen = list(dict.fromkeys(args.benchmarks)) or list(BENCHMARKS)
    report = Report()
    _header(report, settings)
    start = time.perf_counter()
    try:
        for name in chosen:
            BENCHMARKS[name](report, settings)
    except BenchError as err:
        report.say(f"\nerror: the benchmark could not be measured: {err}")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    total = time.perf_counter() - start
    report.say("")
    summary = f"total_s {num(total)}  targets_met {len(report.met)}"
    summary += f"  targets_missed {len(report.missed)}"
    if report.missed:
        summary += f" ({', '.join(report.missed)})"
    report.say(summary)
    return 1 if args.strict and report.missed else 0
