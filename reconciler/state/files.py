"""Private files on the local disk: 0600 from the first byte, durable, never via a symlink.

Every file that may hold key material is created with O_EXCL and mode 0600
(then fchmod'ed, so the umask cannot matter), opened with O_NOFOLLOW and only
if the descriptor is a regular file (a FIFO is refused, never waited on), and
replaced only by rename after fsync (``replace_atomically``, the project's one
atomic write). Nothing here ever widens a permission or follows a symbolic link.
Also here: room on the disk (``preallocate``, ``check_room``) and the counts
of bytes, fsyncs and preallocations that benchmarks print (``IOStats``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import stat
import threading
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, TypeVar

from reconciler.errors import InsecureStateError, OutputError, StateError, StorageError
from reconciler.regular import NotRegularFile, open_regular

T = TypeVar("T")

log = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC


class IOStats:
    """Thread-safe counts of fsync calls and bytes written, rolled up into a parent."""

    def __init__(self, parent: IOStats | None = None) -> None:
        self._parent = parent
        self._lock = threading.Lock()
        self.fsyncs = 0
        self.bytes = 0
        self.reserved = 0  # bytes preallocated ahead of the records that fill them
        self.allocations = 0  # preallocation calls (fallocate) that made them

    def fsynced(self) -> None:
        self._add(fsyncs=1)

    def wrote(self, count: int) -> None:
        self._add(bytes=count)

    def preallocated(self, count: int) -> None:
        self._add(reserved=count, allocations=1)

    def _add(self, **counts: int) -> None:
        """Add ``counts`` to the counters of that name, here and in every parent."""
        stats: IOStats | None = self
        while stats is not None:
            with stats._lock:
                for name, count in counts.items():
                    setattr(stats, name, getattr(stats, name) + count)
            stats = stats._parent


class _Count:
    """One counter of the owner's ``IOStats`` (``_stats``), read by its name."""

    def __init__(self, counter: str) -> None:
        self.counter = counter

    def __get__(self, owner: CountsWrites, kind: type | None = None) -> int:
        return int(getattr(owner._stats, self.counter))


class CountsWrites:
    """What an ``IOStats`` counted, under the names benchmarks read."""

    _stats: IOStats

    fsync_count = _Count("fsyncs")  # durable writes so far (fsync calls; PUTs for S3)
    bytes_written = _Count("bytes")
    bytes_reserved = _Count("reserved")  # preallocated so that results always have room
    allocations = _Count("allocations")  # preallocation (fallocate) calls for bytes_reserved


def refuse_symlink(path: Path, what: str) -> os.stat_result | None:
    """``lstat`` of ``path`` (None if absent); a symbolic link is refused."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        raise InsecureStateError(
            f"{what} {path} is a symbolic link; refusing to follow it",
            hint="point at the real file instead: files holding private keys are only "
            "read and written in place",
        )
    return st


def create_private(path: Path, flags: int = os.O_WRONLY) -> int:
    """Create ``path`` exclusively with mode 0600 and return its descriptor."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | _OPEN_FLAGS | flags, PRIVATE_MODE)
    try:
        os.fchmod(fd, PRIVATE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_nofollow(path: Path, flags: int, what: str) -> int:
    """``path`` opened once, not through a symbolic link, and only if it is a regular
    file: a FIFO, socket or device there is refused at once, never waited on."""
    try:
        fd, _ = open_regular(path, flags | _OPEN_FLAGS, follow=False)
    except NotRegularFile as exc:
        raise StateError(
            f"{what} {path} is {exc.kind}, not a regular file; refusing to use it",
            hint=f"name a regular file, or move this one away: the tool makes the {what} itself",
        ) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            refuse_symlink(path, what)
        raise
    return fd


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def preallocate(fd: int, offset: int, length: int) -> None:
    """Allocate ``length`` bytes of disk at ``offset`` (the file grows, zero-filled).

    Writes into allocated space cannot fail for want of room. Where the file
    system cannot allocate, the C library writes zeros instead; either way an
    OSError (ENOSPC) comes now rather than at the write.
    """
    os.posix_fallocate(fd, offset, length)


def free_bytes(directory: Path) -> tuple[int, bool]:
    """Bytes an unprivileged writer may still use in ``directory``, and whether it is read-only."""
    st = os.statvfs(directory)
    return st.f_bavail * st.f_frsize, bool(st.f_flag & os.ST_RDONLY)


def kib(count: int) -> str:
    """A byte count for messages: KiB with one decimal, MiB above 10 MiB."""
    if count >= 10 * 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MiB"
    return f"{count / 1024:.1f} KiB"


def check_room(folder: Path, needed: int, *, backend: str, purpose: str, remedy: str) -> None:
    """A StorageError unless ``folder`` is writable, not read-only, and has ``needed`` bytes free.

    ``purpose`` says what the room is for, ``remedy`` how else to get it.
    """
    try:
        free, read_only = free_bytes(folder)
    except OSError as exc:
        raise StorageError(
            f"{backend}: cannot use folder {folder}: {exc.strerror}",
            hint=f"create it or {remedy}; nothing was sent to Lightsail",
        ) from None
    if read_only or not os.access(folder, os.W_OK | os.X_OK):
        why = "is on a read-only file system" if read_only else "is not writable by this user"
        raise StorageError(
            f"{backend}: folder {folder} {why}",
            hint=f"make it writable or {remedy}; nothing was sent to Lightsail",
        )
    if free < needed:
        raise StorageError(
            f"{backend}: not enough room in {folder} for this apply: {kib(free)} free, "
            f"about {kib(needed)} needed for {purpose}",
            hint=f"free at least {kib(needed - free)} in {folder} (or {remedy}), then run "
            "again; nothing was sent to Lightsail",
        )


def fsync(fd: int, stats: IOStats) -> None:
    os.fsync(fd)
    stats.fsynced()


def fsync_dir(directory: Path, stats: IOStats) -> None:
    """Make renames, creations and removals in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fsync(fd, stats)
    finally:
        os.close(fd)


def read_private(path: Path, what: str, *, allow_insecure: bool) -> bytes | None:
    """The bytes of a file holding key material, or None if it does not exist.

    Refuses symbolic links, non-regular files, and files readable by group or
    others (unless ``allow_insecure``).
    """
    return consume_private(path, what, lambda file: file.read(), allow_insecure=allow_insecure)


def consume_private(
    path: Path, what: str, consume: Callable[[BinaryIO], T], *, allow_insecure: bool
) -> T | None:
    """``consume`` applied to the open file (checked as ``read_private`` checks it), or
    None if it does not exist; a file too large to hold twice is read in pieces this way."""
    try:
        fd = open_nofollow(path, os.O_RDONLY, what)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise StateError(f"cannot read {what} {path}: permission denied") from None
    except OSError as exc:
        raise StateError(f"cannot open {what} {path}: {exc.strerror}") from None
    st = os.fstat(fd)
    with os.fdopen(fd, "rb") as file:
        check_private_mode(path, st, what, allow_insecure=allow_insecure)
        try:
            return consume(file)
        except OSError as exc:
            raise StateError(f"cannot read {what} {path}: {exc.strerror}") from None


def check_private_mode(path: Path, st: os.stat_result, what: str, *, allow_insecure: bool) -> None:
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    if allow_insecure:
        log.warning("%s %s is readable by others (mode %04o); allowed by request", what, path, mode)
        return
    raise InsecureStateError(
        f"{what} {path} has mode {mode:04o}: it holds private keys and must be readable "
        "by its owner only",
        hint=f"run `chmod 600 {path}`",
    )


def replace_atomically(
    path: Path, data: bytes, *, backup: Path | None = None, stats: IOStats | None = None
) -> None:
    """Replace ``path`` with ``data`` so that it holds the old or the new bytes, never a mix.

    The project's one atomic write. A private (0600) temporary file beside it is
    written and fsynced, the current file is kept as ``backup`` if one is named
    (hard link, or a private copy where links are not possible), the temporary
    is renamed over ``path``, and the directory is fsynced. ``stats`` counts the
    bytes and fsyncs, for benchmarks.
    """
    stats = stats if stats is not None else IOStats()
    directory = path.parent
    temporaries: list[Path] = []
    try:
        tmp = _temporary(directory, path.name, temporaries)
        _write_private(tmp, [data], stats)
        if backup is not None and refuse_symlink(path, "state file") is not None:
            _keep_backup(path, backup, stats, temporaries)
        os.replace(tmp, path)
    except BaseException:
        for leftover in temporaries:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        raise
    fsync_dir(directory, stats)


def remove_durably(path: Path, stats: IOStats) -> bool:
    """Remove ``path`` (not following links) and fsync its directory; False if absent."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent, stats)
    return True


def _temporary(directory: Path, name: str, temporaries: list[Path]) -> Path:
    tmp = directory / f".{name}.{uuid.uuid4().hex}.tmp"
    temporaries.append(tmp)
    return tmp


def _keep_backup(path: Path, backup: Path, stats: IOStats, temporaries: list[Path]) -> None:
    tmp = _temporary(backup.parent, backup.name, temporaries)
    try:
        os.link(path, tmp, follow_symlinks=False)
    except OSError as exc:
        log.debug("cannot hard-link %s (%s); copying it to %s", path, exc.strerror, backup)
        _copy_private(path, tmp, stats)
    else:
        # The link shares the state file's inode; an insecure mode allowed by
        # request must not live on in the backup.
        fd = open_nofollow(tmp, os.O_RDONLY, "state backup")
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_MODE:
                os.fchmod(fd, PRIVATE_MODE)
        finally:
            os.close(fd)
    os.replace(tmp, backup)


def _copy_private(source: Path, target: Path, stats: IOStats) -> None:
    src = open_nofollow(source, os.O_RDONLY, "state file")
    try:
        _write_private(target, iter(functools.partial(os.read, src, 1 << 20), b""), stats)
    finally:
        os.close(src)


def _write_private(path: Path, chunks: Iterable[bytes], stats: IOStats) -> None:
    """Create ``path`` private (``create_private``), write ``chunks`` to it, and fsync it."""
    fd = create_private(path)
    try:
        for chunk in chunks:
            write_all(fd, chunk)
            stats.wrote(len(chunk))
        fsync(fd, stats)
    finally:
        os.close(fd)


def write_output(path: Path, data: bytes, *, what: str, make_folder: bool = False) -> None:
    """Write a file the user asked for (``what`` names it: "--out", "manifest"), with
    ``replace_atomically``: the old file or the new one, never half of it. Its folder
    is made only when ``make_folder`` says so (a mistyped --out makes no folders); a
    failure is one line naming the file, not a traceback."""
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, data)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OutputError(
            f"cannot write {what} {path}: {reason}",
            hint="check the path: a file name in a folder you can write to",
        ) from None
