"""A discrete-event model of workers calling a token-bucket API through a Pacer.

Simulated time, no threads, no sleeping: the pacing algorithm is checked
against the same arithmetic Lightsail's metering uses, quickly and exactly.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from reconciler.aws.retry import Pacer, backoff


@dataclass
class Outcome:
    seconds: float
    calls: int
    throttles: int
    final_rate: float | None
    # With an outage: the first success after it, and the first moment after
    # that when the pace was back within 10% of the bucket's rate (or lifted:
    # nothing held the calls back); None if never.
    first_success_after: float | None = None
    back_at: float | None = None
    lowest_rate: float | None = None  # the slowest pace during the outage

    @property
    def recovery_s(self) -> float | None:
        if self.first_success_after is None or self.back_at is None:
            return None
        return self.back_at - self.first_success_after

    @property
    def throttled_share(self) -> float:
        return self.throttles / self.calls


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.waited = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waited += seconds


def simulate(
    jobs: int,
    *,
    workers: int = 10,
    latency: float = 0.02,
    rate: float | None = 50.0,
    burst: float = 20.0,
    throttle_share: float = 0.0,
    outage: tuple[float, float] | None = None,
    outage_throttle_share: float = 0.3,
    seed: int = 1,
) -> Outcome:
    """``jobs`` calls by ``workers`` through one Pacer against a bucket of
    ``rate`` per second and ``burst`` (None: unlimited), optionally throttling
    a random ``throttle_share`` of calls as a fault injector does.

    ``outage=(start, end)``: between those times every call fails, a share
    ``outage_throttle_share`` of them throttled and the others 5xx, which the
    caller retries after ``backoff`` as ``paced`` does (without a budget)."""
    rng = random.Random(seed)
    random.seed(seed)  # backoff's jitter
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    tokens, refilled_at = burst, 0.0
    events: list[tuple[float, int, str, int]] = [(0.0, w, "start", 0) for w in range(workers)]
    tickets = [0.0] * workers
    heapq.heapify(events)
    remaining, calls, throttles, attempt = jobs, 0, 0, [0] * workers
    failures = [0] * workers
    busy = set(range(workers))
    end = 0.0
    first_after: float | None = None
    back_at: float | None = None
    lowest: float | None = None
    while events:
        t, worker, phase, _ = heapq.heappop(events)
        clock.now = t
        if outage is not None and outage[0] <= t < outage[1] and pacer.rate is not None:
            lowest = pacer.rate if lowest is None else min(lowest, pacer.rate)
        back = pacer.rate is None or (rate is not None and pacer.rate >= 0.9 * rate)
        if first_after is not None and back_at is None and back:
            back_at = t
        if phase == "start":
            if attempt[worker] == 0 and not _:
                if remaining == 0:
                    busy.discard(worker)
                    continue
                remaining -= 1
            wait = pacer.try_acquire()
            if wait:
                heapq.heappush(events, (t + wait, worker, "start", 1))
                continue
            tickets[worker] = t
            heapq.heappush(events, (t, worker, "send", 0))
        elif phase == "send":
            calls += 1
            if outage is not None and outage[0] <= t < outage[1]:
                down = 0 if rng.random() < outage_throttle_share else 2
                heapq.heappush(events, (t + latency, worker, "done", down))
                continue
            ok = True
            if rate is not None:
                tokens = min(burst, tokens + (t - refilled_at) * rate)
                refilled_at = t
                ok = tokens >= 1
                if ok:
                    tokens -= 1
            if ok and throttle_share and rng.random() < throttle_share:
                ok = False
            heapq.heappush(events, (t + latency, worker, "done", int(ok)))
        else:
            if _ == 1:
                pacer.success(tickets[worker])
                attempt[worker] = failures[worker] = 0
                end = t
                if outage is not None and t >= outage[1] and first_after is None:
                    first_after = t
                heapq.heappush(events, (t, worker, "start", 0))
            elif _ == 2:
                pacer.failed(tickets[worker])
                failures[worker] += 1
                wait = backoff(min(failures[worker] - 1, 8))
                heapq.heappush(events, (t + wait, worker, "start", 1))
            else:
                throttles += 1
                attempt[worker] += 1
                wait = 0.0
                if not pacer.throttled(tickets[worker]) or attempt[worker] > 3:
                    wait = backoff(attempt[worker])
                heapq.heappush(events, (t + wait, worker, "start", 0))
    return Outcome(end, calls, throttles, pacer.rate, first_after, back_at, lowest)
