"""Token-bucket rate limits: the bucket on a fake clock, then the emulator over HTTP."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig, EmulatorError, RateLimit
from reconciler.emulator.ratelimit import RateLimiter
from tests.emulator.test_emulator_cli import emulator_process, refused_flags
from tests.emulator.test_emulator_faults import outcome
from tests.emulator_helpers import client, ed25519_openssh, error


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def takes(limiter: RateLimiter, count: int, account: str = "a", region: str = "r") -> int:
    return sum(limiter.allow(account, region, "GetKeyPairs") for _ in range(count))


# -- the syntax ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("50:20", RateLimit(50, 20)),
        ("2.5", RateLimit(2.5, 3)),
        ("0.2", RateLimit(0.2, 1)),
        ("CreateKeyPair=5:2", RateLimit(5, 2, "CreateKeyPair")),
        ("GetKeyPairs=10", RateLimit(10, 10, "GetKeyPairs")),
    ],
)
def test_a_rate_limit_is_rps_burst_and_an_optional_operation(
    text: str, expected: RateLimit
) -> None:
    assert RateLimit.parse(text) == expected
    assert RateLimit.parse(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("fast", "'fast' is not a number"),
        ("0", "rate must be a positive number"),
        ("5:0.5", "a burst below 1"),
        ("-1:2", "rate must be a positive number"),
        ("5:2:1", "is not RPS[:BURST] or OPERATION=RPS[:BURST]"),
        ("=5", "is not RPS[:BURST]"),
        ("inf", "rate must be a positive number"),
    ],
)
def test_a_bad_rate_limit_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=None) as exc:
        RateLimit.parse(text)
    assert says in str(exc.value)


def test_a_limit_on_an_operation_the_emulator_does_not_serve_is_refused() -> None:
    with pytest.raises(EmulatorError, match="CreateKeyPairs is not an operation"):
        EmulatorConfig(rate_limits=(RateLimit.parse("CreateKeyPairs=1"),)).check()


# -- the bucket, on a fake clock ---------------------------------------------


def test_a_full_bucket_allows_the_burst_then_refuses() -> None:
    limiter = RateLimiter([RateLimit(1, 5)], clock=FakeClock())
    assert takes(limiter, 8) == 5


def test_the_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter([RateLimit(4, 2)], clock=clock)
    assert takes(limiter, 2) == 2
    clock.now += 0.2  # 0.8 of a token
    assert takes(limiter, 1) == 0
    clock.now += 0.05  # 1.0
    assert takes(limiter, 2) == 1
    clock.now += 0.5  # 2 tokens
    assert takes(limiter, 3) == 2
    clock.now += 3600  # an idle hour fills the bucket to its burst, no more
    assert takes(limiter, 10) == 2


def test_a_refused_call_takes_no_token() -> None:
    clock = FakeClock()
    limiter = RateLimiter([RateLimit(1, 1)], clock=clock)
    assert takes(limiter, 1) == 1
    for _ in range(100):
        clock.now += 0.001
        assert takes(limiter, 1) == 0
    clock.now += 0.9  # 0.1 + 0.9 seconds since the token was taken: one whole token
    assert takes(limiter, 1) == 1


def test_each_account_and_region_has_its_own_bucket() -> None:
    limiter = RateLimiter([RateLimit(1, 2)], clock=FakeClock())
    assert takes(limiter, 3, "111111111111", "us-east-1") == 2
    assert takes(limiter, 3, "111111111111", "eu-west-2") == 2
    assert takes(limiter, 3, "222222222222", "us-east-1") == 2
    assert takes(limiter, 1, "111111111111", "us-east-1") == 0


def test_an_operation_limit_and_the_overall_limit_both_apply() -> None:
    limiter = RateLimiter([RateLimit(1, 3), RateLimit(1, 1, "CreateKeyPair")], clock=FakeClock())
    assert limiter.allow("a", "r", "CreateKeyPair")
    # The CreateKeyPair bucket is empty; refusing takes nothing from the overall one.
    assert not limiter.allow("a", "r", "CreateKeyPair")
    assert limiter.allow("a", "r", "GetKeyPair")
    assert limiter.allow("a", "r", "GetKeyPair")
    assert not limiter.allow("a", "r", "GetKeyPair")


def test_concurrent_callers_never_share_a_token() -> None:
    limiter = RateLimiter([RateLimit(1, 100)], clock=FakeClock())
    allowed: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [limiter.allow("a", "r", "GetKeyPairs") for _ in range(50)]
        with lock:
            allowed.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(allowed) == 100 and len(allowed) == 400


def test_configure_replaces_the_limits_with_full_buckets() -> None:
    limiter = RateLimiter([RateLimit(1, 1)], clock=FakeClock())
    assert takes(limiter, 2) == 1
    limiter.configure([RateLimit(1, 3)])
    assert takes(limiter, 4) == 3
    limiter.configure([])
    assert takes(limiter, 50) == 50


# -- over HTTP ---------------------------------------------------------------


THROTTLED = "400 ThrottlingException"


def test_an_empty_bucket_answers_throttling_before_any_effect() -> None:
    # 0.01 calls a second: nothing refills during the test.
    config = EmulatorConfig(rate_limits=(RateLimit(0.01, 2),), key_pool=1)
    with Emulator(config) as emu:
        lightsail = client(emu.url)
        assert outcome(lambda: lightsail.create_key_pair(keyPairName="one")) == "ok"
        assert outcome(lambda: lightsail.create_key_pair(keyPairName="two")) == "ok"
        with pytest.raises(ClientError) as exc:
            lightsail.create_key_pair(keyPairName="three")
        assert error(exc.value) == ("ThrottlingException", None, "Rate exceeded", 400)
        assert outcome(lambda: lightsail.delete_key_pair(keyPairName="one")) == THROTTLED
        assert emu.store.names("us-east-1") == ["one", "two"]
        assert emu.calls == {"CreateKeyPair": 3, "DeleteKeyPair": 1}
        assert emu.throttled == {"CreateKeyPair": 1, "DeleteKeyPair": 1}
        assert emu.committed == {"CreateKeyPair": 2}


def test_the_bucket_refills_over_http() -> None:
    # One token every 2 s: the call right after the first finds the bucket empty.
    with Emulator(EmulatorConfig(rate_limits=(RateLimit(0.5, 1),))) as emu:
        lightsail = client(emu.url)
        started = time.monotonic()
        assert outcome(lightsail.get_key_pairs) == "ok"
        assert outcome(lightsail.get_key_pairs) == THROTTLED
        # A refused call takes no token: ask until the next one has come.
        deadline = started + 30
        while (seen := outcome(lightsail.get_key_pairs)) == THROTTLED:
            assert time.monotonic() < deadline, "the bucket never refilled"
            time.sleep(0.05)
        assert seen == "ok"
        assert time.monotonic() - started >= 2.0  # not before its time


def test_regions_are_metered_apart_over_http() -> None:
    with Emulator(EmulatorConfig(rate_limits=(RateLimit(0.01, 1),))) as emu:
        virginia, london = client(emu.url, "us-east-1"), client(emu.url, "eu-west-2")
        assert outcome(virginia.get_key_pairs) == "ok"
        assert outcome(virginia.get_key_pairs) == THROTTLED
        assert outcome(london.get_key_pairs) == "ok"
        assert outcome(london.get_key_pairs) == THROTTLED


def test_an_operation_limit_leaves_other_operations_alone() -> None:
    config = EmulatorConfig(rate_limits=(RateLimit.parse("ImportKeyPair=0.01:1"),))
    with Emulator(config) as emu:
        lightsail = client(emu.url)

        def import_key(name: str) -> Any:
            return lambda: lightsail.import_key_pair(
                keyPairName=name, publicKeyBase64=ed25519_openssh()
            )

        assert outcome(import_key("first")) == "ok"
        assert outcome(import_key("second")) == THROTTLED
        for _ in range(5):
            assert outcome(lightsail.get_key_pairs) == "ok"
        assert emu.store.names("us-east-1") == ["first"]


def test_botocore_retries_a_throttle_until_a_token_arrives() -> None:
    with Emulator(EmulatorConfig(rate_limits=(RateLimit(20, 1),))) as emu:
        lightsail = client(emu.url, attempts=10)
        for _ in range(3):
            lightsail.get_key_pairs()
        assert emu.calls["GetKeyPairs"] == 3 + sum(emu.throttled.values())


def test_the_flag_reaches_the_server_and_a_bad_one_exits_2() -> None:
    with emulator_process("--rate-limit", "0.01:1", "--rate-limit", "GetKeyPair=50") as (_, url):
        lightsail = client(url)
        assert outcome(lightsail.get_key_pairs) == "ok"
        assert outcome(lightsail.get_key_pairs) == THROTTLED
    result = refused_flags("--rate-limit", "5:0.5")
    assert result.returncode == 2
    assert "--rate-limit" in result.stderr and "a burst below 1" in result.stderr
    assert "Traceback" not in result.stderr
