"""The exclusive state lock: an flock on ``<state>.lock``, whose content says who holds it.

The kernel releases an flock when its holder dies, so a lock file left by a
killed run is recognised (the flock succeeds) and taken over. The holder
removes the file while still holding the flock, and an acquirer checks that
the file it locked is still the one at the path, so two runs never both
believe they hold the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import logging
import os
import socket
import stat
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler.errors import LockHeldError, StateError
from reconciler.state.files import (
    PRIVATE_MODE,
    create_private,
    open_nofollow,
    refuse_symlink,
    write_all,
)

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.1
_MAX_INFO_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds the state lock: written into the lock file for others to read."""

    id: str
    pid: int
    host: str
    command: str
    created: str
    user: str

    def describe(self) -> str:
        return (
            f"{self.command} (pid {self.pid} on {self.host}, since {self.created}, "
            f"lock ID {self.id})"
        )

    @classmethod
    def for_this_process(cls, command: str) -> LockInfo:
        return cls(
            id=str(uuid.uuid4()),
            pid=os.getpid(),
            host=socket.gethostname(),
            command=command,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            user=_user(),
        )

    @classmethod
    def from_json(cls, data: Any) -> LockInfo | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                id=str(data["id"]),
                pid=int(data["pid"]),
                host=str(data["host"]),
                command=str(data["command"]),
                created=str(data["created"]),
                user=str(data.get("user", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def parse(cls, raw: bytes) -> LockInfo | None:
        """The holder a lock's content names; None if it is empty or unreadable."""
        try:
            return cls.from_json(json.loads(raw)) if raw else None
        except ValueError:
            return None

    def encode(self) -> bytes:
        """The content of a lock this holder takes."""
        return json.dumps(asdict(self)).encode()


class FileLock:
    """The lock of a local state: an flock on ``path`` (see ``core.StateLock``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._held: HeldLock | None = None

    def acquire(self, command: str, timeout: float) -> LockInfo:
        self._held = acquire(self.path, command, timeout=timeout)
        return self._held.info

    def release(self) -> None:
        held, self._held = self._held, None
        if held is not None:
            held.release()

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        force_unlock(self.path, lock_id, force=force)


class HeldLock:
    """A lock this process holds; ``release`` removes the file, then drops the flock."""

    def __init__(self, path: Path, fd: int, info: LockInfo) -> None:
        self.path = path
        self.info = info
        self._fd = fd

    def release(self) -> None:
        if self._fd < 0:
            return
        try:
            if _is_file_at(self._fd, self.path):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path)
            else:
                log.warning(
                    "lock file %s was removed or replaced while this run held it", self.path
                )
        finally:
            os.close(self._fd)
            self._fd = -1


def acquire(path: Path, command: str, *, timeout: float = 0.0) -> HeldLock:
    """Take the lock, waiting up to ``timeout`` seconds for a live holder to finish."""
    deadline = time.monotonic() + max(timeout, 0.0)
    waiting = False
    while True:
        fd = _open_lock_file(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_info(fd)
            os.close(fd)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _held_error(holder, timeout) from None
            if not waiting:
                log.info("waiting up to %.1fs for the state lock", timeout)
                waiting = True
            time.sleep(min(POLL_INTERVAL, remaining))
            continue
        except OSError as exc:
            os.close(fd)
            raise StateError(f"cannot lock {path}: {exc.strerror}") from None
        if not _is_file_at(fd, path):
            # The holder released (removed) it between our open and flock.
            os.close(fd)
            continue
        try:
            return _take(path, fd, command)
        except BaseException:
            os.close(fd)
            raise


def force_unlock(path: Path, lock_id: str, *, force: bool = False) -> None:
    """Remove the lock file if ``lock_id`` is its ID.

    A holder still alive on this host keeps its lock unless ``force``.
    """
    if refuse_symlink(path, "lock file") is None:
        raise StateError(f"the state is not locked (no lock file {path})")
    try:
        fd = open_nofollow(path, os.O_RDONLY, "lock file")
    except FileNotFoundError:
        raise StateError(f"the state is not locked (no lock file {path})") from None
    try:
        info = matching_holder(_read_info(fd), lock_id, str(path))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = False
        except BlockingIOError:
            held = True
        if held and not force:
            refuse_live_holder(info)
        if _is_file_at(fd, path):
            os.unlink(path)
        log.warning("removed the state lock held by %s", info.describe())
    finally:
        os.close(fd)


def matching_holder(info: LockInfo | None, lock_id: str, where: str) -> LockInfo:
    """``info`` if the lock at ``where`` has ID ``lock_id``; a StateError if it has not."""
    if info is None or info.id != lock_id:
        held_id = "no readable lock ID" if info is None else f"lock ID {info.id}"
        raise StateError(
            f"lock ID does not match: {where} has {held_id}, not {lock_id}",
            hint="copy the lock ID from the 'state is locked' message",
        )
    return info


def refuse_live_holder(info: LockInfo) -> None:
    """A StateError if the lock's holder is a process still running on this host."""
    if info.host == socket.gethostname() and process_alive(info.pid):
        raise StateError(
            f"the run holding the lock is still running: {info.describe()}",
            hint="let it finish or stop it; forcing the unlock anyway lets two runs "
            "write the state at once",
        )


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (also when another user runs it)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _take(path: Path, fd: int, command: str) -> HeldLock:
    previous = _read_info(fd)
    if previous is not None:
        log.warning(
            "took over a stale state lock from pid %d on %s (%s, since %s): "
            "that run ended without releasing it",
            previous.pid,
            previous.host,
            previous.command,
            previous.created,
        )
    info = LockInfo.for_this_process(command)
    os.ftruncate(fd, 0)
    write_all(fd, info.encode())
    return HeldLock(path, fd, info)


def _open_lock_file(path: Path) -> int:
    refuse_symlink(path, "lock file")
    try:
        return create_private(path, os.O_RDWR)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateError(f"cannot create lock file {path}: {exc.strerror}") from None
    try:
        fd = open_nofollow(path, os.O_RDWR, "lock file")
    except FileNotFoundError:
        return _open_lock_file(path)  # released between our two opens
    except OSError as exc:
        raise StateError(f"cannot open lock file {path}: {exc.strerror}") from None
    if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_MODE:
        with contextlib.suppress(OSError):
            os.fchmod(fd, PRIVATE_MODE)
    return fd


def _read_info(fd: int) -> LockInfo | None:
    try:
        raw = os.pread(fd, _MAX_INFO_BYTES, 0)
    except OSError:
        return None
    return LockInfo.parse(raw)


def _held_error(holder: LockInfo | None, timeout: float) -> LockHeldError:
    who = holder.describe() if holder is not None else "another run (its details are unreadable)"
    waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
    force = f"reconciler force-unlock {holder.id}" if holder else "reconciler force-unlock LOCK_ID"
    return LockHeldError(
        f"state is locked by {who}{waited}",
        hint="wait for that run to finish, or retry with --lock-timeout SECONDS; "
        f"if it is stuck or gone for good, `{force}`",
    )


def _is_file_at(fd: int, path: Path) -> bool:
    try:
        at_path = os.lstat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (at_path.st_dev, at_path.st_ino)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
