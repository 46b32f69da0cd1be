"""How the reconciler waits: one backoff function and a per-region pace.

``backoff`` is the only retry delay in the project: full-jitter exponential,
capped. ``RECONCILER_BACKOFF_SCALE`` multiplies every delay it returns (tests
set it small so that retries are checked without sleeping through them; users
have no reason to set it).

``Pacer`` keeps calls to one region under the rate Lightsail sustains, found
from its throttles, so that a throttled call waits for its turn instead of
sleeping through backoff. Lightsail meters calls with a token bucket (rate R,
some burst); a throttle means that bucket was empty. Between two throttles,
while the client kept the bucket empty, exactly R per second got through, so
``successes between two throttles / time between them`` measures R. The pace
starts unlimited, drops to the last second's throughput at the first
throttle, grows geometrically until the next throttle gives a measurement,
then holds just under the measured rate and creeps upward slowly so that a
higher limit is found too.

An outage is not a limit. While calls fail (5xx, dropped connections) or
nothing at all gets through between two throttles, what the throttles
measure is the outage, not the bucket: the pace still falls (a failing
service is not pressed), but the last rate measured from calls that got
through is kept as the sustainable one. Once calls succeed again the pace
doubles every ``RAMP_INTERVAL`` of successes back up to it, rather than
creeping up from one call a second for half a minute; a throttle on the way
back up ends the recovery and is learnt from as any other.

``paced`` is the one retry loop around a paced call, for Lightsail and for
the key stores alike: throttles slow the pace and are retried on a budget of
their own, other failures worth repeating are retried with ``backoff``.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")

BACKOFF_SCALE_ENV = "RECONCILER_BACKOFF_SCALE"

# AWS error codes that mean "too many calls, nothing happened; slower" (those of
# botocore's list that Lightsail, SSM and Secrets Manager answer with).
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    }
)


def backoff_scale() -> float:
    """The factor applied to every backoff delay (1 unless the environment says)."""
    raw = os.environ.get(BACKOFF_SCALE_ENV)
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        return 1.0
    return value if value >= 0 else 1.0


def backoff(attempt: int, *, base: float = 0.05, cap: float = 5.0) -> float:
    """Full-jitter exponential backoff before retry ``attempt`` (0-based), in seconds."""
    return float(min(cap, base * 2**attempt) * random.random() * backoff_scale())


class Pacer:
    """A client-side token bucket for one region whose rate is learnt from throttles.

    Thread-safe; the workers of an apply share one per region. ``acquire``
    before each call (it returns the call's ticket), then ``success``,
    ``throttled`` or ``failed`` (a 5xx, a dropped connection) with the
    ticket. A throttle of a call sent before the pace was last cut says
    nothing new and is only counted.

    Under a token bucket, a pace that was cut to a sustainable rate sees no
    throttle for a long while. Throttles that pacing cannot prevent (a share
    of calls throttled whatever the rate, as a fault injector does) come soon
    after every cut: after two such cuts in a row the pace is lifted for a
    while and ``throttled`` returns False, telling the caller to back off.
    """

    SHARE = 0.97  # hold this share of the measured rate
    MIN_SPAN = 0.4  # s between the throttles of a measurement
    RAMP = 2.0  # growth per RAMP_INTERVAL before the first measurement
    RAMP_INTERVAL = 0.1
    CREEP = 0.01  # growth per second after a measurement, rising 1% a second
    DECREASE = 0.7  # cut when a pace is throttled again soon after a cut
    MIN_RATE = 1.0
    WINDOW = 1.0  # s of history for the first estimate
    SOON = 4  # successes: a cut throttled again before this many did not help
    BLIND_FOR = 10.0  # s without pacing once throttles prove unrelated to pace
    NAP = 0.1  # s a waiter sleeps at most before looking at the pace again

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.rate: float | None = None  # calls per second; None: not limited
        self.measured = False
        self.throttles = 0
        self.successes = 0
        self._tokens = 0.0
        self._filled_at = 0.0
        self._recent: deque[float] = deque()  # success times within WINDOW
        self._cut_at = -1.0  # calls sent before this are stale news
        self._since_cut = 0  # successes of calls sent since the cut
        self._futile_cuts = 0  # consecutive cuts throttled again soon
        self._anchor: tuple[float, int] | None = None  # last measurement: (time, successes)
        self._last_good: float | None = None  # the pace before the last increase
        self._ceiling = 0.0  # the pace that was last throttled
        self._grown_at = 0.0
        self._creep_steps = 0
        self._limited = False  # a caller waited since the pace last grew
        self._blind_until = 0.0
        self.failures = 0
        # The last rate measured from calls that got through, no failure among
        # them: what the pace returns to after an outage.
        self.sustained: float | None = None
        self._failed_since_anchor = 0
        self._failed_since_cut = 0
        self._recovering = False  # cut by an outage; climbing back to ``sustained``
        self._stepped_at = 0.0  # the climb's last step

    def acquire(self) -> float:
        """Wait until the pace allows one more call; returns the call's ticket."""
        while True:
            wait = self.try_acquire()
            if wait == 0.0:
                return self._clock()
            self._sleep(wait)

    def try_acquire(self) -> float:
        """Take a turn now (0.0), or say how long to wait before asking again.

        Nothing is reserved: a waiter that wakes finds the pace as it is then
        (grown, or cut), so a queue of workers never holds on to a stale rate.
        """
        with self._lock:
            now = self._clock()
            if self.rate is None:
                return 0.0
            self._grow(now)
            self._tokens = min(1.0, self._tokens + (now - self._filled_at) * self.rate)
            self._filled_at = now
            if self._tokens >= 1.0 - 1e-9:  # the refill's rounding
                self._tokens -= 1.0
                return 0.0
            self._limited = True
            return min(self.NAP, (1.0 - self._tokens) / self.rate)

    def success(self, ticket: float = 0.0) -> None:
        with self._lock:
            now = self._clock()
            self.successes += 1
            if ticket >= self._cut_at:
                self._since_cut += 1
            if self._anchor is None:
                self._recent.append(now)
                while self._recent and self._recent[0] < now - self.WINDOW:
                    self._recent.popleft()
            if self._recovering:
                self._recover(now)

    def failed(self, ticket: float = 0.0) -> None:
        """Record a call that failed in a way worth retrying (a 5xx, a dropped
        connection): not a throttle, but it makes the next throttles'
        measurement one of an outage rather than of the limit."""
        with self._lock:
            now = self._clock()
            self.failures += 1
            self._failed_since_anchor += 1
            if ticket >= self._cut_at:
                self._failed_since_cut += 1
            # No growth while calls fail: the climb waits for successes in a row.
            self._grown_at = self._stepped_at = now

    def throttled(self, ticket: float = 0.0) -> bool:
        """Record a throttle; True when the pace now accounts for it (retry at
        once, ``acquire`` waits), False when the caller should back off."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if now < self._blind_until:
                return False
            if ticket < self._cut_at:
                return True  # sent before the last cut; no news
            if self._anchor is None:
                # First throttle: the last second's throughput is a safe start.
                recent = sum(1 for t in self._recent if t >= now - self.WINDOW)
                self._anchor = (now, self.successes)
                self._cut(max(self.MIN_RATE, recent / self.WINDOW), now)
                return True
            # Nothing got through since the cut and calls failed: an outage,
            # which says nothing about whether slowing down helps.
            down = self._since_cut == 0 and self._failed_since_cut > 0
            futile = self._since_cut < self.SOON and self._last_good is None
            if not down:
                self._futile_cuts = self._futile_cuts + 1 if futile else 0
            if self._futile_cuts >= 2:
                # Slowing down did not make throttles rarer: they are not about pace.
                self._lift(now)
                return False
            since, successes = self._anchor
            span = now - since
            rate = self.rate or self.MIN_RATE
            outage = down
            if span >= self.MIN_SPAN:
                # The bucket was empty at both throttles: what got through in
                # between is what it refilled (less any overflow while we were slow).
                through = self.successes - successes
                new = through / span * self.SHARE
                self.measured = True
                if through and not self._failed_since_anchor:
                    self.sustained = max(self.MIN_RATE, min(new, rate))
                else:
                    outage = True  # what the span measured is the failures
                self._anchor = (now, self.successes)
                self._failed_since_anchor = 0
            elif self._last_good is not None and self._last_good < rate:
                new = self._last_good  # the last increase went too far
            else:
                new = rate * self.DECREASE
            self._ceiling = max(rate, self._last_good or 0.0)
            cut = max(self.MIN_RATE, min(new, rate))
            self._cut(cut, now)
            # A throttle with calls getting through is news about the limit,
            # and ends a recovery; one in an outage starts (or continues) one.
            self._recovering = outage and self.sustained is not None and cut < self.sustained
            if outage and self.sustained is None:
                # No rate known to return to: find it again as at the start.
                self.measured = False
            return True

    def _recover(self, now: float) -> None:
        """After an outage: double the pace per ``RAMP_INTERVAL`` of successes,
        up to the sustained rate, where the recovery ends."""
        assert self.rate is not None and self.sustained is not None
        if now - self._stepped_at < self.RAMP_INTERVAL:
            return
        self._last_good = self.rate
        self.rate = min(self.sustained, self.rate * self.RAMP)
        self._stepped_at = self._grown_at = now
        self._limited = False
        if self.rate >= self.sustained:
            self._recovering = False
            self._creep_steps = 0

    def _cut(self, rate: float, now: float) -> None:
        self.rate = rate
        self._cut_at = now
        self._since_cut = 0
        self._failed_since_cut = 0
        self._last_good = None
        self._grown_at = now
        self._creep_steps = 0
        self._limited = False
        # Lightsail's bucket is empty now: no saved-up burst.
        self._tokens = min(self._tokens, 0.0)
        self._filled_at = now

    def _lift(self, now: float) -> None:
        self.rate = None
        self.measured = False
        self._anchor = None
        self._last_good = None
        self._futile_cuts = 0
        self._recent.clear()
        self._cut_at = now
        self._since_cut = 0
        self._failed_since_cut = 0
        self._failed_since_anchor = 0
        self._recovering = False
        self._blind_until = now + self.BLIND_FOR

    def _grow(self, now: float) -> None:
        """Raise the pace while it is what holds the callers back."""
        assert self.rate is not None
        elapsed = now - self._grown_at
        if not self._limited:
            if elapsed > self.RAMP_INTERVAL:
                self._grown_at = now  # idle time does not count as probing
            return
        if self.measured:
            if elapsed < 1.0:
                return
            self._creep_steps += 1
            # Close a fifth of the gap to the pace last throttled each second,
            # then probe beyond it, faster the longer no throttle comes.
            gap = max(0.0, self._ceiling * self.SHARE - self.rate) * 0.2 * elapsed
            factor = 1 + max(self.CREEP * self._creep_steps * elapsed, gap / self.rate)
        elif elapsed >= self.RAMP_INTERVAL:
            factor = self.RAMP
        else:
            return
        self._last_good = self.rate
        self.rate *= factor
        self._grown_at = now
        self._limited = False


class Pacers:
    """One ``Pacer`` per key (a service, its credentials and region...), made on first use."""

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self._sleep = sleep
        self._lock = threading.Lock()
        self._pacers: dict[tuple[Hashable, ...], Pacer] = {}

    def __call__(self, *key: Hashable) -> Pacer:
        with self._lock:
            if key not in self._pacers:
                self._pacers[key] = Pacer(sleep=self._sleep)
            return self._pacers[key]


class Retried(Exception):
    """A call that failed in a way worth retrying until its budget was spent
    (``error`` is the last failure, ``attempts`` how many times it was sent)."""

    def __init__(self, error: Exception, attempts: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempts = attempts


def paced(
    fn: Callable[[], T],
    pacer: Pacer,
    *,
    throttle: Callable[[Exception], bool],
    transient: Callable[[Exception], bool],
    attempts: int,
    throttles: int,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()`` at ``pacer``'s pace, sent again while it fails in a way worth retrying.

    A throttle has no effect and only says "slower": it gets a budget of its
    own (``throttles``), so calls at the service's ceiling never fail for it;
    a throttle the pace accounts for is sent again at once (``acquire`` waits),
    others, and a call throttled again and again, back off. A failure
    ``transient`` says is worth repeating is sent again after ``backoff``,
    ``attempts`` in all. Any other failure is raised as it is; the last one,
    once a budget is spent, as ``Retried``.
    """
    failures = throttled = 0
    while True:
        ticket = pacer.acquire()
        try:
            result = fn()
        except Exception as e:
            if throttle(e):
                throttled += 1
                if throttled >= throttles:
                    raise Retried(e, failures + throttled) from None
                if not pacer.throttled(ticket) or throttled > 3:
                    sleep(backoff(min(throttled, 8)))
                continue
            if not transient(e):
                raise
            pacer.failed(ticket)
            failures += 1
            if failures >= attempts:
                raise Retried(e, failures + throttled) from None
            sleep(backoff(failures - 1))
            continue
        pacer.success(ticket)
        return result
