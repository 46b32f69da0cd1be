"""How every AWS client here is configured: its user agent, its retries and its timeouts.

Most clients make one attempt per call (``attempts=1``) and leave retries to
their caller, which knows which calls are safe to send again and paces them.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config

USER_AGENT = "lightsail-reconciler"


def client_config(
    *,
    attempts: int,
    connect_timeout: float,
    read_timeout: float,
    pool_size: int | None = None,
) -> Any:
    """A botocore ``Config``: ``attempts`` in all per call (botocore's standard
    retries), the timeouts in seconds, and ``pool_size`` connections if given."""
    pool = {} if pool_size is None else {"max_pool_connections": pool_size}
    return Config(
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=USER_AGENT,
        **pool,
    )
