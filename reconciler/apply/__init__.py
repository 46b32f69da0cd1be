"""The executor: carries out a Plan against Lightsail, journal before every step."""

from reconciler.apply.executor import ApplyResult, Executor, Failure

__all__ = ["ApplyResult", "Executor", "Failure"]
