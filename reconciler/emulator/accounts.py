"""Which account a request belongs to, from its access key.

Keys mapped with ``--account ACCESS_KEY_ID=ACCOUNT_ID`` belong to that
account. Temporary credentials (a request with ``X-Amz-Security-Token``),
when an STS endpoint is configured, belong to the account STS names for
them: the emulator calls ``GetCallerIdentity`` with the request's access key
and session token, and caches the answer per access key. The emulator never
sees the secret key, so it signs that call with a placeholder: this works
with an STS that does not check signatures, such as moto's, which is what
tests and local runs use. Every other key belongs to the default account.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.emulator import errors

log = logging.getLogger(__name__)

# The emulator does not know a temporary key's secret; see the module docstring.
PLACEHOLDER_SECRET = "unknown-to-the-emulator"  # noqa: S105 (not a secret)
STS_TIMEOUT_S = 5.0

# access key, session token -> the account STS names for them
IdentityLookup = Callable[[str, str], str]


class AccountMap:
    """Access key -> account id; thread-safe, STS answers cached."""

    def __init__(
        self,
        default_account: str,
        mapping: Mapping[str, str] | None = None,
        *,
        sts_endpoint: str | None = None,
        lookup: IdentityLookup | None = None,
    ) -> None:
        self.default_account = default_account
        self._mapping = dict(mapping or {})
        self._lookup = lookup or (_sts_lookup(sts_endpoint) if sts_endpoint else None)
        self._cache: dict[str, str] = {}
        self._lock = threading.Lock()
        # How many times STS was asked (tests check the cache with it).
        self.lookups = 0

    def mapped(self, access_key: str) -> bool:
        """Whether ``access_key`` is one the emulator was told about (not the default's)."""
        return access_key in self._mapping

    def trusts_sts(self) -> bool:
        return self._lookup is not None

    def account_for(self, access_key: str, session_token: str | None) -> str:
        """The request's account; ``UnauthenticatedException`` if STS refuses its credentials."""
        account = self._mapping.get(access_key)
        if account is not None:
            return account
        if session_token is None or self._lookup is None:
            return self.default_account
        with self._lock:
            cached = self._cache.get(access_key)
        if cached is not None:
            return cached
        with self._lock:
            self.lookups += 1
        account = self._lookup(access_key, session_token)
        with self._lock:
            self._cache[access_key] = account
        return account


def _sts_lookup(endpoint: str) -> IdentityLookup:
    def lookup(access_key: str, session_token: str) -> str:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        client: Any = boto3.client(
            "sts",
            region_name="us-east-1",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=PLACEHOLDER_SECRET,
            aws_session_token=session_token,
            config=Config(
                retries={"total_max_attempts": 2, "mode": "standard"},
                connect_timeout=STS_TIMEOUT_S,
                read_timeout=STS_TIMEOUT_S,
            ),
        )
        try:
            account = client.get_caller_identity()["Account"]
        except ClientError as exc:
            log.debug("STS refused access key %s: %s", access_key, exc)
            raise errors.unauthenticated(
                "InvalidClientTokenId", "The security token included in the request is invalid."
            ) from None
        except BotoCoreError as exc:
            log.warning("cannot reach STS at %s: %s", endpoint, exc)
            raise errors.service_error() from None
        if not isinstance(account, str) or not account.isdigit():
            raise errors.service_error()
        return account

    return lookup


def parse_mapping(text: str) -> tuple[str, str]:
    """``ACCESS_KEY_ID=ACCOUNT_ID`` as a pair; ValueError saying what is wrong."""
    access_key, sep, account = text.partition("=")
    access_key, account = access_key.strip(), account.strip()
    if not sep or not access_key:
        raise ValueError(f"{text!r} is not ACCESS_KEY_ID=ACCOUNT_ID")
    if len(account) != 12 or not account.isdigit():
        raise ValueError(f"{text!r}: the account id {account!r} is not 12 digits")
    return access_key, account
