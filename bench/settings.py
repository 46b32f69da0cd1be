"""How big each benchmark is: the sizes the targets are set for, and a quick smoke size."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    quick: bool
    fast_runs: int  # runs of a benchmark taking a few seconds or less
    slow_runs: int  # runs of one taking longer
    validate_key_pairs: int
    plan_key_pairs: int
    naive_sample: int  # names the naive script is timed on; the rest is extrapolated
    apply_creates: int
    apply_parallelism: int
    latency_ms: float
    key_pool: int
    memory_key_pairs: tuple[int, ...]


FULL = Settings(
    quick=False,
    fast_runs=5,
    slow_runs=3,
    validate_key_pairs=10_000,
    plan_key_pairs=10_000,
    naive_sample=500,
    apply_creates=1_000,
    apply_parallelism=10,
    latency_ms=20.0,
    key_pool=64,
    memory_key_pairs=(10_000, 100_000),
)

QUICK = Settings(
    quick=True,
    fast_runs=2,
    slow_runs=1,
    validate_key_pairs=1_000,
    plan_key_pairs=1_000,
    naive_sample=50,
    apply_creates=100,
    apply_parallelism=10,
    latency_ms=20.0,
    key_pool=4,
    memory_key_pairs=(1_000, 5_000),
)
