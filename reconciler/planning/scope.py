"""Scoped runs: `--target ADDRESS` and `--exclude ADDRESS`, globs allowed.

A ``Scope`` says which key pairs a run may look at. The planner is not told
about it: the scope narrows the planner's inputs (desired, state, pending,
live), and ``plan_in_scope`` compares the narrowed plan with the full one so the
plan can say which pending changes it left out. Patterns are matched against
the whole address (``REGION/NAME``, or ``ACCOUNT/REGION/NAME`` with several
accounts) with shell-style globs; a ``REGION/NAME`` pattern matches that
region and name in every account.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from reconciler.errors import UsageError
from reconciler.model import Address, DesiredSet, LiveSnapshot
from reconciler.planning.planner import Plan

if TYPE_CHECKING:
    from reconciler.state import StateDocument

log = logging.getLogger(__name__)

V = TypeVar("V")


def _pattern(text: str, flag: str) -> str:
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(
            f"{flag} {text!r} is not a key pair address",
            hint=f"write it as REGION/NAME (ACCOUNT/REGION/NAME with several accounts), "
            f"globs allowed: {flag} 'us-east-1/web-*'",
        )
    return text


@dataclass(frozen=True, slots=True)
class Scope:
    """The key pairs a run covers: any target (all when none), minus any exclude."""

    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @classmethod
    def parse(cls, targets: Iterable[str], excludes: Iterable[str]) -> Scope:
        return cls(
            tuple(_pattern(t, "--target") for t in targets),
            tuple(_pattern(e, "--exclude") for e in excludes),
        )

    def __bool__(self) -> bool:
        return bool(self.targets or self.excludes)

    def covers(self, address: Address) -> bool:
        if self.targets and not any(_matches(address, t) for t in self.targets):
            return False
        return not any(_matches(address, e) for e in self.excludes)

    def only(self, items: Mapping[Address, V]) -> dict[Address, V]:
        """The items whose address the scope covers."""
        return {address: value for address, value in items.items() if self.covers(address)}

    def desired(self, desired: DesiredSet) -> DesiredSet:
        return DesiredSet(self.only(desired.key_pairs), desired.files)

    def live(self, live: LiveSnapshot) -> LiveSnapshot:
        return replace(live, key_pairs=self.only(live.key_pairs))

    def unmatched(self, addresses: Iterable[Address]) -> list[str]:
        """Targets that match none of ``addresses`` (probably a typo)."""
        listed = list(addresses)
        return [t for t in self.targets if not any(_matches(a, t) for a in listed)]


def _matches(address: Address, pattern: str) -> bool:
    """Whether ``pattern`` names ``address``; a REGION/NAME pattern matches in every account."""
    if pattern.count("/") == 2:
        return fnmatch.fnmatchcase(str(address), pattern)
    return fnmatch.fnmatchcase(f"{address.region}/{address.name}", pattern)


MakePlan = Callable[[DesiredSet, "StateDocument", LiveSnapshot], Plan]


def plan_in_scope(
    scope: Scope, make: MakePlan, desired: DesiredSet, doc: StateDocument, live: LiveSnapshot
) -> Plan:
    """The plan for the key pairs ``scope`` covers, naming the pending ones it left out.

    Made twice by ``make`` (the unscoped planner): once over everything (to
    know what is left out), once over the narrowed inputs. The plan keeps the
    digest of everything seen live, so a saved scoped plan goes stale when
    anything moves, in scope or not.
    """
    full = make(desired, doc, live)
    known = {*desired.key_pairs, *doc.entries, *doc.pending, *live.key_pairs}
    for target in scope.unmatched(known):
        log.warning("--target %s matches no key pair in the manifests, state or Lightsail", target)
    narrowed = doc.copy()
    narrowed.entries = scope.only(doc.entries)
    narrowed.pending = scope.only(doc.pending)
    inside = make(scope.desired(desired), narrowed, scope.live(live))
    outside = {c.address for c in full.changes if not scope.covers(c.address)}
    outside.update(
        f.address for f in full.findings if f.address is not None and not scope.covers(f.address)
    )
    return replace(inside, left_out=tuple(sorted(outside)), live_digest=full.live_digest)
