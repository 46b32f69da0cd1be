"""A locally generated key is journaled sealed when encryption is on, and survives replay."""

from __future__ import annotations

from pathlib import Path

import pyrage

from reconciler.keys import generate_rsa
from reconciler.model import Address, JournalOp
from reconciler.state import Journal, StateDocument, read_journal, replay
from reconciler.state.crypto import EncryptionSpec, Sealer, Unsealer
from reconciler.state.document import dumps, loads

GEN = Address("us-east-1", "gen")


def test_sealed_keygen_record_replays_to_a_sealed_pending_generate(tmp_path: Path) -> None:
    identity = pyrage.x25519.Identity.generate()
    (tmp_path / "id.txt").write_text(str(identity))
    sealer = Sealer([EncryptionSpec("age", str(identity.to_public()))], kms_client_factory=print)
    key = generate_rsa()
    with Journal(tmp_path / "s.journal") as journal:
        intent = journal.intent(JournalOp.GENERATE, GEN)
        sealed = sealer.seal(GEN, key.private_pem)
        journal.keygen(intent, GEN, None, key.public_openssh, private_key_sealed=sealed)
    raw = (tmp_path / "s.journal").read_text()
    assert "PRIVATE KEY" not in raw and "privateKeySealed" in raw
    doc = replay(StateDocument.new(), read_journal(tmp_path / "s.journal"))
    pending = doc.pending[GEN]
    assert pending.private_key is None and pending.private_key_sealed == sealed
    again = loads(dumps(doc), source="s.json")
    assert again == doc
    unsealer = Unsealer(age_identities=[str(tmp_path / "id.txt")], kms_client_factory=None)
    assert unsealer.unseal(again.pending[GEN].private_key_sealed or {}, GEN) == key.private_pem
