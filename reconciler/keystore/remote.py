"""What the AWS-backed key stores share: name templates, labels as tags, error wording."""

from __future__ import annotations

import re
import string
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import botocore.exceptions

from reconciler.keystore.base import KeyStoreError
from reconciler.model import Address

T = TypeVar("T")

PLACEHOLDERS = ("region", "name", "account")
ClientFactory = Callable[[str | None], Any]


class Template:
    """A location template such as ``/lightsail/{account}/{region}/{name}``."""

    def __init__(self, text: str, *, allowed: re.Pattern[str], scheme: str) -> None:
        self.text = text
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
        unknown = sorted({f for f in fields if f not in PLACEHOLDERS})
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}} (use {{region}}, {{name}}, {{account}})"
            )
        if "region" not in fields or "name" not in fields:
            raise ValueError("the location must contain {region} and {name}")
        literal = text
        for placeholder in PLACEHOLDERS:
            literal = literal.replace("{" + placeholder + "}", "x")
        if not allowed.fullmatch(literal):
            raise ValueError(f"{text!r} is not a valid {scheme} name template")
        self.uses_account = "account" in fields

    def render(self, address: Address, account: Callable[[Address], str]) -> str:
        values = {"region": address.region, "name": address.name}
        if self.uses_account:
            values["account"] = account(address)
        return self.text.format(**values)


class AccountId:
    """The AWS account id for ``{account}``: STS GetCallerIdentity, asked once.

    The account of the default credentials; a project declaring accounts
    resolves it per key pair instead (``StoreContext.account_ids``).
    """

    def __init__(self, sts: ClientFactory) -> None:
        self._sts = sts
        self._lock = threading.Lock()
        self._value: str | None = None

    def __call__(self) -> str:
        with self._lock:
            if self._value is None:
                response = call(
                    "looking up the AWS account id",
                    lambda: self._sts(None).get_caller_identity(),
                    service="STS",
                )
                self._value = str(response["Account"])
            return self._value


def error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def call(what: str, fn: Callable[[], T], *, service: str = "AWS") -> T:
    """``fn()``, with any botocore failure turned into a one-line KeyStoreError."""
    try:
        return fn()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        raise translate(e, what, service) from None


def translate(error: Exception, what: str, service: str = "AWS") -> KeyStoreError:
    """A botocore failure as a one-line KeyStoreError about ``what``."""
    if isinstance(error, botocore.exceptions.ClientError):
        code = error_code(error)
        message = str(error.response.get("Error", {}).get("Message", "")) or code
        hint = None
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            hint = "the README lists the IAM permissions each command needs"
        return KeyStoreError(f"{what}: {message} ({code})", hint=hint)
    if isinstance(
        error,
        botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError,
    ):
        return KeyStoreError(
            f"{what}: no AWS credentials found",
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
        )
    endpoint = service.upper().replace(" ", "_")
    return KeyStoreError(
        f"{what}: cannot reach {service} ({type(error).__name__})",
        hint=f"check the network or AWS_ENDPOINT_URL_{endpoint}, then run again",
    )


def tag_list(labels: dict[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(labels.items())]


def labels_from(tags: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(t["Key"]): str(t.get("Value", "")) for t in tags or []}


def owns(ref: Mapping[str, str], scheme: str) -> bool:
    """Whether a key reference points into a store of ``scheme``."""
    return ref.get("store", "").startswith(scheme + ":")
