"""The emulator's data: key pairs per region, thread-safe, optionally persisted.

One re-entrant lock guards everything; compound check-then-act steps (a name
must be free, a fingerprint must match) run inside ``transaction()`` so that
concurrent requests cannot interleave them. Each region keeps its names in a
sorted list beside the record dict, so a page of GetKeyPairs is a bisect and
a slice even with 100,000 key pairs stored.

With a data file every committed change is written before the response goes
out: the whole document, atomically (temporary file in the same directory,
fsync, rename, fsync of the directory), mode 0600. Concurrent writers share
one write: whoever takes the write lock saves the newest version for all.
Private keys are kept only for the default key pair, as the service does.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from bisect import bisect_right, insort
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from reconciler.emulator.errors import EmulatorError
from reconciler.model import name_problem

FORMAT = "lightsail-emulator/v1"

TagMap = Mapping[str, str | None]
NO_TAGS: TagMap = MappingProxyType({})


def freeze_tags(tags: Mapping[str, str | None]) -> TagMap:
    """An immutable copy, so records may share one tag map safely."""
    return MappingProxyType(dict(tags)) if tags else NO_TAGS


@dataclass(slots=True)
class KeyPairRecord:
    """One stored key pair. ``tags`` is immutable: replace it, never mutate it.

    ``tags`` maps a key to its value, or to None for a key-only tag.
    ``public_key_base64`` and ``private_key`` are held for the default key
    pair only.
    """

    name: str
    resource_id: str
    created_at: float
    fingerprint: str
    tags: TagMap = field(default_factory=lambda: NO_TAGS)
    public_key_base64: str | None = None
    private_key: str | None = field(default=None, repr=False)

    def arn(self, region: str, account_id: str) -> str:
        return f"arn:aws:lightsail:{region}:{account_id}:KeyPair/{self.resource_id}"


class _Region:
    __slots__ = ("order", "records")

    def __init__(self) -> None:
        self.records: dict[str, KeyPairRecord] = {}
        self.order: list[str] = []


class Store:
    """Key pairs by region and name. Every public method is thread-safe."""

    def __init__(self, data_path: str | None = None) -> None:
        self._path = data_path
        self._lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._regions: dict[str, _Region] = {}
        self._depth = 0
        self._version = 0
        self._saved_version = 0
        if data_path is not None:
            self._open(data_path)

    # -- reading ---------------------------------------------------------

    def get(self, region: str, name: str) -> KeyPairRecord | None:
        with self._lock:
            data = self._regions.get(region)
            return data.records.get(name) if data else None

    def names(self, region: str) -> list[str]:
        with self._lock:
            data = self._regions.get(region)
            return list(data.order) if data else []

    def regions(self) -> list[str]:
        with self._lock:
            return sorted(r for r, data in self._regions.items() if data.records)

    def count(self, region: str) -> int:
        with self._lock:
            data = self._regions.get(region)
            return len(data.records) if data else 0

    def page(
        self, region: str, after: str | None, limit: int, *, skip: str | None = None
    ) -> tuple[list[KeyPairRecord], bool]:
        """Up to ``limit`` records named after ``after``, by name; and whether more follow."""
        with self._lock:
            data = self._regions.get(region)
            if data is None:
                return [], False
            order = data.order
            index = 0 if after is None else bisect_right(order, after)
            found: list[KeyPairRecord] = []
            while index < len(order) and len(found) < limit:
                name = order[index]
                index += 1
                if name != skip:
                    found.append(data.records[name])
            # ``skip`` is a single name, so one of the next two is a real one if any is.
            more = any(name != skip for name in order[index : index + 2])
            return found, more

    # -- writing ---------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock for a compound change; persist once the outermost one ends."""
        with self._lock:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                outermost = self._depth == 0
        if outermost:
            self._persist()

    def clear(self) -> None:
        """Forget every key pair in every region (tests reuse one emulator)."""
        with self.transaction():
            self._regions.clear()
            self._version += 1

    def insert(self, region: str, record: KeyPairRecord) -> bool:
        """Add ``record``; False (and no change) if its name is taken in ``region``."""
        with self.transaction():
            data = self._regions.setdefault(region, _Region())
            if record.name in data.records:
                return False
            data.records[record.name] = record
            insort(data.order, record.name)
            self._version += 1
            return True

    def remove(self, region: str, name: str) -> KeyPairRecord | None:
        with self.transaction():
            data = self._regions.get(region)
            record = data.records.pop(name, None) if data else None
            if data is not None and record is not None:
                del data.order[bisect_right(data.order, name) - 1]
                self._version += 1
            return record

    def set_tags(self, region: str, name: str, tags: Mapping[str, str | None]) -> None:
        with self.transaction():
            record = self.get(region, name)
            if record is None:
                raise KeyError(name)
            record.tags = freeze_tags(tags)
            self._version += 1

    def set_created_at(self, region: str, name: str, created_at: float) -> None:
        """Test hook: make a key pair look older (or newer) than it is, never by sleeping."""
        with self.transaction():
            record = self.get(region, name)
            if record is None:
                raise KeyError(name)
            record.created_at = created_at
            self._version += 1

    def seed_key_pairs(
        self,
        region: str,
        count: int,
        *,
        prefix: str = "seed-",
        tags: dict[str, str | None] | None = None,
    ) -> None:
        """Bulk-insert ``count`` key pairs named ``<prefix><number>`` (for benchmarks).

        No RSA keys are made: fingerprints and ARNs come from random bytes, and
        every seeded record shares one creation time and one frozen tag map.
        """
        if count <= 0:
            return
        width = max(6, len(str(count - 1)))
        problem = name_problem(f"{prefix}{0:0{width}d}")
        if problem is not None:
            raise ValueError(f"seed prefix {prefix!r} gives invalid names: {problem}")
        shared_tags = freeze_tags(tags or {})
        created_at = round(time.time(), 3)
        noise = os.urandom(36 * count)
        names = [f"{prefix}{i:0{width}d}" for i in range(count)]
        records = [
            KeyPairRecord(
                name,
                _uuid4_text(noise[36 * i : 36 * i + 16]),
                created_at,
                noise[36 * i + 16 : 36 * i + 36].hex(":"),
                shared_tags,
            )
            for i, name in enumerate(names)
        ]
        with self.transaction():
            data = self._regions.setdefault(region, _Region())
            taken = next((n for n in names if n in data.records), None)
            if taken is not None:
                raise ValueError(f"a key pair named {taken!r} already exists in {region}")
            data.records.update(zip(names, records, strict=True))
            data.order.extend(names)
            data.order.sort()
            self._version += 1

    # -- persistence -----------------------------------------------------

    def _persist(self) -> None:
        if self._path is None:
            return
        with self._write_lock:
            with self._lock:
                if self._version == self._saved_version:
                    return
                version = self._version
                document = self._document()
            text = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
            atomic_write(self._path, text.encode("utf-8"))
            self._saved_version = version

    def _document(self) -> dict[str, Any]:
        regions: dict[str, list[dict[str, Any]]] = {}
        for region, data in sorted(self._regions.items()):
            if data.records:
                regions[region] = [_encode(data.records[name]) for name in data.order]
        return {"format": FORMAT, "regions": regions}

    def _open(self, path: str) -> None:
        """Load ``path`` if it holds data; make its directory if it is missing."""
        try:
            os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        except OSError as exc:
            raise EmulatorError(f"cannot create the directory for {path}: {exc}") from exc
        if os.path.exists(path) and os.path.getsize(path) > 0:
            self._load(path)

    def _load(self, path: str) -> None:
        try:
            with open(path, encoding="utf-8") as handle:
                document = json.load(handle)
            if not isinstance(document, dict) or document.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} document")
            for region, items in document["regions"].items():
                data = self._regions.setdefault(region, _Region())
                for item in items:
                    record = _decode(item)
                    data.records[record.name] = record
                data.order = sorted(data.records)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EmulatorError(
                f"cannot read emulator data file {path}: {exc}",
                hint="point --data at another file, or move this one away to start empty",
            ) from exc


def _uuid4_text(raw: bytes) -> str:
    """A version-4 UUID from 16 random bytes; much faster than ``uuid.UUID`` in bulk."""
    h = raw.hex()
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def _encode(record: KeyPairRecord) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": record.name,
        "id": record.resource_id,
        "createdAt": record.created_at,
        "fingerprint": record.fingerprint,
        "tags": dict(record.tags),
    }
    if record.public_key_base64 is not None:
        item["publicKeyBase64"] = record.public_key_base64
    if record.private_key is not None:
        item["privateKey"] = record.private_key
    return item


def _decode(item: dict[str, Any]) -> KeyPairRecord:
    tags = item.get("tags") or {}
    if not all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in tags.items()):
        raise ValueError(f"bad tags on key pair {item.get('name')!r}")
    return KeyPairRecord(
        name=str(item["name"]),
        resource_id=str(item["id"]),
        created_at=float(item["createdAt"]),
        fingerprint=str(item["fingerprint"]),
        tags=freeze_tags(tags),
        public_key_base64=item.get("publicKeyBase64"),
        private_key=item.get("privateKey"),
    )


def atomic_write(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: never a torn file, mode 0600 from the start."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temp = tempfile.mkstemp(prefix=".emulator-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
