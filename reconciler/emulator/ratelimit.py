"""Token-bucket rate limits, per account and region, optionally per operation.

AWS meters API calls with token buckets: a sustained rate of tokens per
second and a burst (the bucket's size). A call takes one token; with none
left it is answered ``ThrottlingException`` before it has any effect. The
figures are the tester's choice: AWS publishes none for Lightsail.

A limit is written ``RPS[:BURST]`` (every call) or ``OPERATION=RPS[:BURST]``
(calls of that operation only); BURST defaults to RPS rounded up, at least 1.
Every limit that applies to a call must have a token for it, and a call that
is refused takes none. Buckets start full and use a monotonic clock.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Clock = Callable[[], float]

# Refills add up float fractions; a token short by rounding alone is a whole one.
_EPSILON = 1e-9
_LIMIT = re.compile(r"(?:(?P<op>[A-Za-z][A-Za-z0-9]*)=)?(?P<rate>[^:=]+)(?::(?P<burst>[^:=]+))?")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate`` tokens per second into a bucket of ``burst``; for one operation, or all."""

    rate: float
    burst: float
    operation: str | None = None

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """``RPS[:BURST]`` or ``OPERATION=RPS[:BURST]``; ValueError saying what is wrong."""
        match = _LIMIT.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"rate limit {text!r} is not RPS[:BURST] or OPERATION=RPS[:BURST] "
                "(for example 50:20 or CreateKeyPair=5:2)"
            )
        rate = _positive(match["rate"], "rate", text)
        burst = (
            _positive(match["burst"], "burst", text)
            if match["burst"] is not None
            else float(max(1, math.ceil(rate)))
        )
        if burst < 1:
            raise ValueError(f"rate limit {text!r}: a burst below 1 would refuse every call")
        return cls(rate, burst, match["op"])

    def __str__(self) -> str:
        figures = f"{self.rate:g}:{self.burst:g}"
        return f"{self.operation}={figures}" if self.operation else figures


def _positive(value: str, what: str, text: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"rate limit {text!r}: {what} {value!r} is not a number") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"rate limit {text!r}: {what} must be a positive number")
    return number


class TokenBucket:
    """One bucket; not locked by itself (``RateLimiter`` holds the lock)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now


class RateLimiter:
    """Buckets keyed by limit, account and region, created full on first use. Thread-safe."""

    def __init__(self, limits: Iterable[RateLimit] = (), *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._limits: tuple[RateLimit, ...] = tuple(limits)
        self._buckets: dict[tuple[int, str, str], TokenBucket] = {}

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        return self._limits

    def configure(self, limits: Iterable[RateLimit]) -> None:
        """Replace the limits; every bucket starts full again."""
        with self._lock:
            self._limits = tuple(limits)
            self._buckets.clear()

    def allow(self, account: str, region: str, operation: str) -> bool:
        """Take a token from every bucket that applies; False (and none taken) if one is empty."""
        if not self._limits:
            return True
        with self._lock:
            now = self._clock()
            buckets: list[TokenBucket] = []
            for index, limit in enumerate(self._limits):
                if limit.operation is not None and limit.operation != operation:
                    continue
                key = (index, account, region)
                bucket = self._buckets.get(key)
                if bucket is None:
                    bucket = self._buckets[key] = TokenBucket(limit.rate, limit.burst, now)
                bucket.refill(now)
                if bucket.tokens < 1 - _EPSILON:
                    return False
                buckets.append(bucket)
            for bucket in buckets:
                bucket.tokens = max(0.0, bucket.tokens - 1)
            return True
