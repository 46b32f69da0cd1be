"""The local state backend: private, atomic, backed up, journaled, guarded."""

from __future__ import annotations

import errno
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import InsecureStateError, StaleStateError, StateError
from reconciler.model import Address, JournalOp, OpenIntent
from reconciler.state import LocalBackend, StateBackend, StateDocument
from reconciler.state import local as local_module
from reconciler.state.document import dumps
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
def path(tmp_path: Path) -> Path:
    return tmp_path / "reconciler.state.json"


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def on_disk(p: Path) -> Any:
    return json.loads(p.read_bytes())


def write_doc(backend: LocalBackend, *entries: Address) -> StateDocument:
    """Under the lock, add ``entries`` and write the whole document."""
    with backend.lock("test"):
        doc = backend.begin()
        for address in entries:
            doc.entries[address] = make_entry(address)
        backend.write(doc)
        return doc


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_local_backend_follows_the_protocol(path: Path) -> None:
    backend: StateBackend = LocalBackend(path)
    assert backend.location == str(path)


# -- reading -----------------------------------------------------------------


def test_missing_state_reads_as_a_new_document_and_writes_nothing(path: Path) -> None:
    backend = LocalBackend(path)
    doc = backend.read()
    assert (doc.serial, doc.entries, doc.pending) == (0, {}, {})
    with backend.lock("plan"):
        assert backend.begin().serial == 0
        backend.commit()
    assert sorted(os.listdir(path.parent)) == []
    assert backend.fsync_count == 0


def test_malformed_json_is_a_state_error_naming_the_file(path: Path) -> None:
    path.write_text('{"version": 1, "lineage": "x", ')
    path.chmod(0o600)
    with pytest.raises(StateError) as caught:
        LocalBackend(path).read()
    assert str(path) in str(caught.value)
    assert "not valid JSON" in str(caught.value)


def test_newer_version_on_disk_is_refused(path: Path) -> None:
    path.write_text(json.dumps({"version": 99, "lineage": "x", "serial": 1}))
    path.chmod(0o600)
    with pytest.raises(StateError, match="format version 99"):
        LocalBackend(path).read()


def test_group_or_world_readable_state_is_refused_with_the_fix(path: Path) -> None:
    write_doc(LocalBackend(path), WEB)
    path.chmod(0o644)
    with pytest.raises(InsecureStateError) as caught:
        LocalBackend(path).read()
    assert "0644" in str(caught.value)
    assert caught.value.hint == f"run `chmod 600 {path}`"
    assert LocalBackend(path, allow_insecure=True).read().entries[WEB].private_key == SECRET


def test_readable_journal_is_refused_too(path: Path) -> None:
    backend = LocalBackend(path)
    with backend.lock("apply"):
        backend.begin()
        backend.journal().intent(JournalOp.CREATE, WEB)
    Path(f"{path}.journal").chmod(0o640)
    with pytest.raises(InsecureStateError, match="mode 0640") as caught:
        backend.read()
    assert caught.value.hint == f"run `chmod 600 {path}.journal`"


def test_symlinked_state_is_refused_for_reading_and_writing(path: Path, tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    write_doc(LocalBackend(real), WEB)
    path.symlink_to(real)
    backend = LocalBackend(path)
    with pytest.raises(InsecureStateError, match="symbolic link"):
        backend.read()
    with backend.lock("apply"), pytest.raises(InsecureStateError, match="symbolic link"):
        backend.write(StateDocument.new())
    assert path.is_symlink()


@pytest.mark.parametrize("suffix", [".journal", ".lock"])
def test_symlinked_journal_or_lock_is_refused(path: Path, tmp_path: Path, suffix: str) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("")
    Path(f"{path}{suffix}").symlink_to(target)
    backend = LocalBackend(path)
    with pytest.raises(InsecureStateError, match="symbolic link"), backend.lock("apply"):
        backend.begin()
        backend.journal()
    assert target.read_text() == ""


# -- writing -----------------------------------------------------------------


def test_every_file_is_private_from_the_start_even_with_umask_0(path: Path, umask0: None) -> None:
    backend = LocalBackend(path)
    with backend.lock("apply"):
        assert mode(Path(f"{path}.lock")) == 0o600
        doc = backend.begin()
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        assert mode(Path(f"{path}.journal")) == 0o600
        doc = backend.commit()
        assert mode(path) == 0o600
        doc.entries[DB] = make_entry(DB)
        backend.write(doc)
    assert mode(path) == 0o600
    assert mode(Path(f"{path}.backup")) == 0o600


def test_writes_bump_the_serial_keep_the_lineage_and_back_up(path: Path) -> None:
    backend = LocalBackend(path)
    first = write_doc(backend, WEB)
    assert first.serial == 1
    assert not Path(f"{path}.backup").exists()
    second = write_doc(backend, DB)
    third = write_doc(backend)
    assert (second.serial, third.serial) == (2, 3)
    assert first.lineage == second.lineage == third.lineage == on_disk(path)["lineage"]
    assert on_disk(path)["serial"] == 3
    backup = on_disk(Path(f"{path}.backup"))
    assert backup["serial"] == 2
    assert backup["lineage"] == first.lineage


def test_backup_of_an_allowed_insecure_state_is_private(path: Path) -> None:
    backend = LocalBackend(path, allow_insecure=True)
    write_doc(backend, WEB)
    path.chmod(0o644)
    write_doc(backend, DB)
    assert mode(path) == 0o600
    assert mode(Path(f"{path}.backup")) == 0o600


def test_backup_is_copied_where_hard_links_fail(
    path: Path, monkeypatch: pytest.MonkeyPatch, umask0: None
) -> None:
    backend = LocalBackend(path)
    write_doc(backend, WEB)

    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    write_doc(backend, DB)
    assert on_disk(Path(f"{path}.backup"))["serial"] == 1
    assert mode(Path(f"{path}.backup")) == 0o600
    assert leftovers(path.parent) == []


@pytest.mark.parametrize("failing_call", [1, 2])
def test_a_failed_rename_leaves_the_old_state_whole_and_no_temporaries(
    path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: int
) -> None:
    backend = LocalBackend(path)
    write_doc(backend, WEB)
    write_doc(backend, DB)
    before, backup_before = path.read_bytes(), Path(f"{path}.backup").read_bytes()
    real_replace = os.replace
    calls = []

    def replace(src: str, dst: str) -> None:
        calls.append(dst)
        if len(calls) == failing_call:  # 1: the backup rename, 2: the state rename
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with backend.lock("apply"):
        doc = backend.begin()
        del doc.entries[WEB]
        with pytest.raises(StateError, match="cannot write state"):
            backend.write(doc)
    assert path.read_bytes() == before
    assert doc.serial == 2  # unchanged: the write did not happen
    if failing_call == 1:
        assert Path(f"{path}.backup").read_bytes() == backup_before
    assert leftovers(path.parent) == []
    monkeypatch.setattr(os, "replace", real_replace)
    assert WEB in LocalBackend(path).read().entries


def test_a_failure_while_writing_the_temporary_leaves_the_old_state(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalBackend(path)
    write_doc(backend, WEB)
    before = path.read_bytes()
    real_write = os.write

    def short_then_fail(fd: int, data: bytes) -> int:
        if len(data) > 200:
            real_write(fd, bytes(data)[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", short_then_fail)
    with backend.lock("apply"):
        doc = backend.begin()
        doc.entries[DB] = make_entry(DB)
        with pytest.raises(StateError, match="No space left"):
            backend.write(doc)
    assert path.read_bytes() == before
    assert leftovers(path.parent) == []


def test_write_and_commit_need_the_lock(path: Path) -> None:
    backend = LocalBackend(path)
    for call in (backend.begin, backend.journal, backend.commit):
        with pytest.raises(StateError, match="needs the lock"):
            call()
    with pytest.raises(StateError, match="needs the lock"):
        backend.write(StateDocument.new())
    assert not path.exists()


def test_a_replaced_state_is_not_overwritten(path: Path, tmp_path: Path) -> None:
    backend = LocalBackend(path)
    write_doc(backend, WEB)
    other = tmp_path / "other.json"
    write_doc(LocalBackend(other), DB)
    with backend.lock("apply"):
        doc = backend.begin()
        os.replace(other, path)  # someone puts another state in its place
        with pytest.raises(StaleStateError, match="lineage"):
            backend.write(doc)
        backend.journal().result(backend.journal().intent(JournalOp.CREATE, WEB), make_entry(WEB))
        with pytest.raises(StaleStateError, match="lineage"):
            backend.commit()
    # The journaled result is kept, not lost, for the next run to record.
    assert Path(f"{path}.journal").exists()


def test_a_state_written_behind_our_back_is_not_overwritten(path: Path) -> None:
    backend = LocalBackend(path)
    write_doc(backend, WEB)
    with backend.lock("apply"):
        doc = backend.begin()
        newer = StateDocument.from_json(on_disk(path), source="x")
        newer.serial += 5
        path.write_bytes(dumps(newer))
        with pytest.raises(StaleStateError, match="serial 6"):
            backend.write(doc)


# -- the journal through the backend ----------------------------------------


def run_creates(backend: LocalBackend, *addresses: Address, commit: bool = True) -> None:
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        for address in addresses:
            journal.result(journal.intent(JournalOp.CREATE, address), make_entry(address))
        if commit:
            backend.commit()


def test_commit_records_journaled_keys_and_removes_the_journal(path: Path) -> None:
    backend = LocalBackend(path)
    run_creates(backend, WEB, DB)
    data = on_disk(path)
    assert data["serial"] == 1
    assert [e["privateKey"] for e in data["keyPairs"]] == [SECRET, SECRET]
    assert not Path(f"{path}.journal").exists()
    assert not Path(f"{path}.lock").exists()


def test_commit_without_records_writes_nothing(path: Path) -> None:
    backend = LocalBackend(path)
    run_creates(backend, WEB)
    before = os.stat(path)
    with backend.lock("apply"):
        backend.begin()
        backend.journal()
        assert backend.commit().serial == 1
    assert os.stat(path).st_ino == before.st_ino
    assert not Path(f"{path}.journal").exists()


def test_a_killed_runs_journal_is_read_without_writing_and_compacted_by_the_next(
    path: Path,
) -> None:
    backend = LocalBackend(path)
    run_creates(backend, WEB)
    lost = Address("us-east-1", "lost")
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, DB), make_entry(DB))
        journal.intent(JournalOp.CREATE, lost)  # the process dies during this call
    before = path.read_bytes()

    seen = LocalBackend(path).read()
    assert set(seen.entries) == {WEB, DB}
    assert seen.pending[lost].operation is JournalOp.CREATE
    assert seen.serial == 1
    assert path.read_bytes() == before
    assert Path(f"{path}.journal").exists()

    with backend.lock("apply"):
        doc = backend.begin()
        assert doc.serial == 2
        assert set(doc.entries) == {WEB, DB}
        assert doc.pending[lost].intent_id
        assert not Path(f"{path}.journal").exists()
        assert backend.commit() == doc
    assert LocalBackend(path).read() == doc


def test_journal_after_an_unfinished_run_folds_in_the_leftover_first(path: Path) -> None:
    backend = LocalBackend(path)
    run_creates(backend, WEB, commit=False)
    with backend.lock("apply"):
        journal = backend.journal()  # no begin(): the leftover must still not be lost
        journal.result(journal.intent(JournalOp.CREATE, DB), make_entry(DB))
        assert set(backend.commit().entries) == {WEB, DB}


def test_compaction_that_dies_before_removing_the_journal_is_replayed_harmlessly(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = LocalBackend(path)
    run_creates(backend, WEB)
    with backend.lock("apply"):
        doc = backend.begin()
        journal = backend.journal()
        journal.removed(journal.intent(JournalOp.DELETE, WEB), WEB)
        journal.result(journal.intent(JournalOp.CREATE, DB), make_entry(DB))

        def die(p: Path, stats: object) -> bool:
            raise OSError(errno.EIO, "killed")

        monkeypatch.setattr(local_module, "remove_durably", die)
        with pytest.raises(StateError, match="cannot remove journal"):
            backend.commit()
    monkeypatch.undo()
    assert on_disk(path)["serial"] == 2
    assert Path(f"{path}.journal").exists()
    with backend.lock("apply"):
        again = backend.begin()
    assert set(again.entries) == {DB}
    assert again.serial == 3
    assert again.lineage == doc.lineage


def test_state_rm_style_write_supersedes_a_leftover_journal(path: Path) -> None:
    backend = LocalBackend(path)
    run_creates(backend, WEB, DB, commit=False)
    with backend.lock("state rm"):
        doc = backend.read()
        del doc.entries[WEB]
        backend.write(doc)
    assert not Path(f"{path}.journal").exists()
    assert set(backend.read().entries) == {DB}


def test_write_refuses_to_drop_uncommitted_records(path: Path) -> None:
    backend = LocalBackend(path)
    with backend.lock("apply"):
        doc = backend.begin()
        backend.journal().intent(JournalOp.CREATE, WEB)
        with pytest.raises(StateError, match="commit it"):
            backend.write(doc)


def test_pending_generate_keeps_the_key_in_the_state(path: Path) -> None:
    backend = LocalBackend(path)
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        intent = journal.intent(JournalOp.GENERATE, WEB)
        journal.keygen(intent, WEB, SECRET, "ssh-rsa AAAA")
    with backend.lock("apply"):
        pending = backend.begin().pending[WEB]
    assert pending == OpenIntent(
        WEB, intent, pending.started_at, JournalOp.GENERATE, SECRET, "ssh-rsa AAAA"
    )
    assert "privateKey" in on_disk(path)["pending"][0]


def test_counts_cover_state_writes_and_journal_appends(path: Path) -> None:
    backend = LocalBackend(path)
    n = 20
    run_creates(backend, *(Address("us-east-1", f"k{i}") for i in range(n)))
    journal_appends = 2 * n
    # one fsync per append, plus the journal's and the state's own
    assert journal_appends < backend.fsync_count <= journal_appends + 6
    assert backend.bytes_written > path.stat().st_size
    assert on_disk(path)["serial"] == 1  # one state write for the whole run


def test_private_keys_never_reach_the_logs(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    backend = LocalBackend(path)
    run_creates(backend, WEB, commit=False)
    backend.read()
    run_creates(backend, DB)
    with open(f"{path}.journal", "xb") as f:
        f.write(json.dumps({"kind": "keygen", "privateKey": SECRET}).encode()[:-10])
    os.chmod(f"{path}.journal", 0o600)
    backend.read()
    assert caplog.records
    assert "TOPSECRET" not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
