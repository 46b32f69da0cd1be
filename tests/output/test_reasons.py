"""Every reason's words: the planner gives codes and facts, ``output.reasons`` the text.

The texts are the ones plans have always shown (users and tests read them), pinned
here for every ``Reason`` so a wording cannot drift unnoticed.
"""

from __future__ import annotations

import pytest

from reconciler.model import DAY, Address
from reconciler.output.reasons import cause, why, words
from reconciler.planning.changes import Action, Cause, Change, Facts, Reason

TEXTS = {
    Reason.DECLARED: "declared in the manifests",
    Reason.DELETED_OUTSIDE: "in state but deleted outside the tool; creating it again",
    Reason.ADOPT_REQUESTED: "adopt: true in the manifest",
    Reason.IMPORT_REQUESTED: "reconciler import",
    Reason.RECOVER_GENERATED: "recovering a locally generated key from an interrupted run",
    Reason.REPLACE_REQUESTED: "replace requested",
    Reason.REPLACE_LOST_KEY: "replacing a key pair whose key was lost",
    Reason.FINGERPRINT_CHANGED: (
        "the live fingerprint differs from state: key material was replaced outside"
    ),
    Reason.ORIGIN_CHANGED: "the manifest now asks for a generated key pair (was created)",
    Reason.PUBLIC_KEY_CHANGED: "the public key changed",
    Reason.TAGS_DIFFER: "tags differ",
    Reason.REMOVED_FROM_MANIFESTS: "removed from the manifests",
    Reason.GONE_LIVE: "gone live; forget it",
    Reason.DESTROY: "destroy",
    Reason.ROTATION_DUE: "created 97 days ago; rotate after 90 days",
    Reason.ROTATE_REQUESTED: "rotation requested (--rotate)",
}
FACTS = {
    Reason.ORIGIN_CHANGED: Facts(wanted="generated", recorded="created"),
    Reason.ROTATION_DUE: Facts(age=97.5 * DAY, after=90 * DAY),
}


def test_every_reason_has_words() -> None:
    assert set(TEXTS) == set(Reason)


@pytest.mark.parametrize("code", list(Reason))
def test_each_reason_reads_as_plans_always_showed_it(code: Reason) -> None:
    facts = FACTS.get(code, Facts())
    assert words(code, facts) == TEXTS[code]
    change = Change(Action.UPDATE_TAGS, Address("us-east-1", "kp"), code, facts)
    assert why(change) == cause(Cause(code, facts)) == TEXTS[code]


def test_facts_change_the_words_where_they_matter() -> None:
    imported = words(Reason.ORIGIN_CHANGED, Facts(wanted="imported", recorded="created"))
    assert imported == "the manifest now asks for an imported key pair (was created)"
    assert words(Reason.IMPORT_REQUESTED, Facts(import_all=True)) == "reconciler import --all"
    assert words(Reason.DESTROY, Facts(replaced_outside=True)) == (
        "destroy; its key material was replaced outside the tool, so Lightsail will refuse "
        "to delete it (expectedFingerprint)"
    )
    hours = words(Reason.ROTATION_DUE, Facts(age=36 * 3600.0, after=DAY))
    assert hours == "created 36 hours ago; rotate after 1 day"
