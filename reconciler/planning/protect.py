"""preventDestroy recorded in the state, so it outlives the manifest entry.

An apply records each declared key pair's ``preventDestroy`` in its state
entry: a key pair the apply creates, adopts, replaces or rotates carries it in
the journal record that makes its key durable (``Change.protection``), and an
entry recorded before is brought in line (``recorded``) before any change is
made. A key pair later removed from the manifests is then still refused by
``--prune`` (the planner reads the recorded flag when no manifest declares
the key pair). ``reconciler state unprotect REGION/NAME`` is the one way to
drop a recorded protection without declaring the key pair again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from reconciler.model import Address, DesiredSet, StateEntry
from reconciler.planning.scope import Scope


def recorded(
    entries: Mapping[Address, StateEntry], desired: DesiredSet, scope: Scope
) -> dict[Address, StateEntry]:
    """Entries whose recorded protection differs from the manifests', brought in line.

    Only key pairs the manifests declare (and the run's scope covers) change:
    an entry no manifest declares keeps what was recorded.
    """
    out: dict[Address, StateEntry] = {}
    for address, want in desired.key_pairs.items():
        entry = entries.get(address)
        if entry is None or entry.prevent_destroy == want.prevent_destroy:
            continue
        if scope.covers(address):
            out[address] = dataclasses.replace(entry, prevent_destroy=want.prevent_destroy)
    return out


def unprotected(entry: StateEntry) -> StateEntry:
    return dataclasses.replace(entry, prevent_destroy=False)
