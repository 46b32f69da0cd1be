"""Fault injection: decide, per call, whether the emulator misbehaves and how.

Every call draws the same three numbers from one seeded generator, under a
lock, whatever its operation and whether any fault is enabled. So the faults
a sequence of calls meets depend only on the seed and the order of the calls,
and turning one fault on does not shift the draws of another.
"""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import dataclass


class Fault(enum.Enum):
    NONE = "none"
    THROTTLE = "throttle"  # 400 ThrottlingException before any effect
    ERROR = "error"  # 500 ServiceException before any effect
    FAIL_AFTER_COMMIT = "fail-after-commit"  # effect committed, then a 500
    DROP_AFTER_COMMIT = "drop-after-commit"  # effect committed, then the connection drops


@dataclass(frozen=True, slots=True)
class Draw:
    """The faults one call meets: ``before`` the effect and ``after`` a commit."""

    before: Fault
    after: Fault


NO_FAULTS = Draw(Fault.NONE, Fault.NONE)


class FaultPlan:
    """Seeded fault decisions; rates are shares of calls, checked by ``EmulatorConfig``."""

    def __init__(
        self,
        *,
        seed: int | None = None,
        throttle_rate: float = 0.0,
        error_rate: float = 0.0,
        commit_then_fail_rate: float = 0.0,
    ) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self.throttle_rate = throttle_rate
        self.error_rate = error_rate
        self.commit_then_fail_rate = commit_then_fail_rate

    def draw(self) -> Draw:
        with self._lock:
            before, after, mode = (self._random.random() for _ in range(3))
        if before < self.throttle_rate:
            first = Fault.THROTTLE
        elif before < self.throttle_rate + self.error_rate:
            first = Fault.ERROR
        else:
            first = Fault.NONE
        if after < self.commit_then_fail_rate:
            second = Fault.FAIL_AFTER_COMMIT if mode < 0.5 else Fault.DROP_AFTER_COMMIT
        else:
            second = Fault.NONE
        return Draw(first, second)
