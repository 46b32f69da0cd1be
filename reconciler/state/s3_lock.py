"""The S3 state lock: an object ``KEY.lock`` created only where none exists.

One run at a time holds it: it is created with ``If-None-Match: *`` and removed
only with ``If-Match`` on the ETag its holder wrote, so a lock forced away and
taken by another run is never removed by the first. Its content names the
holder (``LockInfo``). Unlike an flock, S3 cannot tell whether a holder is still
alive: a lock left by a killed run stays until ``force_unlock`` removes it.
"""

from __future__ import annotations

import logging
import time

from reconciler.errors import LockHeldError, StateError
from reconciler.state.lock import LockInfo, matching_holder, refuse_live_holder
from reconciler.state.s3_objects import Bucket, Refused

log = logging.getLogger(__name__)

LOCK_POLL_FIRST = 0.2
LOCK_POLL_MAX = 5.0


class S3Lock:
    """The lock object ``key`` of the state at ``location`` (named in messages)."""

    def __init__(self, bucket: Bucket, key: str, location: str) -> None:
        self.key = key
        self.location = location
        self._bucket = bucket
        self._held: tuple[LockInfo, str] | None = None  # our lock and its object's ETag

    def acquire(self, command: str, timeout: float) -> LockInfo:
        """Take the lock, polling up to ``timeout`` seconds (see ``core.StateLock``)."""
        self._held = self._take(command, timeout)
        return self._held[0]

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            self._release(*held)

    def _take(self, command: str, timeout: float) -> tuple[LockInfo, str]:
        info = LockInfo.for_this_process(command)
        body = info.encode()
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = LOCK_POLL_FIRST
        while True:
            try:
                return info, self._bucket.put(self.key, body, if_match=None)
            except Refused:
                pass
            current = self._bucket.get(self.key)
            if current is None:
                continue  # released between our two requests
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._held_error(LockInfo.parse(current[0]), timeout)
            if delay == LOCK_POLL_FIRST:
                log.info("waiting up to %.1fs for the lock on %s", timeout, self.location)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, LOCK_POLL_MAX)

    def _release(self, info: LockInfo, etag: str) -> None:
        """Remove the lock if it is still the object we wrote; only warn if it is not."""
        url = self._bucket.url(self.key)
        try:
            current = self._bucket.get(self.key)
            if current is None or current[1] != etag:
                log.warning("lock %s was removed or replaced while this run held it", url)
                return
            self._bucket.delete(self.key, if_match=etag)
            log.debug("unlocked %s", self.location)
        except Refused:
            log.warning("lock %s was removed or replaced while this run held it", url)
        except StateError as exc:
            log.warning(
                "could not release the lock on %s (%s); remove it with "
                "`reconciler force-unlock %s --state %s`",
                self.location,
                exc.message,
                info.id,
                self.location,
            )

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        """Remove the lock whose ID is ``lock_id``; a holder alive on this host keeps it."""
        url = self._bucket.url(self.key)
        current = self._bucket.get(self.key)
        if current is None:
            raise StateError(f"state {self.location} is not locked (no {url})")
        info = matching_holder(LockInfo.parse(current[0]), lock_id, url)
        if not force:
            refuse_live_holder(info)
        try:
            self._bucket.delete(self.key, if_match=current[1])
        except Refused:
            raise StateError(
                f"the lock on {self.location} changed while it was being removed", hint="run again"
            ) from None
        log.warning("removed the state lock held by %s", info.describe())

    def _held_error(self, holder: LockInfo | None, timeout: float) -> LockHeldError:
        who = holder.describe() if holder else "another run (its lock details are unreadable)"
        waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
        if holder is not None:
            remedy = f"`reconciler force-unlock {holder.id} --state {self.location}`"
        else:
            remedy = f"remove {self._bucket.url(self.key)} by hand"
        return LockHeldError(
            f"state {self.location} is locked by {who}{waited}",
            hint="wait for that run to finish, or retry with --lock-timeout SECONDS; S3 cannot "
            f"tell whether that run is still alive: if it is stuck or gone for good, {remedy}",
        )
