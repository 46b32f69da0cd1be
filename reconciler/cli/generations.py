"""What the commands show of generations and instances: ``key get --generation``,
``state show`` and ``state list``.

Generation 0 is a key pair's current key, 1 the one before it, and so on.
Nothing here prints a private key unless asked to (``--reveal``, ``key get``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from typing import Any

from reconciler.errors import ReconcilerError, StateError, UsageError
from reconciler.model import Address, StateEntry
from reconciler.output.terminal import TERMINAL
from reconciler.state import StateDocument

log = logging.getLogger(__name__)

SENSITIVE = "(sensitive: add --reveal, or use `reconciler key get --generation N`)"


def pick(entry: StateEntry, generation: int) -> StateEntry:
    """``entry`` itself (generation 0) or the earlier key ``generation`` steps back."""
    if generation < 0:
        raise UsageError(f"--generation {generation}: must be 0 (current) or more")
    if generation == 0:
        return entry
    if generation > len(entry.generations):
        kept = len(entry.generations)
        raise StateError(
            f"{entry.address} keeps {kept} earlier key{'s' if kept != 1 else ''}; "
            f"there is no generation {generation}",
            hint=f"`reconciler state show {entry.address}` lists the generations kept",
        )
    return entry.generations[generation - 1].entry


def redact(data: dict[str, Any], *, reveal: bool) -> None:
    """``state show``'s JSON: each generation numbered, its private key hidden unless revealed."""
    for number, item in enumerate(data.get("generations", ()), 1):
        item["generation"] = number
        if reveal:
            continue
        if item.pop("privateKeySealed", None) is not None or "privateKey" in item:
            item["privateKey"] = SENSITIVE


def instance_counts(doc: StateDocument, options: Any) -> Mapping[Address, int] | None:
    """How many instances name each key pair in the state's regions; None if unreadable."""
    from reconciler.cli import workflow

    regions = sorted({a.where for a in doc.entries})
    if not regions:
        return {}
    try:
        with workflow.lightsail_for(options) as lightsail:
            instances = lightsail.instances(regions)
    except ReconcilerError as e:
        TERMINAL.warning(f"instances not counted: {e.message}")
        return None
    return Counter(i.key_pair for i in instances if i.key_pair is not None)


def entry_of(doc: StateDocument, text: str) -> StateEntry:
    """The state's entry for the address ``text``; a StateError naming it if there is none."""
    address = Address.parse(text)
    entry = doc.entries.get(address)
    if entry is None:
        raise StateError(
            f"{address} is not in the state", hint="`reconciler state list` shows what is"
        )
    return entry


def private_key(entry: StateEntry, options: Any, doc: StateDocument) -> str | None:
    """The private key of ``entry``: in the state, or read through its key store."""
    from reconciler.cli import custody as key_commands

    if entry.private_key is not None:
        return entry.private_key
    if entry.has_private_key:
        return key_commands.custody_for(options, doc).read(entry)
    return None
