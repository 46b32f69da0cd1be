"""The emulator's data file: a snapshot plus an append-only change log, O(1) per change.

``FILE`` holds a snapshot (the whole document, with the sequence number of
the last change it includes); ``FILE.log`` holds one JSON line per change
since, each with its sequence number. A change is appended and fsynced
before its response goes out; concurrent requests share one fsync (group
commit). When the log outgrows the snapshot it is compacted: the snapshot is
replaced atomically (``replace_atomically``: temporary file, fsync, rename,
fsync of the directory) and the log emptied, so the cost per change stays
constant. Both files are 0600 from their first byte.

Crash safety: a torn last line (no newline, or not JSON) is dropped on load
and cut off the log; lines already in the snapshot (sequence number not
above the snapshot's) are skipped, which covers a crash between the
snapshot's rename and the log's truncation. A damaged line before the last
one is an error: the file is not silently half-read.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from reconciler.emulator.errors import EmulatorError
from reconciler.regular import open_regular
from reconciler.state.files import (
    IOStats,
    create_private,
    fsync,
    fsync_dir,
    open_nofollow,
    replace_atomically,
    write_all,
)

LOG_SUFFIX = ".log"
# The log is compacted once it is larger than the snapshot and at least this.
MIN_COMPACT_BYTES = 1 << 20

_HINT = "point --data at another file, or move this one (and its .log) away to start empty"


class DataFile:
    """One data path's snapshot and log. Callers serialise ``append``/``compact``."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.log_path = Path(path + LOG_SUFFIX)
        self.stats = IOStats()
        self.seq = 0
        # The last change whose line is fully in the log (``seq`` runs ahead while writing).
        self._written = 0
        self._fd: int | None = None
        self._log_bytes = 0
        self._snapshot_bytes = 0
        self._synced = 0
        self._sync_lock = threading.Lock()

    # -- loading ---------------------------------------------------------

    def load(self) -> tuple[Any, list[dict[str, Any]]]:
        """The snapshot document (None if there is none) and the changes logged after it."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise EmulatorError(f"cannot create the directory for {self.path}: {exc}") from exc
        document = self._read_snapshot()
        base = 0
        if isinstance(document, dict):
            seq = document.get("seq", 0)
            base = seq if isinstance(seq, int) else 0
        self.seq = base
        records = self._read_log(base)
        self._written = self.seq
        return document, records

    def _read_snapshot(self) -> Any:
        try:
            raw = _read(self.path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise EmulatorError(f"cannot read emulator data file {self.path}: {exc}") from exc
        self._snapshot_bytes = len(raw)
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise EmulatorError(
                f"cannot read emulator data file {self.path}: {exc}", hint=_HINT
            ) from exc

    def _read_log(self, base: int) -> list[dict[str, Any]]:
        try:
            raw = _read(self.log_path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise EmulatorError(f"cannot read emulator log {self.log_path}: {exc}") from exc
        records: list[dict[str, Any]] = []
        good = 0
        lines = raw.split(b"\n")
        # The piece after the last newline is a torn write (or empty).
        complete, tail = lines[:-1], lines[-1]
        for number, line in enumerate(complete, start=1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("seq"), int):
                    raise ValueError("not a change record")
            except ValueError as exc:
                if number == len(complete) and not tail:
                    break  # the last record is torn: ignore it
                raise EmulatorError(
                    f"cannot read emulator log {self.log_path}, line {number}: {exc}",
                    hint=_HINT,
                ) from exc
            good += len(line) + 1
            if record["seq"] > base:
                records.append(record)
                self.seq = max(self.seq, record["seq"])
        if good < len(raw):
            self._cut(good)
        self._log_bytes = good
        return records

    def _cut(self, size: int) -> None:
        """Drop a torn tail, so that the next change does not land after it."""
        fd = open_nofollow(self.log_path, os.O_WRONLY, "emulator log")
        try:
            os.ftruncate(fd, size)
            fsync(fd, self.stats)
        finally:
            os.close(fd)

    # -- writing ---------------------------------------------------------

    def append(self, records: list[dict[str, Any]]) -> int:
        """Write ``records`` (numbering them) to the log; the number to ``sync`` up to."""
        lines = []
        for record in records:
            self.seq += 1
            record["seq"] = self.seq
            lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        write_all(self._log_fd(), data)
        self._written = self.seq
        self.stats.wrote(len(data))
        self._log_bytes += len(data)
        return self.seq

    def sync(self, upto: int) -> None:
        """Make the log durable up to change ``upto``; one fsync serves every waiting writer."""
        with self._sync_lock:
            if self._synced >= upto or self._fd is None:
                return
            target = self._written
            fsync(self._fd, self.stats)
            self._synced = max(self._synced, target)

    def wants_compaction(self) -> bool:
        return self._log_bytes > max(MIN_COMPACT_BYTES, self._snapshot_bytes)

    def compact(self, document: dict[str, Any]) -> None:
        """Replace the snapshot with ``document`` (everything so far) and empty the log."""
        document["seq"] = self.seq
        data = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        replace_atomically(self.path, data, backup=None, stats=self.stats)
        self._snapshot_bytes = len(data)
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fsync(self._fd, self.stats)
        self._log_bytes = 0
        with self._sync_lock:
            self._synced = self._written

    def close(self, document: dict[str, Any] | None) -> None:
        """Compact (when ``document`` is given and anything is logged) and remove the log."""
        if document is not None and (self._log_bytes or not self.path.exists()):
            self.compact(document)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._log_bytes == 0 and self.log_path.exists():
            self.log_path.unlink()
            fsync_dir(self.log_path.parent, self.stats)

    def _log_fd(self) -> int:
        if self._fd is None:
            try:
                self._fd = open_nofollow(self.log_path, os.O_WRONLY | os.O_APPEND, "emulator log")
            except FileNotFoundError:
                self._fd = create_private(self.log_path, os.O_WRONLY | os.O_APPEND)
                fsync_dir(self.log_path.parent, self.stats)
        return self._fd


def _read(path: Path) -> bytes:
    """The whole of a data file, which must be a regular file (a FIFO is not waited on)."""
    fd, _ = open_regular(path)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()
