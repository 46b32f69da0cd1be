"""Opening a path that must be a regular file: once, never blocking, checked on the descriptor.

Pull requests choose what sits at the paths the tool reads (manifests,
reconciler.yaml, the state, its journal and lock). A FIFO there blocks an
open for reading until someone writes to it; a device or a socket would be
read as if it held data. So a path is opened once, with ``O_NONBLOCK`` (a
FIFO opens at once) and ``O_NOCTTY`` (a terminal never becomes ours), and
the descriptor itself is ``fstat``ed: anything but a regular file is closed
and refused, named by what it is. Never ``stat`` then ``open``: the path may
be swapped in between.
"""

from __future__ import annotations

import errno
import os
import stat

_FLAGS = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# What opening a socket gives (ENXIO, as a FIFO opened to write with no reader does).
_NOT_OPENABLE = (errno.ENXIO, errno.EOPNOTSUPP)


class NotRegularFile(OSError):
    """The path holds a FIFO, socket, device or folder; ``kind`` says which."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(errno.EINVAL, f"{kind}, not a regular file", os.fspath(path))
        self.kind = kind


_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
)


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words."""
    return next((kind for test, kind in _KINDS if test(mode)), "a special file")


def open_regular(
    path: str | os.PathLike[str],
    flags: int = os.O_RDONLY,
    *,
    follow: bool = True,
    mode: int = 0o600,
) -> tuple[int, os.stat_result]:
    """The descriptor of ``path`` opened with ``flags``, and its ``fstat``.

    Raises ``NotRegularFile`` for anything but a regular file, and the
    ``OSError`` of the open otherwise (``FileNotFoundError``; ``ELOOP`` for a
    symbolic link when not ``follow``). The descriptor is blocking again when
    returned: ``O_NONBLOCK`` only keeps the open itself from waiting.
    """
    extra = 0 if follow else os.O_NOFOLLOW
    try:
        fd = os.open(path, flags | _FLAGS | extra, mode)
    except OSError as error:
        if error.errno == errno.EISDIR:
            raise NotRegularFile(path, "a folder") from None
        if error.errno in _NOT_OPENABLE:
            # Only to name it: the open already failed, so nothing is read from it.
            try:
                found = os.stat(path, follow_symlinks=follow).st_mode
            except OSError:
                raise error from None
            raise NotRegularFile(path, kind_of(found)) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, kind_of(info.st_mode))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info


def read_regular(path: str | os.PathLike[str], limit: int) -> tuple[bytes, int]:
    """The bytes of the regular file at ``path`` and its size; nothing is read (``b""``)
    when it is over ``limit`` bytes. Raises as ``open_regular`` does."""
    fd, info = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            return b"", info.st_size
        data = handle.read(limit + 1)  # a file growing while read is held to the limit too
    return (b"", len(data)) if len(data) > limit else (data, len(data))
