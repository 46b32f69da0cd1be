"""The AWS JSON 1.1 envelope: one HTTP request in, one response (or a dropped connection) out.

Order of work for every request, as the service would do it: count the call,
add the configured latency, authenticate (the region comes from the
signature's credential scope, the account from its access key), resolve
``X-Amz-Target``, apply the faults that strike before any effect (forced
errors, the rate limit's token buckets, random throttling, 500s), decode and
run the operation, then, for a committed change, the "lost response" fault.
Any unexpected exception becomes a 500 ``ServiceException``: bad input never
stops the emulator. This module does no socket I/O.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from dataclasses import dataclass
from email.message import Message

from reconciler.emulator import errors
from reconciler.emulator.accounts import AccountMap
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.errors import ApiError
from reconciler.emulator.faults import Fault, FaultPlan
from reconciler.emulator.material import KeySource
from reconciler.emulator.operations import OPERATIONS, LightsailService
from reconciler.emulator.ratelimit import RateLimiter
from reconciler.emulator.shapes import decode_body
from reconciler.emulator.sigv4 import parse_authorization, verify
from reconciler.emulator.store import Store
from reconciler.model import REGIONS

logger = logging.getLogger(__name__)

TARGET_PREFIX = "Lightsail_20161128."
CONTENT_TYPE = "application/x-amz-json-1.1"
MAX_BODY_BYTES = 1 << 20
# Calls whose X-Amz-Target names no emulated operation are counted under this key.
UNKNOWN_OPERATION = "<unknown>"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    # Close the connection without answering: the client never sees a response.
    drop: bool = False


def error_response(error: ApiError) -> Response:
    return Response(error.status, error.to_json())


class Endpoint:
    """The emulated service behind one HTTP server."""

    def __init__(self, config: EmulatorConfig, store: Store) -> None:
        self.config = config
        self.store = store
        self.accounts = AccountMap(
            config.account_id, config.accounts, sts_endpoint=config.sts_endpoint
        )
        self._keys = KeySource(config.key_pool)
        self._services: dict[str, LightsailService] = {}
        self._services_lock = threading.Lock()
        self.faults = FaultPlan(
            seed=config.seed,
            throttle_rate=config.throttle_rate,
            error_rate=config.error_rate,
            commit_then_fail_rate=config.commit_then_fail_rate,
        )
        # Set by tests: every call is answered with this error type, before any effect.
        self.force_error: str | None = None
        # Region -> error type answered to every call in that region,
        # operation -> error type answered to every call of it, and
        # (region, operation) -> error type answered to that operation there (tests).
        self.region_errors: dict[str, str] = {}
        self.operation_errors: dict[str, str] = {}
        self.region_operation_errors: dict[tuple[str, str], str] = {}
        self.rate_limiter = RateLimiter(config.rate_limits)
        self.calls: collections.Counter[str] = collections.Counter()
        # Calls refused by the rate limiter (not by the random throttle fault).
        self.throttled: collections.Counter[str] = collections.Counter()
        self.committed: collections.Counter[str] = collections.Counter()
        self._counter_lock = threading.Lock()

    def reset_counters(self) -> None:
        with self._counter_lock:
            self.calls.clear()
            self.throttled.clear()
            self.committed.clear()

    def service(self, account: str) -> LightsailService:
        """The API of one account, made on its first call."""
        with self._services_lock:
            service = self._services.get(account)
            if service is None:
                service = self._services[account] = LightsailService(
                    self.store.account(account),
                    self._keys,
                    account_id=account,
                    page_size=self.config.page_size,
                )
            return service

    def _count(self, counter: collections.Counter[str], operation: str) -> None:
        with self._counter_lock:
            counter[operation] += 1

    def handle(self, method: str, path: str, headers: Message, body: bytes) -> Response:
        target = headers.get("X-Amz-Target") or ""
        operation = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
        known = operation in OPERATIONS
        self._count(self.calls, operation if known else UNKNOWN_OPERATION)
        if self.config.latency_ms > 0:
            time.sleep(self.config.latency_ms / 1000)
        try:
            account, region = self._authenticate(method, path, headers, body)
            if path.partition("?")[0] != "/" or not known:
                raise errors.unknown_operation(target)
            draw = self.faults.draw()
            forced = (
                self.force_error
                or self.operation_errors.get(operation)
                or self.region_errors.get(region)
                or self.region_operation_errors.get((region, operation))
            )
            if forced is not None:
                raise errors.forced(forced)
            if not self.rate_limiter.allow(account, region, operation):
                self._count(self.throttled, operation)
                raise errors.throttled()
            if draw.before is Fault.THROTTLE:
                raise errors.throttled()
            if draw.before is Fault.ERROR:
                raise errors.service_error()
            outcome = self.service(account).call(operation, region, decode_body(body))
        except ApiError as error:
            return error_response(error)
        except Exception:
            logger.exception("unexpected failure in %s", operation or "an unknown operation")
            return error_response(errors.service_error())
        if outcome.committed:
            self._count(self.committed, operation)
            if draw.after is Fault.FAIL_AFTER_COMMIT:
                return error_response(errors.service_error())
            if draw.after is Fault.DROP_AFTER_COMMIT:
                return Response(0, b"", drop=True)
        return Response(200, json.dumps(outcome.body).encode("utf-8"))

    def _authenticate(
        self, method: str, path: str, headers: Message, body: bytes
    ) -> tuple[str, str]:
        """The request's account and region, once its signature is accepted.

        With ``--access-key`` / ``--secret-key`` a request signed with that key
        is verified. Keys mapped to an account, and temporary credentials when
        STS is trusted, are accepted unverified: the emulator has no secret to
        check them with. Any other key is refused.
        """
        auth = parse_authorization(headers.get("Authorization"))
        token = headers.get("X-Amz-Security-Token")
        config = self.config
        if config.access_key is not None and config.secret_key is not None:
            vouched = self.accounts.mapped(auth.access_key) or (
                token is not None and self.accounts.trusts_sts()
            )
            if auth.access_key == config.access_key or not vouched:
                verify(
                    auth,
                    access_key=config.access_key,
                    secret_key=config.secret_key,
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                )
        if auth.region not in REGIONS:
            raise errors.invalid_input(
                f"Invalid region {auth.region[:40]!r}: Lightsail is not available there"
            )
        return self.accounts.account_for(auth.access_key, token), auth.region
