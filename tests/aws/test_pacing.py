"""The shared backoff and the per-region pace learnt from throttles.

The pace is checked in simulated time against the token-bucket arithmetic
Lightsail meters calls with (tests/pacing_sim.py), so these run in
milliseconds; the over-HTTP checks against the emulator are in test_crash.py
and test_rate_limit_apply.py.
"""

from __future__ import annotations

import random

import pytest

from reconciler.aws.retry import BACKOFF_SCALE_ENV, Pacer, Retried, backoff, backoff_scale, paced
from tests.pacing_sim import Clock, simulate


def test_backoff_is_full_jitter_capped_and_scaled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BACKOFF_SCALE_ENV, "1")
    random.seed(3)
    delays = [backoff(4) for _ in range(2000)]
    assert 0 <= min(delays) < 0.05 and 0.75 < max(delays) < 0.8  # [0, 0.05 * 2**4)
    assert all(backoff(30) < 5.0 for _ in range(100))  # capped
    monkeypatch.setenv(BACKOFF_SCALE_ENV, "0.01")
    assert max(backoff(4) for _ in range(2000)) < 0.008
    monkeypatch.setenv(BACKOFF_SCALE_ENV, "0")
    assert backoff(10) == 0.0


@pytest.mark.parametrize("raw", ["", "fast", "-1"])
def test_a_backoff_scale_that_is_not_a_number_is_ignored(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(BACKOFF_SCALE_ENV, raw)
    assert backoff_scale() == 1.0


@pytest.mark.parametrize(
    ("rate", "burst", "jobs"),
    [(50, 20, 1000), (50, 5, 1000), (10, 10, 300), (200, 50, 1000), (5, 1, 100)],
)
def test_writes_run_at_the_bucket_rate_with_few_throttles(
    rate: float, burst: float, jobs: int
) -> None:
    outcome = simulate(jobs, workers=10, latency=0.02, rate=rate, burst=burst)
    floor = (jobs - burst) / rate
    # Finding the rate costs about a second and a score of throttles (ten
    # workers start unpaced); beyond that, the pace holds the bucket's rate.
    assert outcome.seconds <= floor * 1.15 + 1.5, outcome
    assert outcome.throttles <= max(0.05 * jobs, 20), outcome
    if jobs >= 1000:
        assert outcome.seconds <= floor * 1.15 and outcome.throttled_share <= 0.05, outcome


def test_without_a_limit_the_pace_never_engages() -> None:
    outcome = simulate(500, rate=None, latency=0.003)
    assert outcome.throttles == 0 and outcome.final_rate is None
    assert outcome.seconds < 500 * 0.003 / 10 * 1.1


def test_throttles_unrelated_to_pace_lift_it_instead_of_crawling() -> None:
    # A fault injector throttling 30% of calls whatever the rate: slowing down
    # cannot help, so after two futile cuts the caller backs off instead.
    outcome = simulate(300, rate=None, latency=0.003, throttle_share=0.3)
    assert outcome.final_rate is None
    assert outcome.seconds < 5


@pytest.mark.parametrize("workers", [2, 10])
@pytest.mark.parametrize("outage_s", [5.0, 20.0])
@pytest.mark.parametrize("throttled", [0.05, 0.3, 0.7])
def test_after_an_outage_the_pace_is_back_at_the_limit_within_seconds(
    monkeypatch: pytest.MonkeyPatch, workers: int, outage_s: float, throttled: float
) -> None:
    # The waits a real run makes between failed calls, not the tests' hundredth.
    monkeypatch.setenv(BACKOFF_SCALE_ENV, "1")
    outcome = simulate(
        60 * 50,
        workers=workers,
        rate=50,
        burst=20,
        outage=(5.0, 5.0 + outage_s),
        outage_throttle_share=throttled,
    )
    assert outcome.first_success_after is not None, outcome
    # The pace learnt before the outage is restored, not re-found from one
    # call a second at 1% a second (20 to 30 simulated seconds before).
    assert outcome.recovery_s is not None and outcome.recovery_s <= 3.0, outcome
    # ... and after it the bucket's rate holds again: 60 s of work, at most
    # the outage and a few seconds more.
    assert outcome.seconds <= 60 + outage_s + 6, outcome


def test_an_outage_slows_the_pace_but_keeps_the_rate_it_learnt() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)

    def call() -> float:
        """A turn at the pace: the clock moves on to it."""
        while wait := pacer.try_acquire():
            clock.now += wait
        return clock.now

    def through(seconds: float) -> None:
        """Calls in a row that all succeed, for ``seconds``."""
        until = clock.now + seconds
        while clock.now < until:
            pacer.success(call())

    # Learn a limit: throttles a second apart with 40 calls through between them.
    pacer.throttled(call())
    pacer.rate = 50.0
    for _ in range(2):
        clock.now += 0.2
        for _ in range(40):
            pacer.success(clock.now)
        clock.now += 0.8
        assert pacer.throttled(call())
    learnt = pacer.sustained
    assert learnt is not None and 35 < learnt < 40, learnt
    # An outage: 5xx answers and a throttle now and then; nothing gets through.
    for _ in range(4):
        for _ in range(5):
            clock.now += 0.1
            pacer.failed(clock.now)
        assert pacer.throttled(call())
    assert pacer.rate == Pacer.MIN_RATE and pacer.sustained == learnt
    # Successes again: the pace doubles back to what it had learnt, in about two
    # seconds for one caller (a second for the first turn at one a second).
    back = clock.now
    while pacer.rate < learnt:
        pacer.success(call())
        assert clock.now - back < 3.0, pacer.rate
    assert pacer.rate == learnt
    # Calls still fail now and then after it: the pace holds, and a throttle
    # between successes is news about the limit again, learnt from.
    through(1.0)
    anchor = clock.now
    assert pacer.throttled(call())
    through(2.0)
    assert pacer.throttled(call())
    assert pacer.sustained is not None and pacer.sustained <= learnt
    assert clock.now > anchor


def test_a_cut_ignores_throttles_of_calls_sent_before_it() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    tickets = [pacer.acquire() for _ in range(10)]  # ten calls in flight, unpaced
    for ticket in tickets[:4]:
        clock.now += 0.001
        pacer.success(ticket)
    clock.now = 0.02
    assert pacer.throttled(tickets[4])
    first = pacer.rate
    assert first == 4.0  # what got through in the last second
    for ticket in tickets[5:]:
        assert pacer.throttled(ticket)  # sent before the cut: no news
    assert pacer.rate == first and pacer.throttles == 6


def test_waiters_see_a_grown_pace_rather_than_a_stale_queue() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock, sleep=clock.sleep)
    pacer.throttled(pacer.acquire())  # first throttle with nothing through: slowest pace
    assert pacer.rate == Pacer.MIN_RATE
    waits = [pacer.try_acquire() for _ in range(10)]
    assert all(0 < w <= Pacer.NAP for w in waits)  # nobody holds a slot seconds away
    clock.now += 1.0
    assert pacer.try_acquire() == 0.0
    # Callers kept waiting: the pace doubles each ramp interval until throttled.
    for _ in range(5):
        clock.now += Pacer.RAMP_INTERVAL
        pacer.try_acquire()
    assert pacer.rate is not None and pacer.rate >= 8 * Pacer.MIN_RATE


def test_paced_calls_retry_throttles_on_a_budget_of_their_own() -> None:
    clock = Clock()

    def advance(seconds: float) -> None:
        clock.now += seconds

    pacer = Pacer(clock=clock, sleep=advance)
    answers: list[str] = []

    def call() -> str:
        answer = answers.pop(0)
        if answer != "ok":
            raise ValueError(answer)
        return "done"

    def send(*, attempts: int, throttles: int) -> str:
        return paced(
            call,
            pacer,
            throttle=lambda e: str(e) == "throttle",
            transient=lambda e: str(e) == "busy",
            attempts=attempts,
            throttles=throttles,
            sleep=advance,
        )

    # Six throttles spend none of the three attempts that two 5xx-like failures use.
    answers[:] = ["throttle"] * 6 + ["busy"] * 2 + ["ok"]
    assert send(attempts=3, throttles=10) == "done"
    assert pacer.throttles == 6 and pacer.successes == 1 and pacer.rate is not None
    # Either budget spent: the last failure, and how many times the call was sent.
    answers[:] = ["throttle", "busy", "busy", "ok"]
    with pytest.raises(Retried) as spent:
        send(attempts=2, throttles=10)
    assert str(spent.value.error) == "busy" and spent.value.attempts == 3
    answers[:] = ["throttle"] * 3 + ["ok"]
    with pytest.raises(Retried) as spent:
        send(attempts=2, throttles=3)
    assert str(spent.value.error) == "throttle" and spent.value.attempts == 3
    # Any other failure is raised at once, not sent again.
    answers[:] = ["denied", "ok"]
    with pytest.raises(ValueError, match="denied"):
        send(attempts=5, throttles=5)
    assert answers == ["ok"]
