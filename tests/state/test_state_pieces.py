"""A state file read in pieces gives the document ``loads`` gives, or is read whole."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.model import Address, StateEntry
from reconciler.state import FORMAT_VERSION, StateDocument
from reconciler.state import document as state_document
from reconciler.state.document import dumps, load_file, loads
from reconciler.state.local import LocalBackend

PEM = "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"


def sample(count: int = 40) -> bytes:
    entries = {}
    for i in range(count):
        address = Address("us-east-1" if i % 2 else "eu-west-1", f"kp-{i:03d}")
        entries[address] = StateEntry(
            address,
            "created",
            f"arn:aws:lightsail:x:1:KeyPair/{i}",
            f"aa:{i:02x}",
            1700000000.5 + i,
            {"team": "platform", "n": str(i), "none": None},
            public_key_base64="c3NoLXJzYQ==",
            private_key=PEM if i % 3 else None,
            private_key_ref=None if i % 3 else {"store": "ssm:/p/{region}/{name}", "version": "1"},
            support_code=f"1/{i}",
            location={"regionName": address.region},
            operation={"id": str(i), "status": "Succeeded"},
        )
    doc = StateDocument(FORMAT_VERSION, "lineage-1", 12345, entries, keys={"store": "state"})
    return dumps(doc)


@pytest.mark.parametrize("piece", [1, 7, 64, 1 << 20])
@pytest.mark.parametrize("secrets", [True, False])
def test_pieces_give_the_document_loads_gives(
    monkeypatch: pytest.MonkeyPatch, piece: int, secrets: bool
) -> None:
    monkeypatch.setattr(state_document, "_PIECE", piece)
    data = sample()
    whole = loads(data, source="s", secrets=secrets)
    read = load_file(io.BytesIO(data), source="s", secrets=secrets)
    assert read == whole and read is not None
    assert read.redacted is (not secrets)
    # Compact JSON, keys in another order: the same.
    compact = json.dumps(dict(reversed(json.loads(data).items())), separators=(",", ":"))
    again = load_file(io.BytesIO(compact.encode()), source="s", secrets=secrets)
    assert again == whole
    if not secrets:  # plans never hold a private key, nor the records they never read
        assert all(e.private_key is None and e.operation is None for e in read.entries.values())


@pytest.mark.parametrize(
    "text",
    [
        '{"version": 3, "lineage": "l", "serial": 1} trailing',
        '{"version": 3, "lineage": "l", "serial": 1, "keyPairs": [{"region": 1},]}',
        '[{"version": 3}]',
        '{"version": 3, "lineage": "l", "serial": 1e3}',
        '{"version": 3, "lineage": "l"',
        '{"version": 3, "lineage": "\xff"}',
    ],
)
def test_a_file_the_pieces_do_not_follow_gets_the_whole_file_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    monkeypatch.setattr(state_document, "_PIECE", 3)
    path = tmp_path / "state.json"
    path.write_bytes(text.encode("latin-1"))
    path.chmod(0o600)
    with pytest.raises(StateError) as whole:
        loads(path.read_bytes(), source=str(path), backup=str(path) + ".backup")
    with pytest.raises(StateError) as read:
        LocalBackend(path).read(secrets=False)
    assert read.value.message == whole.value.message
