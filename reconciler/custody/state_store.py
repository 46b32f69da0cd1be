"""The state as a key store: the private key in the state entry, in clear or sealed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from reconciler.custody.base import KeyMetadata, key_fingerprint
from reconciler.model import Address, StateEntry

Seal = Callable[[Address, str], Mapping[str, Any]]
Unseal = Callable[[Mapping[str, Any], Address], str]


class StateKeyStore:
    """Keys kept in the state itself (sealed when the state's sealing is on)."""

    scheme = "state"

    def __init__(self, *, seal: Seal | None = None, unseal: Unseal | None = None) -> None:
        self.spec = "state"
        self._seal = seal
        self._unseal = unseal

    def put(self, entry: StateEntry, pem: str, *, lineage: str, suffix: str = "") -> StateEntry:
        if self._seal is not None:
            sealed = self._seal(entry.address, pem)
            return replace(entry, private_key=None, private_key_sealed=sealed, private_key_ref=None)
        return replace(entry, private_key=pem, private_key_sealed=None, private_key_ref=None)

    def get(self, entry: StateEntry) -> str | None:
        if entry.private_key is not None:
            return entry.private_key
        if entry.private_key_sealed is not None:
            if self._unseal is None:
                return None
            return self._unseal(entry.private_key_sealed, entry.address)
        return None

    def describe(self, entry: StateEntry) -> KeyMetadata | None:
        if entry.private_key is not None:
            fingerprint = key_fingerprint(entry.private_key, entry.origin)
            return KeyMetadata("state", "", fingerprint, {})
        if entry.private_key_sealed is not None:
            # Sealed: its fingerprint cannot be read without opening it.
            return KeyMetadata("state", "", None, {})
        return None

    def delete(self, entry: StateEntry) -> StateEntry:
        return replace(entry, private_key=None, private_key_sealed=None)

    def location(self, address: Address, suffix: str = "") -> str:
        return ""
