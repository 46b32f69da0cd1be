"""Figure lines: ``name value  label value ...  ratio R  (target OP BOUND: OK|MISSED)``.

Every target checked is remembered, so that the run can end with a summary
naming the missed ones. Nothing is hidden: a miss is printed with its figure.
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda x, bound: x <= bound,
    "<": lambda x, bound: x < bound,
    ">=": lambda x, bound: x >= bound,
    "==": lambda x, bound: x == bound,
}


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet, e.g. ``Target("<=", 2.0)``."""

    op: str
    bound: float

    def met(self, value: float) -> bool:
        return _COMPARE[self.op](value, self.bound)

    def __str__(self) -> str:
        return f"{self.op} {self.bound:g}"


@dataclass
class Report:
    """Prints figure lines as they come and counts the targets met and missed."""

    out: TextIO = field(default_factory=lambda: sys.stdout)
    met: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def section(self, title: str, *details: str) -> None:
        self.say("")
        self.say(f"# {title}")
        for detail in details:
            self.say(f"#   {detail}")

    def figure(
        self,
        name: str,
        value: str,
        *others: tuple[str, str],
        ratio: float | None = None,
        target: Target | None = None,
        checked: float | None = None,
        note: str = "",
    ) -> None:
        """One line; ``target`` is checked against ``checked``, else against ``ratio``."""
        parts = [f"{name} {value}", *(f"{label} {text}" for label, text in others)]
        if ratio is not None:
            parts.append(f"ratio {num(ratio)}")
        if target is not None:
            subject = checked if checked is not None else ratio
            if subject is None:
                raise ValueError(f"{name}: a target needs a ratio or a checked value")
            ok = target.met(subject)
            (self.met if ok else self.missed).append(name)
            parts.append(f"(target {target}: {'OK' if ok else 'MISSED'})")
        if note:
            parts.append(f"[{note}]")
        self.say("  ".join(parts))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def num(x: float) -> str:
    """A figure with about three significant digits, never in exponent form."""
    if x != x:  # NaN
        return "nan"
    if float(x).is_integer():
        return f"{int(x)}"
    magnitude = abs(x)
    if magnitude >= 100:
        return f"{x:.0f}"
    if magnitude >= 10:
        return f"{x:.1f}"
    if magnitude >= 0.1 or magnitude == 0:
        return f"{x:.2f}"
    return f"{x:.3f}"


def mib(size: float) -> str:
    return f"{size / (1 << 20):.1f}MiB"


def runs_text(runs: int) -> str:
    """How a figure was taken: ``1 run``, ``median of 5 runs``."""
    return "1 run" if runs == 1 else f"median of {runs} runs"


def calls_text(calls: Mapping[str, int]) -> str:
    """API calls by operation: ``CreateKeyPair=1000,GetKeyPairs=1``."""
    return ",".join(f"{op}={n}" for op, n in sorted(calls.items())) or "none"


def spread(values: Sequence[float]) -> str:
    """All runs, for the reader who wants to see the noise: ``[0.41 0.43 0.40]``."""
    return "[" + " ".join(num(v) for v in values) + "]"
