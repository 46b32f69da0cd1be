"""Adoption: taking a key pair that exists in Lightsail into the state, as one ``Change``.

The key pair is recorded with origin ``adopted`` and no private key (Lightsail
never gives it out again); a key pair whose key was generated here by an
interrupted run keeps that key (origin ``generated``). Both `import
REGION/NAME` and `import --all` adopt through ``adoption``.
"""

from __future__ import annotations

from reconciler.model import JournalOp, LiveKeyPair, OpenIntent, Tags
from reconciler.planning.changes import Action, Change, Facts, Reason


def adoption(
    live: LiveKeyPair,
    *,
    import_all: bool = False,
    tags: Tags | None = None,
    recovered: OpenIntent | None = None,
) -> Change:
    """The change that adopts ``live``, asked by `import` (or `import --all`), its tags then
    brought to ``tags`` when given; ``recovered`` is the open intent of a key generated here."""
    return Change(
        Action.ADOPT,
        live.address,
        Reason.IMPORT_REQUESTED,
        Facts(import_all=import_all),
        before_tags=live.tags,
        after_tags=live.tags if tags is None else tags,
        live=live,
        recovered=recovered,
    )


def recoverable(waiting: OpenIntent | None) -> OpenIntent | None:
    """``waiting`` if it is a key generated here by an interrupted run: adopting keeps it."""
    return waiting if waiting is not None and waiting.operation is JournalOp.GENERATE else None
