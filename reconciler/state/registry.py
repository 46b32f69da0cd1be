"""Which backend keeps a state, by the scheme of its location: one entry per remote backend.

A location without a registered scheme is a local file. A new backend is one
``core.ObjectStore`` class, its ``StateStore`` subclass with a ``from_url``,
and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.state.backend import StateBackend


def _s3(location: str, options: Any) -> StateBackend:
    from reconciler.state.s3 import S3Backend  # boto3 loads only for S3 state

    return S3Backend.from_url(location, options)


# Scheme prefix -> factory(location, options), where options are workflow.Options.
BACKENDS: dict[str, Callable[[str, Any], StateBackend]] = {
    "s3://": _s3,
}


def remote_backend(location: str, options: Any) -> StateBackend | None:
    """The backend of a location with a registered scheme; None for a local path."""
    for prefix, factory in BACKENDS.items():
        if location.startswith(prefix):
            return factory(location, options)
    return None
