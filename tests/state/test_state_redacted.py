"""Plans and drift read the state without private keys; such a copy is never written."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.model import Address
from reconciler.state import LocalBackend
from tests.state.test_state_document import SECRET, make_entry

WEB = Address("us-east-1", "web")


def test_a_read_without_secrets_holds_no_key_and_cannot_be_written(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "reconciler.state.json")
    with backend.lock("apply"):
        doc = backend.begin()
        doc.entries[WEB] = make_entry(WEB)
        backend.write(doc)

    redacted = backend.read(secrets=False)
    entry = redacted.entries[WEB]
    assert entry.private_key is None and entry.private_key_sealed is None
    assert (entry.arn, entry.fingerprint) == (doc.entries[WEB].arn, doc.entries[WEB].fingerprint)
    assert redacted.redacted and not backend.read().redacted
    assert backend.read().entries[WEB].private_key == SECRET

    with backend.lock("apply"), pytest.raises(StateError, match="without private keys"):
        backend.write(redacted)
    assert backend.read().entries[WEB].private_key == SECRET  # untouched
