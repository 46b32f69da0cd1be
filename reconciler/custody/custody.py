"""Custody of private keys: the one layer that decides where a key goes and reads it back.

``Custody`` is made once per command from the store setting (``keys:`` in
reconciler.yaml, ``--key-store``, else what the state records) and hands out:

- ``keep``: the executor's hand-off once a created key is in the journal;
- ``settle``: finishing, on the next run, a store write that failed or was cut off;
- ``read``: ``key get`` through whichever store holds the key;
- ``check``: metadata-only checks of stored keys for ``plan`` and ``drift``;
- ``migrate``: ``state migrate-keys``, each key read back before its source copy goes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum

from reconciler.custody.base import (
    KeyMetadata,
    KeyStore,
    KeyStoreConflict,
    KeyStoreError,
    KeyStoreUnavailable,
    held_in_state,
    key_fingerprint,
)
from reconciler.custody.bulk import BulkDescribe
from reconciler.custody.registry import STATE, StoreContext, open_store
from reconciler.custody.state_store import StateKeyStore
from reconciler.errors import ReconcilerError
from reconciler.model import Address, StateEntry
from reconciler.state.document import StateDocument

log = logging.getLogger(__name__)

SETTING_STORE = "store"
SETTING_KMS_KEY_ID = "kmsKeyId"
SETTING_FROM = "migratingFrom"


@dataclass(frozen=True, slots=True)
class KeySetting:
    """Which store new keys go to."""

    spec: str = STATE
    kms_key_id: str | None = None
    # Seconds to wait for the store (reconciler.yaml only; not recorded in the state).
    timeout: float | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> KeySetting:
        return cls(data.get(SETTING_STORE) or STATE, data.get(SETTING_KMS_KEY_ID))

    def to_json(self) -> dict[str, str]:
        data = {SETTING_STORE: self.spec}
        if self.kms_key_id:
            data[SETTING_KMS_KEY_ID] = self.kms_key_id
        return data


class KeyProblemKind(StrEnum):
    MISSING = "key-missing"
    FINGERPRINT = "key-fingerprint-changed"


@dataclass(frozen=True, slots=True)
class KeyProblem:
    kind: KeyProblemKind
    address: Address
    detail: str
    expected: str | None = None
    actual: str | None = None


class Custody:
    def __init__(self, setting: KeySetting, context: StoreContext, *, lineage: str) -> None:
        self.setting = setting
        self.context = context
        self.lineage = lineage
        self.state_store = StateKeyStore(seal=context.seal, unseal=context.unseal)
        self.target = open_store(setting.spec, context, setting.kms_key_id)
        self._stores: dict[str, KeyStore] = {self.target.spec: self.target}
        self._lock = threading.Lock()
        self.unavailable: KeyStoreUnavailable | None = None
        """The first failure of the store itself (not about one key): reported once."""
        self.held: list[Address] = []
        """Keys kept in the state because the store failed; the next apply stores them."""
        self.refused: list[KeyStoreError] = []
        """Keys the store refused one by one (a different key already there)."""
        self.left: list[Address] = []
        """Key pairs deleted whose stored key could not be dropped from the store."""

    @property
    def remote(self) -> bool:
        """New keys leave the state (go to SSM or Secrets Manager)."""
        return self.target.scheme != STATE

    def store_of(self, entry: StateEntry) -> KeyStore | None:
        """The store holding ``entry``'s private key; None when none is kept."""
        ref = entry.private_key_ref
        if ref is not None:
            spec = ref.get("store", "")
            if spec not in self._stores:
                self._stores[spec] = open_store(spec, self.context)
            return self._stores[spec]
        return self.state_store if entry.holds_private_key else None

    # -- apply ----------------------------------------------------------------

    def keep(self, entry: StateEntry) -> StateEntry:
        """``entry`` (its key in clear or sealed, already journaled) as the state records it.

        With a remote store the key is written there and the entry keeps a
        reference; with the state store the entry is returned as it is. Earlier
        keys it carries that the state still holds (a rotation of a key whose
        store write had failed) are stored first, beside it. Once the store
        itself fails (retries spent, unreachable, denied), this and every later
        key of the run stay in the state, as journaled, without another call:
        the failure is reported once (``report``) and the next apply stores them.
        """
        if not self.remote or not held_in_state(entry):
            return entry
        if self.unavailable is not None:
            self._hold(entry.address)
            return entry
        try:
            return self._put(entry)
        except KeyStoreUnavailable as e:
            self._down(e)
            self._hold(entry.address)
            return entry

    def _hold(self, address: Address) -> None:
        with self._lock:
            self.held.append(address)

    def _down(self, error: KeyStoreUnavailable) -> None:
        with self._lock:
            if self.unavailable is None:
                log.debug("key store failing: %s", error.message)
                self.unavailable = error

    def _put(self, entry: StateEntry) -> StateEntry:
        entry = self._settle_generations(entry)
        if not entry.holds_private_key:
            return entry
        try:
            pem = self.state_store.get(entry)
        except ReconcilerError as e:  # a sealed key that cannot be opened here
            raise KeyStoreError(e.message, hint=e.hint) from None
        if pem is None:
            raise KeyStoreError(
                f"{entry.address}: its sealed private key cannot be opened to store it in "
                f"{self.target.spec}",
                hint="pass --age-identity FILE; the key stays sealed in the state until then",
            )
        try:
            return self.target.put(entry, pem, lineage=self.lineage)
        except KeyStoreConflict:
            if not self._held_by_generation(entry):
                raise
        # A rotated key pair: its earlier key keeps the plain location, so the new
        # key goes beside it, under a name its fingerprint makes unique.
        return self.target.put(entry, pem, lineage=self.lineage, suffix=generation_suffix(entry))

    def _held_by_generation(self, entry: StateEntry) -> bool:
        """Whether one of ``entry``'s own earlier keys holds its plain location."""
        meta = self.target.describe(entry)
        held = {
            g.entry.private_key_ref.get("location")
            for g in entry.generations
            if g.entry.private_key_ref is not None
        }
        return meta is not None and meta.location in held

    def settle(self, doc: StateDocument) -> list[Address]:
        """Store keys a failed or interrupted run left in the state; the address of each
        key moved (a key pair's once per key: its own, each generation's).

        Each key is read back and compared before the state drops it: a key pair's
        earlier keys (generations) first, then its own key, as ``keep`` places them.
        A key the store refuses (another key already there) or cannot take now
        stays in the state; the failure is reported once by ``report``, and the
        run goes on.
        """
        if not self.remote:
            return []
        moved: list[Address] = []
        for address in sorted(doc.entries):
            entry = doc.entries[address]
            if not held_in_state(entry):
                continue
            if self.unavailable is not None:
                self._hold(address)
                continue
            try:
                doc.entries[address] = self._settle_entry(entry)
            except KeyStoreUnavailable as e:
                self._down(e)
                self._hold(address)
                continue
            except KeyStoreError as e:
                with self._lock:
                    self.refused.append(e)
                continue
            keys = (entry, *(g.entry for g in entry.generations))
            moved.extend(address for key in keys if key.holds_private_key)
        return moved

    def _settle_entry(self, entry: StateEntry) -> StateEntry:
        entry = self._settle_generations(entry)
        if not entry.holds_private_key:
            return entry
        try:
            return self.move(entry, self.target)
        except KeyStoreConflict:
            if not self._held_by_generation(entry):
                raise
        # A rotated key pair: its earlier key holds the plain location (see ``keep``).
        return self.move(entry, self.target, suffix=generation_suffix(entry))

    def _settle_generations(self, entry: StateEntry) -> StateEntry:
        """``entry`` with each earlier key the state holds stored in the target, read back.

        A generation goes where a copy of it already is (its key pair's plain
        location, when it was stored there as the current key before a rotation),
        else beside the plain location, under its fingerprint.
        """
        kept = list(entry.generations)
        for index, generation in enumerate(kept):
            key = generation.entry
            if not key.holds_private_key:
                continue
            meta = self.target.describe(_bare(key))
            plain = meta is not None and meta.fingerprint == self._fingerprint_of(key)
            suffix = "" if plain else generation_suffix(key)
            kept[index] = replace(generation, entry=self.move(key, self.target, suffix=suffix))
        return replace(entry, generations=tuple(kept))

    def _fingerprint_of(self, key: StateEntry) -> str | None:
        """The fingerprint of the key the state holds for ``key`` (None if sealed shut)."""
        pem = self.state_store.get(key)
        return None if pem is None else key_fingerprint(pem, key.origin)

    def forget(self, entry: StateEntry) -> None:
        """Drop the stored key of a key pair that was deleted (a remote store only).

        A store that fails leaves the key there; it is named by ``report``.
        """
        if entry.private_key_ref is None:
            return
        store = self.store_of(entry)
        if store is None:
            return
        if self.unavailable is None:
            try:
                store.delete(entry)
                return
            except KeyStoreUnavailable as e:
                self._down(e)
        with self._lock:
            self.left.append(entry.address)

    def summary(self, location: str) -> str:
        """What the store could not do this run, in lines to show once; empty if nothing."""
        lines: list[str] = []
        if self.unavailable is not None:
            error = self.unavailable
            lines.append(f"Error: {self.target.spec}: {error.message}")
            if self.held:
                count = len(self.held)
                lines.append(
                    f"  -> {count} private key{'s are' if count != 1 else ' is'} kept in the "
                    f"state ({location}) meanwhile ({_names(self.held)}); the next apply moves "
                    f"{'them' if count != 1 else 'it'} to {self.target.spec}"
                    + (f"; {error.hint}" if error.hint else "")
                )
            elif error.hint:
                lines.append(f"  -> {error.hint}")
        for refused in self.refused:
            lines.append(f"Error: {refused.message}")
            if refused.hint:
                lines.append(f"  -> {refused.hint}")
        if self.left:
            lines.append(
                f"Error: the stored keys of {len(self.left)} deleted key pair(s) are left in "
                f"{self.target.spec} ({_names(self.left)})"
            )
            lines.append("  -> delete them there once it answers; the key pairs are gone")
        return "".join(f"{line}\n" for line in lines)

    # -- reads ----------------------------------------------------------------

    def read(self, entry: StateEntry) -> str | None:
        """The private key of ``entry``, through its store, checked against its fingerprint."""
        store = self.store_of(entry)
        if store is None:
            return None
        pem = store.get(entry)
        ref = entry.private_key_ref
        if (
            pem is not None
            and ref is not None
            and ref.get("fingerprint")
            and key_fingerprint(pem, entry.origin) != ref["fingerprint"]
        ):
            raise KeyStoreError(
                f"{entry.address}: the key in {ref.get('location')} does not match the "
                "fingerprint the state recorded",
                hint="it was replaced outside the tool; `reconciler drift` reports it",
            )
        return pem

    def check(self, entries: Iterable[StateEntry], *, parallelism: int = 8) -> list[KeyProblem]:
        """Stored keys that are missing or labelled with another fingerprint.

        Metadata only (DescribeParameters, ListTagsForResource, ListSecrets,
        DescribeSecret): no secret value is read. Keys held in the state are not
        checked here. The earlier keys a rotation kept (generations) are checked
        like current ones. Stores that describe keys in bulk are asked in pages,
        so the calls grow with the keys divided by a page, not with the keys.
        """
        kept = (k for e in entries for k in (e, *(g.entry for g in e.generations)))
        stored = [k for k in kept if k.private_key_ref is not None]
        if not stored:
            return []
        # Positions in ``stored`` by store: a key pair and its generations share an address.
        groups: dict[str, list[int]] = {}
        for index, entry in enumerate(stored):
            store = self.store_of(entry)
            assert store is not None
            groups.setdefault(store.spec, []).append(index)
        found: list[KeyMetadata | None] = [None] * len(stored)
        single: list[int] = []
        for spec, indexes in groups.items():
            store = self._stores[spec]
            if isinstance(store, BulkDescribe):
                group = [stored[i] for i in indexes]
                described = store.describe_many(group, parallelism=parallelism)
                for i, meta in zip(indexes, described, strict=True):
                    found[i] = meta
            else:
                single.extend(indexes)
        if single:
            with ThreadPoolExecutor(max_workers=min(parallelism, len(single))) as pool:
                metas = pool.map(lambda i: self._stores_describe(stored[i]), single)
                for i, meta in zip(single, metas, strict=True):
                    found[i] = meta
        problems = (self._problem(entry, meta) for entry, meta in zip(stored, found, strict=True))
        return [problem for problem in problems if problem is not None]

    def _stores_describe(self, entry: StateEntry) -> KeyMetadata | None:
        store = self.store_of(entry)
        assert store is not None
        return store.describe(entry)

    def _problem(self, entry: StateEntry, meta: KeyMetadata | None) -> KeyProblem | None:
        ref = entry.private_key_ref
        assert ref is not None
        location = ref.get("location", "")
        if meta is None:
            return KeyProblem(
                KeyProblemKind.MISSING,
                entry.address,
                f"its private key is missing from {location}",
            )
        expected = ref.get("fingerprint")
        if expected and meta.fingerprint != expected:
            return KeyProblem(
                KeyProblemKind.FINGERPRINT,
                entry.address,
                f"the key in {location} is labelled with another fingerprint",
                expected,
                meta.fingerprint,
            )
        return None

    # -- moving keys ------------------------------------------------------------

    def move(self, entry: StateEntry, target: KeyStore, *, suffix: str = "") -> StateEntry:
        """``entry`` with its key in ``target``, read back and compared; the source copy
        is not dropped here (a state source is, by the entry returned)."""
        source = self.store_of(entry)
        if source is None:
            return entry
        pem = source.get(entry)
        if pem is None:
            raise KeyStoreError(
                f"{entry.address}: its private key cannot be read from {source.spec}",
                hint="pass --age-identity FILE if it is sealed with age",
            )
        fingerprint = key_fingerprint(pem, entry.origin)
        ref = entry.private_key_ref
        if ref is not None and ref.get("fingerprint") and ref["fingerprint"] != fingerprint:
            raise KeyStoreError(
                f"{entry.address}: the key in {ref.get('location')} does not match the "
                "fingerprint the state recorded; not moved",
            )
        bare = replace(entry, private_key=None, private_key_sealed=None, private_key_ref=None)
        moved = target.put(bare, pem, lineage=self.lineage, suffix=suffix)
        back = self.state_store.get(moved) if target.scheme == STATE else target.get(moved)
        if back is None or key_fingerprint(back, entry.origin) != fingerprint:
            raise KeyStoreError(
                f"{entry.address}: the key read back from {target.spec} differs from the one "
                "written; the source copy is kept",
            )
        return moved

    def migrate(
        self,
        doc: StateDocument,
        target_setting: KeySetting,
        write: Callable[[StateDocument], None],
        progress: Callable[[Address], None] | None = None,
    ) -> int:
        """Move every key to ``target_setting``'s store; the number moved.

        Per key: read from its store, write to the target, read back, compare
        fingerprints, record the new place in the state (``write``), then drop
        the source copy. The setting is recorded first, with the store keys
        come from, so a run cut short is finished (and its leftovers dropped)
        by the next one.
        """
        target = open_store(target_setting.spec, self.context, target_setting.kms_key_id)
        previous = doc.keys.get(SETTING_FROM) or KeySetting.from_json(doc.keys).spec
        setting = target_setting.to_json()
        if previous != target.spec:
            setting[SETTING_FROM] = previous
        if doc.keys != setting:
            doc.keys = setting
            write(doc)
        moved = 0
        for address in sorted(doc.entries):
            moved += self._migrate_generations(doc, address, target, write, previous)
            entry = doc.entries[address]
            source = self.store_of(entry)
            if source is None:
                continue
            if source.spec == target.spec:
                self._drop_leftover(entry, previous, target)
                continue
            new = self.move(entry, target)
            doc.entries[address] = new
            write(doc)
            if source.scheme != STATE:
                source.delete(entry)
            moved += 1
            if progress is not None:
                progress(address)
        if SETTING_FROM in doc.keys:
            doc.keys = target_setting.to_json()
            write(doc)
        return moved

    def _migrate_generations(
        self,
        doc: StateDocument,
        address: Address,
        target: KeyStore,
        write: Callable[[StateDocument], None],
        previous: str,
    ) -> int:
        """Move the earlier keys a rotation kept for ``address``, each beside the current
        key (its location suffixed with its fingerprint); the number moved. A copy an
        interrupted run left in the store they came from is dropped, as for current keys."""
        moved = 0
        for index, generation in enumerate(doc.entries[address].generations):
            source = self.store_of(generation.entry)
            if source is None:
                continue
            if source.spec == target.spec:
                self._drop_leftover(generation.entry, previous, target)
                continue
            key = self.move(generation.entry, target, suffix=generation_suffix(generation.entry))
            entry = doc.entries[address]
            kept = list(entry.generations)
            kept[index] = replace(generation, entry=key)
            doc.entries[address] = replace(entry, generations=tuple(kept))
            write(doc)
            if source.scheme != STATE:
                source.delete(generation.entry)
            moved += 1
        return moved

    def _drop_leftover(self, entry: StateEntry, previous: str, target: KeyStore) -> None:
        """A copy of ``entry``'s key an interrupted migration left in the store it came
        from, if any: at the key pair's plain location, or beside it under the key's
        fingerprint (where generations, and keys rotated in, are kept). Only a copy
        labelled with this key's fingerprint is dropped, never the one the state uses."""
        if previous == target.spec or previous.split(":", 1)[0] == STATE:
            return
        if previous not in self._stores:
            self._stores[previous] = open_store(previous, self.context)
        old = self._stores[previous]
        ref = entry.private_key_ref
        expected = ref.get("fingerprint") if ref is not None else self._fingerprint_of(entry)
        if not expected:
            return
        for suffix in ("", generation_suffix(entry)):
            location = old.location(entry.address, suffix)
            where = replace(_bare(entry), private_key_ref={"store": old.spec, "location": location})
            meta = old.describe(where)
            if meta is None or meta.fingerprint != expected:
                continue
            if ref is not None and meta.location == ref.get("location"):
                continue
            log.info("%s: dropping the copy left in %s", entry.address, location)
            old.delete(where)


def _names(addresses: list[Address], shown: int = 5) -> str:
    names = [str(a) for a in sorted(addresses)]
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def _bare(entry: StateEntry) -> StateEntry:
    """``entry`` without its key or reference: where a store puts it by default."""
    return replace(entry, private_key=None, private_key_sealed=None, private_key_ref=None)


def generation_suffix(entry: StateEntry) -> str:
    """What a key's location gets beside its key pair's plain one: its fingerprint, shortened."""
    return "." + entry.fingerprint.replace(":", "")[:16]


def setting_for(
    flag: str | None, kms_key_id: str | None, configured: KeySetting | None, doc: StateDocument
) -> KeySetting:
    """``--key-store`` wins, then reconciler.yaml's ``keys:``, then what the state records."""
    if flag:
        return KeySetting(flag, kms_key_id)
    if configured is not None:
        return configured
    return KeySetting.from_json(doc.keys)
