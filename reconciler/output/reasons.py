"""Why a change is planned, in words: the one place a ``Reason`` and its ``Facts`` become text.

The planner returns codes and facts only; every renderer (text, markdown, JSON's
``reason``, saved plans' digest) and drift's pending findings word them here, so
a reason reads the same wherever it is shown. ``words`` is a switch over the
closed set ``Reason`` ending in ``assert_never``: a new reason is named by mypy
here until it has its words.
"""

from __future__ import annotations

from typing import assert_never

from reconciler.planning.changes import Cause, Change, Facts, Reason
from reconciler.planning.rotation import describe_age

REPLACED_OUTSIDE = (
    "; its key material was replaced outside the tool, so Lightsail will refuse "
    "to delete it (expectedFingerprint)"
)


def why(change: Change) -> str:
    """The sentence shown beside ``change`` (a plan's ``why:``, the JSON plan's ``reason``)."""
    return words(change.code, change.facts)


def cause(found: Cause) -> str:
    """``found`` in words (drift's pending findings word a replace reason with it)."""
    return words(found.code, found.facts)


def words(code: Reason, facts: Facts) -> str:
    """``code`` and its ``facts`` as one sentence for people."""
    text = _words(code, facts)
    return text + REPLACED_OUTSIDE if facts.replaced_outside else text


def _words(code: Reason, facts: Facts) -> str:
    match code:
        case Reason.DECLARED:
            return "declared in the manifests"
        case Reason.DELETED_OUTSIDE:
            return "in state but deleted outside the tool; creating it again"
        case Reason.ADOPT_REQUESTED:
            return "adopt: true in the manifest"
        case Reason.IMPORT_REQUESTED:
            return "reconciler import --all" if facts.import_all else "reconciler import"
        case Reason.RECOVER_GENERATED:
            return "recovering a locally generated key from an interrupted run"
        case Reason.REPLACE_REQUESTED:
            return "replace requested"
        case Reason.REPLACE_LOST_KEY:
            return "replacing a key pair whose key was lost"
        case Reason.FINGERPRINT_CHANGED:
            return "the live fingerprint differs from state: key material was replaced outside"
        case Reason.ORIGIN_CHANGED:
            return _origin_changed(facts)
        case Reason.PUBLIC_KEY_CHANGED:
            return "the public key changed"
        case Reason.TAGS_DIFFER:
            return "tags differ"
        case Reason.REMOVED_FROM_MANIFESTS:
            return "removed from the manifests"
        case Reason.GONE_LIVE:
            return "gone live; forget it"
        case Reason.DESTROY:
            return "destroy"
        case Reason.ROTATION_DUE:
            return _rotation_due(facts)
        case Reason.ROTATE_REQUESTED:
            return "rotation requested (--rotate)"
        case _:
            assert_never(code)


def _origin_changed(facts: Facts) -> str:
    if facts.wanted is None or facts.recorded is None:
        return "the manifest now asks for another kind of key pair"
    article = "an" if facts.wanted[0] in "aeiou" else "a"
    return f"the manifest now asks for {article} {facts.wanted} key pair (was {facts.recorded})"


def _rotation_due(facts: Facts) -> str:
    if facts.age is None or facts.after is None:
        return "rotation due"
    return f"created {describe_age(facts.age)} ago; rotate after {describe_age(facts.after)}"
