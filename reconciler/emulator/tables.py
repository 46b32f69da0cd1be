"""The emulator's data in memory, and its JSON form: the snapshot document and change records.

``Data`` holds every account's regions; a ``Region`` holds one ``Table`` of
key pairs and one of instances, each a dict beside a sorted list of names, so
that a page is a bisect and a slice. ``document`` and ``load_document`` are
the data file's snapshot; ``apply_record`` replays one logged change. Locking
and logging are the ``Store``'s job, not this module's.
"""

from __future__ import annotations

import threading
from bisect import bisect_right, insort
from collections.abc import Iterable
from typing import Any, Generic, TypeVar

from reconciler.emulator.persist import DataFile
from reconciler.emulator.records import (
    InstanceRecord,
    KeyPairRecord,
    decode_instance,
    decode_key_pair,
    encode_instance,
    encode_key_pair,
)

FORMAT = "lightsail-emulator/v2"
FORMAT_V1 = "lightsail-emulator/v1"

R = TypeVar("R", KeyPairRecord, InstanceRecord)


class Table(Generic[R]):
    """Records of one type in one region, by name, with the names kept sorted."""

    __slots__ = ("order", "records")

    def __init__(self) -> None:
        self.records: dict[str, R] = {}
        self.order: list[str] = []

    def put(self, record: R) -> None:
        """Insert or replace."""
        if record.name not in self.records:
            insort(self.order, record.name)
        self.records[record.name] = record

    def put_many(self, records: Iterable[R]) -> None:
        fresh = False
        for record in records:
            fresh = fresh or record.name not in self.records
            if record.name not in self.records:
                self.order.append(record.name)
            self.records[record.name] = record
        if fresh:
            self.order.sort()

    def pop(self, name: str) -> R | None:
        record = self.records.pop(name, None)
        if record is not None:
            del self.order[bisect_right(self.order, name) - 1]
        return record

    def page(self, after: str | None, limit: int, skip: str | None) -> tuple[list[R], bool]:
        order = self.order
        index = 0 if after is None else bisect_right(order, after)
        found: list[R] = []
        while index < len(order) and len(found) < limit:
            name = order[index]
            index += 1
            if name != skip:
                found.append(self.records[name])
        # ``skip`` is a single name, so one of the next two is a real one if any is.
        more = any(name != skip for name in order[index : index + 2])
        return found, more


class Region:
    __slots__ = ("instances", "key_pairs")

    def __init__(self) -> None:
        self.key_pairs: Table[KeyPairRecord] = Table()
        self.instances: Table[InstanceRecord] = Table()

    def taken(self, name: str) -> bool:
        return name in self.key_pairs.records or name in self.instances.records

    def __bool__(self) -> bool:
        return bool(self.key_pairs.records or self.instances.records)


class Data:
    """Everything, for every account, and the data file it is kept in."""

    def __init__(self, path: str | None) -> None:
        self.file = DataFile(path) if path is not None else None
        self.lock = threading.RLock()
        self.accounts: dict[str, dict[str, Region]] = {}
        self.depth = 0
        # Changes made in the current outermost transaction, not yet logged.
        self.pending: list[dict[str, Any]] = []

    def region(self, account: str, region: str) -> Region:
        return self.accounts.setdefault(account, {}).setdefault(region, Region())

    def find(self, account: str, region: str) -> Region | None:
        regions = self.accounts.get(account)
        return regions.get(region) if regions else None

    def flush(self) -> int:
        """Log the pending changes (under the lock); the change number to sync up to."""
        if self.file is None or not self.pending:
            self.pending.clear()
            return 0
        records, self.pending = self.pending, []
        upto = self.file.append(records)
        if self.file.wants_compaction():
            self.file.compact(document(self))
        return upto


def document(data: Data) -> dict[str, Any]:
    """Everything, as the data file's snapshot holds it."""
    accounts: dict[str, Any] = {}
    for account, regions in sorted(data.accounts.items()):
        shown = {
            region: {
                "keyPairs": [encode_key_pair(r.key_pairs.records[n]) for n in r.key_pairs.order],
                "instances": [encode_instance(r.instances.records[n]) for n in r.instances.order],
            }
            for region, r in sorted(regions.items())
            if r
        }
        if shown:
            accounts[account] = shown
    return {"format": FORMAT, "accounts": accounts}


def load_document(data: Data, document: Any, default_account: str) -> None:
    """Fill ``data`` from a v2 document, or a v1 one (whose key pairs are the default account's)."""
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    if document.get("format") == FORMAT_V1:
        for region, items in document["regions"].items():
            data.region(default_account, region).key_pairs.put_many(
                decode_key_pair(item) for item in items
            )
        return
    if document.get("format") != FORMAT:
        raise ValueError(f"not a {FORMAT} document")
    for account, regions in document["accounts"].items():
        for region, content in regions.items():
            target = data.region(str(account), region)
            target.key_pairs.put_many(decode_key_pair(i) for i in content.get("keyPairs", []))
            target.instances.put_many(decode_instance(i) for i in content.get("instances", []))


def apply_record(data: Data, record: dict[str, Any]) -> None:
    """Replay one logged change."""
    op = record["op"]
    if op == "clear":
        data.accounts.clear()
        return
    region = data.region(str(record["account"]), str(record["region"]))
    if op == "putKeyPairs":
        region.key_pairs.put_many(decode_key_pair(item) for item in record["items"])
    elif op == "putInstances":
        region.instances.put_many(decode_instance(item) for item in record["items"])
    elif op == "deleteKeyPair":
        region.key_pairs.pop(str(record["name"]))
    elif op == "deleteInstance":
        region.instances.pop(str(record["name"]))
    else:
        raise ValueError(f"unknown change {op!r} in the log")
