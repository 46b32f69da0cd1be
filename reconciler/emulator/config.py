"""How one emulator instance is set up: address, data file, credentials, faults."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from reconciler.emulator.errors import EmulatorError
from reconciler.emulator.ratelimit import RateLimit

ACCOUNT_ID_PATTERN = re.compile(r"[0-9]{12}")


@dataclass
class EmulatorConfig:
    host: str = "127.0.0.1"
    port: int = 0
    # JSON file keeping everything across restarts; None keeps it in memory.
    data_path: str | None = None
    # With both set, request signatures are verified against this key.
    access_key: str | None = None
    secret_key: str | None = None
    # The default account: requests whose access key maps to no other one.
    account_id: str = "123456789012"
    # Access key id -> account id (``--account AKID=ACCOUNT``).
    accounts: dict[str, str] = field(default_factory=dict)
    # Temporary credentials belong to the account this STS names for them.
    sts_endpoint: str | None = None
    # Seeds the fault generator, so a fault sequence can be replayed.
    seed: int | None = None
    latency_ms: float = 0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    commit_then_fail_rate: float = 0.0
    page_size: int = 100
    # >0: hand out RSA keys round-robin from this many pre-generated ones,
    # so load tests do not measure RSA generation. 0: a fresh key per create.
    key_pool: int = 0
    # Token buckets per account and region (``RateLimit.parse("50:20")``,
    # ``RateLimit.parse("CreateKeyPair=5:2")``); empty: no limit.
    rate_limits: tuple[RateLimit, ...] = ()

    def check(self) -> None:
        """Raise ``EmulatorError`` naming every setting that cannot work."""
        problems: list[str] = []
        if not 0 <= self.port <= 65535:
            problems.append(f"port {self.port} is not between 0 and 65535")
        if (self.access_key is None) != (self.secret_key is None):
            problems.append("give both an access key and a secret key, or neither")
        if not ACCOUNT_ID_PATTERN.fullmatch(self.account_id):
            problems.append(f"account id {self.account_id!r} is not 12 digits")
        for access_key, account in self.accounts.items():
            if not access_key or not ACCOUNT_ID_PATTERN.fullmatch(account):
                problems.append(f"account mapping {access_key}={account} is not AKID=12 digits")
        if self.sts_endpoint is not None and not self.sts_endpoint.startswith(
            ("http://", "https://")
        ):
            problems.append(f"STS endpoint {self.sts_endpoint!r} is not an http(s) URL")
        if self.latency_ms < 0:
            problems.append(f"latency {self.latency_ms} ms is negative")
        for label, rate in (
            ("throttle rate", self.throttle_rate),
            ("error rate", self.error_rate),
            ("commit-then-fail rate", self.commit_then_fail_rate),
        ):
            if not 0.0 <= rate <= 1.0:
                problems.append(f"{label} {rate} is not between 0 and 1")
        if self.throttle_rate + self.error_rate > 1.0:
            problems.append("throttle rate and error rate together exceed 1")
        if self.page_size < 1:
            problems.append(f"page size {self.page_size} is less than 1")
        if self.key_pool < 0:
            problems.append(f"key pool {self.key_pool} is negative")
        problems.extend(_rate_limit_problems(self.rate_limits))
        if problems:
            raise EmulatorError("invalid emulator settings: " + "; ".join(problems))


def _rate_limit_problems(limits: tuple[RateLimit, ...]) -> list[str]:
    from reconciler.emulator.operations import OPERATIONS

    problems = []
    for limit in limits:
        if limit.operation is not None and limit.operation not in OPERATIONS:
            problems.append(
                f"rate limit {limit}: {limit.operation} is not an operation the emulator serves"
            )
        if limit.rate <= 0 or limit.burst < 1:
            problems.append(f"rate limit {limit}: the rate must be positive and the burst >= 1")
    return problems
