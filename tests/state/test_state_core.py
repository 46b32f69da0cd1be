"""The state protocol of ``core.StateStore`` over a new object store and a new lock.

Each is one small class here (a dict of objects, a thread lock): the protocol
itself (lineage and serial, backup, folding journals, refusing a redacted copy,
refusing a write over a moved document) comes from the core unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from reconciler.errors import LockHeldError, StaleStateError, StateError
from reconciler.model import Address, JournalOp
from reconciler.state import StateBackend, StateDocument
from reconciler.state.core import Leftovers, Refused, StateStore
from reconciler.state.document import loads
from reconciler.state.files import IOStats
from reconciler.state.lock import LockInfo
from reconciler.state.records import JournalRecords
from tests.state.test_state_document import SECRET, make_entry

WEB = Address("us-east-1", "web")
DB = Address("eu-west-1", "db")


class ListJournal(JournalRecords):
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.appends = 0

    def close(self) -> None:
        pass

    def _append(self, record: dict[str, Any]) -> None:
        self.records.append(record)
        self.appends += 1


class MemoryObjects:
    """An object store in a dict, with conditional writes (version = a counter)."""

    backend = "memory state"
    location = "memory://state"
    backup = "memory://state.backup"
    conditional = True

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.journal: list[dict[str, Any]] = []
        self.writes = 0

    def load(self, *, secrets: bool = True) -> tuple[StateDocument | None, object]:
        if "state" not in self.objects:
            return None, None
        data, version = self.objects["state"]
        return loads(data, source=self.location, secrets=secrets, backup=self.backup), version

    def version(self) -> object:
        return self.objects["state"][1] if "state" in self.objects else None

    def save(self, data: bytes, expected: object) -> object:
        if self.version() != expected:
            raise Refused()
        if "state" in self.objects:
            self.objects["backup"] = self.objects["state"]
        self.writes += 1
        self.objects["state"] = (data, self.writes)
        return self.writes

    def leftovers(self, doc: StateDocument) -> Leftovers:
        return Leftovers(list(self.journal), "memory://journal", remove=self.journal.clear)

    def new_journal(self, doc: StateDocument) -> JournalRecords:
        return ListJournal(self.journal)

    def size(self) -> int:
        return len(self.objects.get("state", (b"", 0))[0])

    def preflight(self, reserve_bytes: int, state_bytes: int) -> None:
        pass


class ThreadLock:
    """A lock for one process: the smallest ``StateLock``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def acquire(self, command: str, timeout: float) -> LockInfo:
        if not self._lock.acquire(timeout=timeout if timeout > 0 else -1):
            raise LockHeldError("memory://state is locked")
        return LockInfo.for_this_process(command)

    def release(self) -> None:
        self._lock.release()

    def force_unlock(self, lock_id: str, *, force: bool = False) -> None:
        raise StateError("nothing to force")


def memory_backend() -> tuple[StateStore, MemoryObjects]:
    objects = MemoryObjects()
    return StateStore(objects, ThreadLock(), IOStats()), objects


def test_a_new_store_and_lock_follow_the_whole_protocol() -> None:
    backend, objects = memory_backend()
    assert isinstance(backend.location, str)
    typed: StateBackend = backend
    with typed.lock("apply"):
        first = typed.begin()
        journal = typed.journal()
        journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        doc = typed.commit()
    assert doc.serial == 1 and doc.entries[WEB].private_key == SECRET
    assert objects.journal == []  # folded in, then removed
    # A killed run's records are folded in by the next begin, lineage kept.
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, DB), make_entry(DB))
    assert set(backend.read().entries) == {WEB, DB}  # read replays what is left
    with backend.lock("apply"):
        again = backend.begin()
    assert (again.serial, again.lineage) == (2, first.lineage)
    assert loads(objects.objects["backup"][0], source="backup").serial == 1


def test_the_core_refuses_redacted_copies_moved_documents_and_unlocked_writes() -> None:
    backend, objects = memory_backend()
    with pytest.raises(StateError, match="needs the lock"):
        backend.begin()
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        backend.commit()
    with backend.lock("state rm"), pytest.raises(StateError, match="without private keys"):
        backend.write(backend.read(secrets=False))
    with backend.lock("apply"):
        backend.begin()
        objects.save(objects.objects["state"][0], objects.version())  # another writer
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, DB), make_entry(DB))
        with pytest.raises(StaleStateError, match="changed since this run read it") as caught:
            backend.commit()
        assert caught.value.hint is not None and "memory://journal" in caught.value.hint
