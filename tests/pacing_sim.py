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
    seed: int = 1,
) -> Outcome:
    """``jobs`` calls by ``workers`` through one Pacer against a bucket of
    ``rate`` per second and ``burst`` (None: unlimited), optionally throttling
    a random ``throttle_share`` of calls as a fault injector does."""
    rng = random.Random(seed)
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    tokens, refilled_at = burst, 0.0
    events: list[tuple[float, int, str, int]] = [(0.0, w, "start", 0) for w in range(workers)]
    tickets = [0.0] * workers
    heapq.heapify(events)
    remaining, calls, throttles, attempt = jobs, 0, 0, [0] * workers
    busy = set(range(workers))
    end = 0.0
    while events:
        t, worker, phase, _ = heapq.heappop(events)
        clock.now = t
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
                attempt[worker] = 0
                end = t
                heapq.heappush(events, (t, worker, "start", 0))
            else:
                throttles += 1
                attempt[worker] += 1
                wait = 0.0
                if not pacer.throttled(tickets[worker]) or attempt[worker] > 3:
                    wait = backoff(attempt[worker])
                heapq.heappush(events, (t + wait, worker, "start", 0))
    return Outcome(end, calls, throttles, pacer.rate)
