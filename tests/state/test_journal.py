"""The write-ahead journal: its records, durability with group commit, reading and replay."""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.errors import StateError
from reconciler.model import Address, JournalOp, OpenIntent
from reconciler.state import Journal, StateDocument, entry_to_json, read_journal, replay
from tests.state.test_state_document import SECRET, make_entry

WEB = Address("us-east-1", "web")
DB = Address("eu-west-1", "db")


@pytest.fixture
def umask0() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "s.json.journal") as j:
        yield j


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- writing ---------------------------------------------------------------


def test_records_have_the_documented_shape(journal: Journal) -> None:
    create = journal.intent(JournalOp.CREATE, WEB)
    journal.result(create, make_entry(WEB))
    gen = journal.intent(JournalOp.GENERATE, DB)
    journal.keygen(gen, DB, SECRET, "ssh-rsa AAAA")
    journal.failed(gen, "ImportKeyPair: InvalidInput")
    gone = journal.intent(JournalOp.DELETE, DB)
    journal.removed(gone, DB)

    records = lines(journal.path)
    assert [r["kind"] for r in records] == [
        "intent",
        "result",
        "intent",
        "keygen",
        "failed",
        "intent",
        "result",
    ]
    intent = records[0]
    assert set(intent) == {"kind", "id", "op", "region", "name", "at"}
    assert (intent["id"], intent["op"], intent["region"], intent["name"]) == (
        create,
        "create",
        "us-east-1",
        "web",
    )
    assert isinstance(intent["at"], float)
    assert records[1] == {"kind": "result", "id": create, "entry": entry_to_json(make_entry(WEB))}
    assert records[3] == {
        "kind": "keygen",
        "id": gen,
        "region": "eu-west-1",
        "name": "db",
        "privateKey": SECRET,
        "publicKey": "ssh-rsa AAAA",
    }
    assert records[4] == {"kind": "failed", "id": gen, "error": "ImportKeyPair: InvalidInput"}
    assert records[6] == {
        "kind": "result",
        "id": gone,
        "removed": True,
        "region": "eu-west-1",
        "name": "db",
    }
    assert len({create, gen, gone}) == 3


def test_each_append_is_fsynced_and_counted(journal: Journal) -> None:
    base = journal.fsync_count  # the directory, for the new file
    journal.intent(JournalOp.CREATE, WEB)
    journal.intent(JournalOp.CREATE, DB)
    assert journal.fsync_count == base + 2
    assert journal.bytes_written == journal.path.stat().st_size


def test_journal_is_created_private_whatever_the_umask(tmp_path: Path, umask0: None) -> None:
    with Journal(tmp_path / "j") as j:
        j.intent(JournalOp.CREATE, WEB)
    assert stat.S_IMODE((tmp_path / "j").stat().st_mode) == 0o600


def test_an_existing_journal_is_never_reopened_for_append(tmp_path: Path) -> None:
    (tmp_path / "j").write_text("")
    with pytest.raises(StateError, match="already exists"):
        Journal(tmp_path / "j")


def test_journal_operations_keep_their_names_on_disk() -> None:
    # The on-disk names outlive the enum: old journals must still replay.
    old = {"create", "import", "generate", "adopt", "update-tags", "delete", "retire"}
    assert {op.value for op in JournalOp} == old | {"forget"}


def test_unknown_operation_is_a_bug(journal: Journal) -> None:
    with pytest.raises(ValueError, match="unknown journal operation"):
        journal.intent("create-ish", WEB)  # type: ignore[arg-type]


def test_closed_journal_refuses_appends(journal: Journal) -> None:
    journal.close()
    with pytest.raises(StateError, match="closed"):
        journal.intent(JournalOp.CREATE, WEB)


def test_a_failed_fsync_breaks_the_journal_for_good(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_fsync = os.fsync

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(StateError, match="fsync failed"):
        journal.intent(JournalOp.CREATE, WEB)
    monkeypatch.setattr(os, "fsync", real_fsync)
    # A later fsync succeeding would prove nothing about the lost pages.
    with pytest.raises(StateError, match="can no longer be trusted"):
        journal.intent(JournalOp.CREATE, DB)


def test_group_commit_ten_threads_share_fsyncs(journal: Journal) -> None:
    threads, per_thread = 10, 100
    ids: list[list[str]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                ids[n].append(journal.intent(JournalOp.CREATE, Address("us-east-1", f"k{n}-{i}")))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    before = journal.fsync_count
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors
    appends = threads * per_thread
    records = read_journal(journal.path)
    assert len(records) == appends
    assert {r["id"] for r in records} == {i for chunk in ids for i in chunk}
    assert {r["name"] for r in records} == {
        f"k{n}-{i}" for n in range(threads) for i in range(per_thread)
    }
    fsyncs = journal.fsync_count - before
    assert 1 <= fsyncs < appends
    assert journal.bytes_written == journal.path.stat().st_size


# -- reading ---------------------------------------------------------------


def test_missing_or_empty_journal_has_no_records(tmp_path: Path) -> None:
    assert read_journal(tmp_path / "none") == []
    (tmp_path / "empty").touch(mode=0o600)
    assert read_journal(tmp_path / "empty") == []


def test_a_torn_last_line_is_ignored(journal: Journal, caplog: pytest.LogCaptureFixture) -> None:
    journal.intent(JournalOp.CREATE, WEB)
    journal.result(journal.intent(JournalOp.CREATE, DB), make_entry(DB))
    with open(journal.path, "ab") as f:
        f.write(b'{"kind":"result","id":"x","entry":{"region":"us-east-1","privateKey":"-----BEG')
    records = read_journal(journal.path)
    assert [r["kind"] for r in records] == ["intent", "intent", "result"]
    assert "incomplete last record" in caplog.text
    assert "BEG" not in caplog.text


def test_a_damaged_last_line_is_ignored(journal: Journal) -> None:
    journal.intent(JournalOp.CREATE, WEB)
    with open(journal.path, "ab") as f:
        f.write(b"\x00\x00\x00\n")
    assert len(read_journal(journal.path)) == 1


def insert_line(path: Path, before: int, raw: bytes) -> None:
    """Put ``raw`` into a journal file before its line number ``before`` (from 1)."""
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([*lines[: before - 1], raw, *lines[before - 1 :]]))


def test_a_corrupt_line_in_the_middle_is_an_error_naming_file_and_line(journal: Journal) -> None:
    journal.intent(JournalOp.CREATE, WEB)
    journal.intent(JournalOp.CREATE, DB)
    insert_line(journal.path, 2, b'{"kind": "keygen", "privateKey": "TOPSECRET\n')
    with pytest.raises(StateError) as caught:
        read_journal(journal.path)
    message = str(caught.value)
    assert str(journal.path) in message
    assert "line 2" in message
    assert "TOPSECRET" not in message


def test_a_non_object_line_in_the_middle_is_corrupt(journal: Journal) -> None:
    journal.intent(JournalOp.CREATE, DB)
    insert_line(journal.path, 1, b"[1, 2]\n")
    with pytest.raises(StateError, match="line 1: not a JSON object"):
        read_journal(journal.path)


# -- replay ----------------------------------------------------------------


def intent(rid: str, op: str, address: Address, at: float = 1.0) -> dict[str, Any]:
    return {
        "kind": "intent",
        "id": rid,
        "op": op,
        "region": address.region,
        "name": address.name,
        "at": at,
    }


def keygen(rid: str, address: Address, key: str = SECRET) -> dict[str, Any]:
    return {
        "kind": "keygen",
        "id": rid,
        "region": address.region,
        "name": address.name,
        "privateKey": key,
        "publicKey": "ssh-rsa PUB",
    }


def result(rid: str, address: Address, fingerprint: str = "fp") -> dict[str, Any]:
    entry = entry_to_json(make_entry(address, fingerprint=fingerprint))
    return {"kind": "result", "id": rid, "entry": entry}


def removed(rid: str, address: Address) -> dict[str, Any]:
    return {
        "kind": "result",
        "id": rid,
        "removed": True,
        "region": address.region,
        "name": address.name,
    }


def failed(rid: str) -> dict[str, Any]:
    return {"kind": "failed", "id": rid, "error": "no"}


def test_result_sets_the_entry_with_its_private_key() -> None:
    doc = replay(StateDocument.new(), [intent("a", "create", WEB), result("a", WEB)])
    assert doc.entries[WEB].private_key == SECRET
    assert doc.pending == {}


def test_removed_drops_the_entry() -> None:
    start = StateDocument.new()
    start.entries[WEB] = make_entry(WEB)
    doc = replay(start, [intent("a", "delete", WEB), removed("a", WEB)])
    assert doc.entries == {}


def test_failed_intent_leaves_nothing() -> None:
    doc = replay(StateDocument.new(), [intent("a", "create", WEB), failed("a")])
    assert doc.entries == {} and doc.pending == {}


def test_create_without_outcome_becomes_a_pending_create() -> None:
    doc = replay(StateDocument.new(), [intent("a", "create", WEB, at=42.0)])
    assert doc.pending == {WEB: OpenIntent(WEB, "a", 42.0, JournalOp.CREATE)}
    assert doc.pending[WEB].private_key is None


def test_generate_without_outcome_keeps_the_generated_key() -> None:
    for op in ("generate", "import"):
        doc = replay(StateDocument.new(), [intent("g", op, DB, at=5.0), keygen("g", DB)])
        pending = doc.pending[DB]
        assert (pending.operation, pending.intent_id, pending.started_at) == ("generate", "g", 5.0)
        assert pending.private_key == SECRET
        assert pending.public_key == "ssh-rsa PUB"


@pytest.mark.parametrize("op", ["import", "update-tags", "delete", "adopt", "retire", "forget"])
def test_other_operations_without_outcome_leave_nothing(op: str) -> None:
    start = StateDocument.new()
    start.entries[WEB] = make_entry(WEB)
    doc = replay(start, [intent("a", op, WEB)])
    assert doc == start


def test_a_later_result_clears_an_earlier_pending_create() -> None:
    start = StateDocument.new()
    start.pending[WEB] = OpenIntent(WEB, "old", 1.0)
    doc = replay(start, [intent("new", "create", WEB), result("new", WEB)])
    assert doc.pending == {}
    assert WEB in doc.entries


def test_failed_for_an_earlier_runs_intent_clears_its_pending_create() -> None:
    start = StateDocument.new()
    start.pending[WEB] = OpenIntent(WEB, "old", 1.0)
    start.pending[DB] = OpenIntent(DB, "other", 1.0)
    doc = replay(start, [failed("old")])
    assert list(doc.pending) == [DB]


def test_replay_is_pure_and_idempotent() -> None:
    start = StateDocument.new()
    start.entries[DB] = make_entry(DB)
    before = start.copy()
    records = [
        intent("a", "create", WEB),
        result("a", WEB),
        intent("b", "delete", DB),
        removed("b", DB),
        intent("c", "create", Address("us-east-1", "lost")),
    ]
    once = replay(start, records)
    assert start == before
    assert replay(once, records) == once
    assert once.serial == start.serial and once.lineage == start.lineage


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"kind": "teleport", "id": "a"}, "unknown record kind"),
        ({"kind": "intent", "id": 3}, "'id' must be a string"),
        ({"kind": "intent", "id": "a", "op": "create", "region": "r"}, "'name'"),
        ({"kind": "result", "id": "a", "entry": {"region": "r", "name": "n"}}, "'origin'"),
        ({"kind": "keygen", "id": "a", "region": "r", "name": "n"}, "'privateKey'"),
        (intent("a", "create-ish", WEB), "'op' is not an operation this version knows"),
    ],
)
def test_malformed_records_are_state_errors(record: dict[str, Any], expected: str) -> None:
    with pytest.raises(StateError) as caught:
        replay(StateDocument.new(), [intent("z", "create", WEB), record], source="j.journal")
    assert "j.journal record 2" in str(caught.value)
    assert expected in str(caught.value)


# -- replay against a simple model -------------------------------------------

ADDRESSES = [WEB, DB, Address("us-east-1", "db")]
INTENT_IDS = [f"i{n}" for n in range(6)]
OLD_IDS = [f"old{n}" for n in range(len(ADDRESSES))]
OPS = ["create", "import", "generate", "update-tags", "delete", "adopt"]


@st.composite
def journals(draw: st.DrawFn) -> tuple[StateDocument, list[dict[str, Any]]]:
    doc = StateDocument.new()
    for n, address in enumerate(ADDRESSES):
        if draw(st.booleans()):
            doc.entries[address] = make_entry(address, fingerprint="start")
        if draw(st.booleans()):
            doc.pending[address] = OpenIntent(address, OLD_IDS[n], 0.5)
    free = list(INTENT_IDS)
    records: list[dict[str, Any]] = []
    for n in range(draw(st.integers(0, 20))):
        kind = draw(st.sampled_from(["intent", "keygen", "result", "removed", "failed"]))
        address = draw(st.sampled_from(ADDRESSES))
        if kind == "intent" and free:
            rid = free.pop(draw(st.integers(0, len(free) - 1)))
            records.append(intent(rid, draw(st.sampled_from(OPS)), address, at=float(n)))
            continue
        rid = draw(st.sampled_from(INTENT_IDS + OLD_IDS))
        if kind == "keygen":
            records.append(keygen(rid, address, key=f"key-{n}"))
        elif kind == "result":
            records.append(result(rid, address, fingerprint=f"fp-{n}"))
        elif kind == "removed":
            records.append(removed(rid, address))
        else:
            records.append(failed(rid))
    return doc, records


def model(doc: StateDocument, records: list[dict[str, Any]]) -> StateDocument:
    """Per address, the last record that decides it wins (scanning backwards)."""

    def at(r: Mapping[str, Any]) -> Address:
        if r["kind"] == "result" and not r.get("removed"):
            return Address(r["entry"]["region"], r["entry"]["name"])
        return Address(r["region"], r["name"])

    settled = {r["id"] for r in records if r["kind"] in ("result", "failed")}
    failed_ids = {r["id"] for r in records if r["kind"] == "failed"}
    intents = {r["id"]: r for r in records if r["kind"] == "intent"}
    out = StateDocument(doc.version, doc.lineage, doc.serial)
    for address in ADDRESSES:
        if address in doc.entries:
            out.entries[address] = doc.entries[address]
        for r in reversed(records):
            if r["kind"] == "result" and at(r) == address:
                if r.get("removed"):
                    out.entries.pop(address, None)
                else:
                    out.entries[address] = make_entry(
                        address, fingerprint=r["entry"]["fingerprint"]
                    )
                break
        for r in reversed(records):
            if r["kind"] == "result" and at(r) == address:
                break
            if r["id"] in settled or r["kind"] not in ("intent", "keygen") or at(r) != address:
                continue
            if r["kind"] == "intent" and r["op"] == "create":
                out.pending[address] = OpenIntent(address, r["id"], r["at"])
                break
            owner = intents.get(r["id"])
            if r["kind"] == "keygen" and (owner is None or owner["op"] in ("generate", "import")):
                started = owner["at"] if owner else 0.0
                out.pending[address] = OpenIntent(
                    address, r["id"], started, JournalOp.GENERATE, r["privateKey"], r["publicKey"]
                )
                break
        else:
            earlier = doc.pending.get(address)
            if earlier is not None and earlier.intent_id not in failed_ids:
                out.pending[address] = earlier
    return out


@settings(max_examples=300, deadline=None)
@given(journals())
def test_replay_matches_the_model(case: tuple[StateDocument, list[dict[str, Any]]]) -> None:
    doc, records = case
    before = doc.copy()
    replayed = replay(doc, records)
    assert replayed == model(doc, records)
    assert doc == before
    assert replay(replayed, records) == replayed


@settings(max_examples=100, deadline=None)
@given(journals())
def test_no_generated_key_is_ever_dropped(case: tuple[StateDocument, list[dict[str, Any]]]) -> None:
    doc, records = case
    replayed = replay(doc, records)
    settled = {r["id"] for r in records if r["kind"] in ("result", "failed")}
    for n, r in enumerate(records):
        if r["kind"] != "keygen" or r["id"] in settled:
            continue
        owner = next((x for x in records if x["kind"] == "intent" and x["id"] == r["id"]), None)
        if owner is not None and owner["op"] not in ("generate", "import"):
            continue
        address = Address(r["region"], r["name"])
        superseded = any(
            _address_of(later) == address
            and (later["kind"] == "result" or later["id"] not in settled)
            for later in records[n + 1 :]
        )
        if not superseded:
            assert replayed.pending[address].private_key == r["privateKey"]


def _address_of(r: Mapping[str, Any]) -> Address | None:
    if r["kind"] == "failed":
        return None
    if r["kind"] == "result" and not r.get("removed"):
        return Address(r["entry"]["region"], r["entry"]["name"])
    return Address(r["region"], r["name"])
