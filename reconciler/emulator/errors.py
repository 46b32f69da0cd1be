"""Errors the emulated service answers with, in the AWS JSON 1.1 error format.

An ``ApiError`` is raised anywhere below the protocol layer and turned into a
response there: ``__type`` (the short exception name botocore reads as the
error code), Lightsail's finer ``code`` when it has one, and ``message``.
Status codes follow the reference: 500 for ``ServiceException``, 400 for every
other modelled exception. The constructors below hold every message text the
emulator sends, so that they read the same from every operation.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.errors import ReconcilerError


class EmulatorError(ReconcilerError):
    """The emulator cannot start: bad configuration or an unreadable data file."""


class ApiError(Exception):
    """One error response of the emulated service."""

    def __init__(
        self, error_type: str, message: str, *, code: str | None = None, status: int = 400
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.code = code
        self.status = status

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"__type": self.error_type}
        if self.code is not None:
            body["code"] = self.code
        body["message"] = self.message
        return body

    def to_json(self) -> bytes:
        return json.dumps(self.body()).encode("utf-8")


def invalid_input(message: str, *, code: str = "InvalidParameter") -> ApiError:
    return ApiError("InvalidInputException", message, code=code)


def name_exists(*names: str) -> ApiError:
    return invalid_input(f"Some names are already in use: {', '.join(names)}", code="NameExists")


def not_found(what: str, resource_type: str = "KeyPair") -> ApiError:
    return ApiError(
        "NotFoundException", f"The {resource_type} does not exist: {what}", code="DoesNotExist"
    )


def invalid_key_format() -> ApiError:
    return invalid_input("The format of this public key is not valid", code="InvalidKey.Format")


def fingerprint_mismatch(name: str) -> ApiError:
    return invalid_input(
        f"The expectedFingerprint does not match the fingerprint of the KeyPair: {name}",
        code="FingerprintMismatch",
    )


def serialization(message: str) -> ApiError:
    return ApiError("SerializationException", message)


def unauthenticated(code: str, message: str) -> ApiError:
    return ApiError("UnauthenticatedException", message, code=code)


def unknown_operation(target: str) -> ApiError:
    shown = target[:100] if target else "(no X-Amz-Target header)"
    return ApiError("UnknownOperationException", f"Unknown operation: {shown}")


def throttled() -> ApiError:
    return ApiError("ThrottlingException", "Rate exceeded")


def service_error() -> ApiError:
    return ApiError(
        "ServiceException",
        "The service encountered an internal error; try the request again",
        code="InternalError",
        status=500,
    )


def forced(error_type: str) -> ApiError:
    """An error a test asked for; 500 for the server-side types, as the service sends them."""
    status = {"ServiceException": 500, "InternalFailure": 500, "ServiceUnavailable": 503}
    return ApiError(
        error_type,
        f"{error_type}: this emulator is set to fail every call",
        status=status.get(error_type, 400),
    )


def too_large(length: int, limit: int) -> ApiError:
    return ApiError(
        "RequestEntityTooLargeException",
        f"The request body is {length} bytes; the limit is {limit} bytes",
        status=413,
    )
