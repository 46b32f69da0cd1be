"""The emulator's data: key pairs and instances per account and region, thread-safe, persisted.

One re-entrant lock guards everything; compound check-then-act steps (a name
must be free, a fingerprint must match) run inside ``transaction()`` so that
concurrent requests cannot interleave them. The data itself and its JSON
form are in ``tables.py``. Names are unique per region
across resource types, as Lightsail's are.

A ``Store`` is the default account's view of the data and owns it;
``store.account(ACCOUNT_ID)`` is another account's view of the same data,
under the same lock. With a data file every committed change is logged and
fsynced before the response goes out, in O(1) (see ``persist.py``); the
log's records are the changes below, replayed on load. Private keys are kept
only for the default key pair, as the service does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from reconciler.emulator.errors import EmulatorError
from reconciler.emulator.persist import DataFile
from reconciler.emulator.records import (
    InstanceRecord,
    KeyPairRecord,
    encode_instance,
    encode_key_pair,
    freeze_tags,
    uuid4_text,
)
from reconciler.emulator.tables import Data, Region, Table, apply_record, document, load_document
from reconciler.model import name_problem

log = logging.getLogger(__name__)

DEFAULT_ACCOUNT_ID = "123456789012"

__all__ = ["AccountStore", "InstanceRecord", "KeyPairRecord", "Store", "freeze_tags"]

R = TypeVar("R", KeyPairRecord, InstanceRecord)
T = TypeVar("T")


class AccountStore:
    """One account's key pairs and instances by region and name. Thread-safe."""

    def __init__(self, data: Data, account_id: str) -> None:
        self._data = data
        self.account_id = account_id

    # -- reading ---------------------------------------------------------

    def _read(self, region: str, read: Callable[[Region], T], absent: T) -> T:
        """``read`` of this account's data in ``region`` under the lock; ``absent`` when
        the account holds nothing there."""
        with self._data.lock:
            data = self._data.find(self.account_id, region)
            return read(data) if data else absent

    def get(self, region: str, name: str) -> KeyPairRecord | None:
        return self._read(region, lambda data: data.key_pairs.records.get(name), None)

    def names(self, region: str) -> list[str]:
        return self._read(region, lambda data: list(data.key_pairs.order), [])

    def regions(self) -> list[str]:
        """Regions where this account has key pairs."""
        with self._data.lock:
            regions = self._data.accounts.get(self.account_id, {})
            return sorted(r for r, data in regions.items() if data.key_pairs.records)

    def count(self, region: str) -> int:
        return self._read(region, lambda data: len(data.key_pairs.records), 0)

    def page(
        self, region: str, after: str | None, limit: int, *, skip: str | None = None
    ) -> tuple[list[KeyPairRecord], bool]:
        """Up to ``limit`` key pairs named after ``after``, by name; and whether more follow."""
        none: tuple[list[KeyPairRecord], bool] = ([], False)
        return self._read(region, lambda data: data.key_pairs.page(after, limit, skip), none)

    def name_taken(self, region: str, name: str) -> bool:
        """Whether a key pair or an instance is called ``name`` in ``region``."""
        return self._read(region, lambda data: data.taken(name), False)

    def get_instance(self, region: str, name: str) -> InstanceRecord | None:
        return self._read(region, lambda data: data.instances.records.get(name), None)

    def instance_names(self, region: str) -> list[str]:
        return self._read(region, lambda data: list(data.instances.order), [])

    def instance_page(
        self, region: str, after: str | None, limit: int
    ) -> tuple[list[InstanceRecord], bool]:
        none: tuple[list[InstanceRecord], bool] = ([], False)
        return self._read(region, lambda data: data.instances.page(after, limit, None), none)

    # -- writing ---------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Hold the lock for a compound change; log it once the outermost one ends.

        The log is written under the lock, so its order is the order of the
        changes; the fsync happens after the lock is released, shared by
        every request waiting for one.
        """
        data = self._data
        upto = 0
        with data.lock:
            data.depth += 1
            try:
                yield
            finally:
                data.depth -= 1
                if data.depth == 0:
                    upto = data.flush()
        if upto and data.file is not None:
            data.file.sync(upto)

    def _changed(self, op: str, region: str, **change: Any) -> None:
        """Record a change for the log (only when there is a data file)."""
        if self._data.file is not None:
            record = {"op": op, "account": self.account_id, "region": region, **change}
            self._data.pending.append(record)

    def _put(self, region: str, records: Sequence[KeyPairRecord | InstanceRecord]) -> None:
        if self._data.file is None:
            return
        key_pairs = [encode_key_pair(r) for r in records if isinstance(r, KeyPairRecord)]
        instances = [encode_instance(r) for r in records if isinstance(r, InstanceRecord)]
        if key_pairs:
            self._changed("putKeyPairs", region, items=key_pairs)
        if instances:
            self._changed("putInstances", region, items=instances)

    def insert(self, region: str, record: KeyPairRecord) -> bool:
        """Add ``record``; False (and no change) if its name is taken in ``region``."""
        with self.transaction():
            data = self._data.region(self.account_id, region)
            if data.taken(record.name):
                return False
            data.key_pairs.put(record)
            self._put(region, [record])
            return True

    def remove(self, region: str, name: str) -> KeyPairRecord | None:
        return self._remove(region, name, lambda data: data.key_pairs, "deleteKeyPair")

    def _remove(
        self, region: str, name: str, table: Callable[[Region], Table[R]], change: str
    ) -> R | None:
        """Take ``name`` out of ``table`` of ``region``, logged as ``change``; None if absent."""
        with self.transaction():
            data = self._data.find(self.account_id, region)
            record = table(data).pop(name) if data else None
            if record is not None:
                self._changed(change, region, name=name)
            return record

    def set_tags(self, region: str, name: str, tags: Mapping[str, str | None]) -> None:
        """Replace the tags of the key pair or instance ``name``; KeyError if neither exists."""
        with self.transaction():
            record: KeyPairRecord | InstanceRecord | None = self.get(region, name)
            if record is None:
                record = self.get_instance(region, name)
            if record is None:
                raise KeyError(name)
            record.tags = freeze_tags(tags)
            self._put(region, [record])

    def set_created_at(self, region: str, name: str, created_at: float) -> None:
        """Test hook: make a key pair look older (or newer) than it is, never by sleeping."""
        with self.transaction():
            record = self.get(region, name)
            if record is None:
                raise KeyError(name)
            record.created_at = created_at
            self._put(region, [record])

    def insert_instances(self, region: str, records: list[InstanceRecord]) -> list[str]:
        """Add every record, or none: the names already taken (empty when all were added)."""
        with self.transaction():
            data = self._data.region(self.account_id, region)
            taken = [record.name for record in records if data.taken(record.name)]
            if not taken:
                data.instances.put_many(records)
                self._put(region, records)
            return taken

    def remove_instance(self, region: str, name: str) -> InstanceRecord | None:
        return self._remove(region, name, lambda data: data.instances, "deleteInstance")

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
        shared_tags = freeze_tags(tags or {})
        created_at = round(time.time(), 3)

        def make(name: str, noise: bytes) -> KeyPairRecord:
            return KeyPairRecord(
                name, uuid4_text(noise[:16]), created_at, noise[16:36].hex(":"), shared_tags
            )

        self._seed(region, count, prefix, make, lambda d: d.key_pairs)

    def seed_instances(
        self,
        region: str,
        count: int,
        *,
        key_pair_name: str,
        prefix: str = "instance-",
        blueprint_id: str = "ubuntu_22_04",
        bundle_id: str = "nano_3_0",
        tags: dict[str, str | None] | None = None,
    ) -> None:
        """Test hook: bulk-insert ``count`` running instances launched with ``key_pair_name``.

        The key pair need not exist (it may have been deleted since), as with
        instances that outlive their key pair.
        """
        shared_tags = freeze_tags(tags or {})
        created_at = round(time.time(), 3)
        zone = f"{region}a"

        def make(name: str, noise: bytes) -> InstanceRecord:
            return InstanceRecord(
                name,
                uuid4_text(noise[:16]),
                created_at,
                zone,
                blueprint_id,
                bundle_id,
                key_pair_name,
                shared_tags,
            )

        self._seed(region, count, prefix, make, lambda d: d.instances)

    def _seed(
        self,
        region: str,
        count: int,
        prefix: str,
        make: Callable[[str, bytes], R],
        table: Callable[[Region], Table[R]],
    ) -> None:
        if count <= 0:
            return
        width = max(6, len(str(count - 1)))
        problem = name_problem(f"{prefix}{0:0{width}d}")
        if problem is not None:
            raise ValueError(f"seed prefix {prefix!r} gives invalid names: {problem}")
        noise = os.urandom(36 * count)
        names = [f"{prefix}{i:0{width}d}" for i in range(count)]
        records = [make(name, noise[36 * i : 36 * i + 36]) for i, name in enumerate(names)]
        with self.transaction():
            data = self._data.region(self.account_id, region)
            taken = next((n for n in names if data.taken(n)), None)
            if taken is not None:
                raise ValueError(f"the name {taken!r} is already in use in {region}")
            table(data).put_many(records)
            self._put(region, records)


class Store(AccountStore):
    """Owns the data (in memory, or in a data file) and is the default account's view."""

    def __init__(self, data_path: str | None = None, *, account_id: str = DEFAULT_ACCOUNT_ID):
        super().__init__(Data(data_path), account_id)
        if self._data.file is not None:
            _load(self._data, self._data.file, account_id)

    def account(self, account_id: str) -> AccountStore:
        """Another account's view of the same data (the default account's is this store)."""
        return self if account_id == self.account_id else AccountStore(self._data, account_id)

    def accounts(self) -> list[str]:
        """Accounts that hold anything."""
        with self._data.lock:
            return sorted(a for a, regions in self._data.accounts.items() if any(regions.values()))

    def clear(self) -> None:
        """Forget everything in every account and region (tests reuse one emulator)."""
        with self.transaction():
            self._data.accounts.clear()
            if self._data.file is not None:
                self._data.pending.append({"op": "clear"})

    def close(self) -> None:
        """Fold the log into the data file and remove it; changes after this reopen it."""
        with self._data.lock:
            if self._data.file is None:
                return
            try:
                self._data.file.close(document(self._data))
            except OSError as exc:
                # Nothing is lost: the log still holds every change, and is replayed on load.
                log.warning("cannot fold the log into %s: %s", self._data.file.path, exc)

    @property
    def fsync_count(self) -> int:
        return self._data.file.stats.fsyncs if self._data.file else 0

    @property
    def bytes_written(self) -> int:
        return self._data.file.stats.bytes if self._data.file else 0


def _load(data: Data, file: DataFile, default_account: str) -> None:
    snapshot, records = file.load()
    try:
        if snapshot is not None:
            load_document(data, snapshot, default_account)
        for record in records:
            apply_record(data, record)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise EmulatorError(
            f"cannot read emulator data file {file.path}: {exc}",
            hint="point --data at another file, or move this one (and its .log) away "
            "to start empty",
        ) from exc
