"""Lightsail and the other AWS services on the wire: clients, strict decoding, sessions, pacing."""

# The exports load on first use: botocore is heavy, and a command that only
# needs the pacing or the error words (``validate`` never does) should not pay
# for it.
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.aws.credentials import session_for
    from reconciler.aws.lightsail import ClientOptions, InstanceReading, Lightsail
    from reconciler.aws.retry import Pacer, Pacers, backoff, paced

_EXPORTS = {
    "ClientOptions": "reconciler.aws.lightsail",
    "InstanceReading": "reconciler.aws.lightsail",
    "Lightsail": "reconciler.aws.lightsail",
    "Pacer": "reconciler.aws.retry",
    "Pacers": "reconciler.aws.retry",
    "session_for": "reconciler.aws.credentials",
    "backoff": "reconciler.aws.retry",
    "paced": "reconciler.aws.retry",
}

__all__ = [
    "ClientOptions",
    "InstanceReading",
    "Lightsail",
    "Pacer",
    "Pacers",
    "backoff",
    "paced",
    "session_for",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
