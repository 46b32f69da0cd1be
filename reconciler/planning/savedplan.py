"""Saved plans: `plan --out FILE`, then `apply FILE`.

A saved plan is bound to the world it saw: the state's lineage and serial, a
digest of the live snapshot, and where it was planned (the embedded endpoint,
an endpoint URL, the accounts). It stores the desired model it was made from
(public keys included, never a private key), the options that change what
apply does, a summary of every key pair it saw, and the plan itself.
`apply FILE` re-plans from that model under the lock, there, and refuses like
Terraform ("Saved plan is stale") unless the state, the live snapshot and the
resulting changes are identical, naming what moved.

The file carries a binding: a digest, keyed with the state's lineage, of
everything apply uses. A file edited in any of those bytes is refused before
any call. The binding catches edits and mix-ups; it is not a signature: whoever
can read the state can forge one, so keep saved plans where build artifacts
are kept safe.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.errors import StalePlanError, UsageError
from reconciler.model import (
    Address,
    DesiredKeyPair,
    DesiredSet,
    LiveSnapshot,
    Rotation,
    Source,
    StateEntry,
)
from reconciler.planning.changes import Change, Plan
from reconciler.planning.explain import explain
from reconciler.regular import open_regular
from reconciler.state import StateDocument
from reconciler.state.files import write_output

KIND = "reconciler.lightsail/saved-plan"
VERSION = 2
# What apply uses: every one is covered by the binding.
BOUND: tuple[str, ...] = ("state", "lineage", "serial", "liveDigest", "changesDigest")
BOUND += ("options", "where", "desired", "files", "seen", "shown")


def _desired_json(kp: DesiredKeyPair) -> dict[str, Any]:
    return {
        "region": kp.address.region,
        "name": kp.address.name,
        "account": kp.address.account,
        "tags": dict(sorted(kp.tags.items())),
        "source": [kp.source.file, kp.source.line, kp.source.column],
        "publicKey": kp.public_key,
        "generateLocal": kp.generate_local,
        "preventDestroy": kp.prevent_destroy,
        "adopt": kp.adopt,
        "rotate": None
        if kp.rotation is None
        else {"after": kp.rotation.after, "keep": kp.rotation.keep},
    }


def _desired_from_json(data: Mapping[str, Any]) -> DesiredKeyPair:
    file, line, column = data["source"]
    return DesiredKeyPair(
        address=Address(data["region"], data["name"], str(data.get("account", ""))),
        tags=dict(data["tags"]),
        source=Source(str(file), int(line), int(column)),
        public_key=data.get("publicKey"),
        generate_local=bool(data.get("generateLocal")),
        prevent_destroy=bool(data.get("preventDestroy")),
        adopt=bool(data.get("adopt")),
        rotation=None
        if not data.get("rotate")
        else Rotation(float(data["rotate"]["after"]), int(data["rotate"].get("keep", 0))),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """The options a saved plan was made with that change what apply does."""

    prune: bool = False
    max_deletes: int | None = None
    replace: tuple[Address, ...] = ()
    rotate: tuple[Address, ...] = ()
    allow_in_use: bool = False
    regions: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "prune": self.prune,
            "maxDeletes": self.max_deletes,
            "replace": [str(a) for a in self.replace],
            "rotate": [str(a) for a in self.rotate],
            "allowInUse": self.allow_in_use,
            "regions": list(self.regions),
            "target": list(self.targets),
            "exclude": list(self.excludes),
            "account": list(self.accounts),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Settings:
        max_deletes = data.get("maxDeletes")
        return cls(
            prune=bool(data.get("prune")),
            max_deletes=None if max_deletes is None else int(max_deletes),
            replace=tuple(Address.parse(str(a)) for a in data.get("replace", ())),
            rotate=tuple(Address.parse(str(a)) for a in data.get("rotate", ())),
            allow_in_use=bool(data.get("allowInUse")),
            regions=tuple(str(r) for r in data.get("regions", ())),
            targets=tuple(str(t) for t in data.get("target", ())),
            excludes=tuple(str(e) for e in data.get("exclude", ())),
            accounts=tuple(str(a) for a in data.get("account", ())),
        )


def _change_record(change: Change) -> dict[str, Any]:
    """What a change is, for the digest: every field that decides what apply does."""
    return {
        "action": change.action.value,
        "address": str(change.address),
        "reasonCode": change.code.value,
        "before": None if change.before_tags is None else dict(sorted(change.before_tags.items())),
        "after": None if change.after_tags is None else dict(sorted(change.after_tags.items())),
        "replaceWith": change.then.value if change.then else None,
        "expectedFingerprint": change.expected_fingerprint,
        "preventDestroy": change.prevent_destroy,
        "keep": change.keep,
        "instances": [i.name for i in change.instances],
    }


def _changes_digest(plan: Plan) -> str:
    body = json.dumps([_change_record(c) for c in plan.changes], sort_keys=True)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Where:
    """Where a plan was made: apply goes there, or refuses."""

    local: bool = False
    endpoint: str | None = None
    accounts: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"local": self.local, "endpoint": self.endpoint, "accounts": list(self.accounts)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Where:
        endpoint = data.get("endpoint")
        return cls(
            bool(data.get("local")),
            None if endpoint is None else str(endpoint),
            tuple(str(a) for a in data.get("accounts", ())),
        )

    def __str__(self) -> str:
        place = "the embedded endpoint (--local)" if self.local else self.endpoint or "AWS"
        return place + (f", accounts {', '.join(self.accounts)}" if self.accounts else "")


def seen(entries: Mapping[Address, StateEntry], live: LiveSnapshot) -> dict[str, Any]:
    """What a plan saw of each key pair, to say what moved when it goes stale."""
    out: dict[str, Any] = {}
    for address, entry in entries.items():
        out.setdefault(str(address), {})["state"] = {
            "origin": entry.origin,
            "fingerprint": entry.fingerprint,
            "tags": dict(sorted(entry.tags.items())),
        }
    for address, kp in live.key_pairs.items():
        out.setdefault(str(address), {})["live"] = {
            "fingerprint": kp.fingerprint,
            "tags": dict(sorted(kp.tags.items())),
        }
    return dict(sorted(out.items()))


def _binding(document: Mapping[str, Any]) -> str:
    body = json.dumps({k: document.get(k) for k in BOUND}, sort_keys=True).encode()
    key = str(document.get("lineage") or "").encode()
    return "hmac-sha256:" + hmac.new(key, body, hashlib.sha256).hexdigest()


def write(
    path: str,
    plan: Plan,
    desired: DesiredSet,
    settings: Settings,
    state: str,
    *,
    rendered: Mapping[str, Any],
    shown: Mapping[str, str],
    where: Where,
    saw: Mapping[str, Any],
) -> None:
    """Save ``plan`` with what it was made from; ``rendered`` is its JSON output form,
    ``saw`` the summary ``seen`` made of the state and the snapshot it was planned from."""
    document: dict[str, Any] = {
        "kind": KIND,
        "version": VERSION,
        "state": state,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "liveDigest": plan.live_digest,
        "changesDigest": _changes_digest(plan),
        "options": replace(settings, max_deletes=plan.max_deletes).to_json(),
        "desired": [_desired_json(desired.key_pairs[a]) for a in sorted(desired.key_pairs)],
        "files": list(desired.files),
        "where": where.to_json(),
        "seen": dict(saw),
        "plan": dict(rendered),
        # The plan as each format showed it when it was saved (`reconciler show`).
        "shown": dict(shown),
    }
    document["binding"] = _binding(document)
    data = json.dumps(document, indent=2).encode()
    write_output(Path(path), data, what="--out")


@dataclass(frozen=True)
class SavedPlan:
    path: str
    lineage: str
    serial: int
    live_digest: str
    changes_digest: str
    desired: DesiredSet
    settings: Settings
    where: Where
    saw: Mapping[str, Any]
    shown: Mapping[str, str]

    def check(self, doc: StateDocument, plan: Plan, live: LiveSnapshot) -> None:
        """Refuse to apply if anything the plan was made against has moved, saying what."""
        hint = "run `reconciler plan --out FILE` again and apply the new plan"
        moved = self._moved(doc, live)
        fresh = doc.serial == 0 and self.serial == 0  # no state yet: lineage not fixed
        if not fresh and doc.lineage != self.lineage:
            raise StalePlanError(
                f"Saved plan is stale: {self.path} was made for a different state "
                f"(lineage {self.lineage or '(new)'}, now {doc.lineage})",
                hint=hint,
            )
        if doc.serial != self.serial:
            raise StalePlanError(
                f"Saved plan is stale: the state changed since {self.path} was made "
                f"(serial {self.serial}, now {doc.serial})",
                hint=hint,
                details=moved,
            )
        if plan.live_digest != self.live_digest:
            raise StalePlanError(
                f"Saved plan is stale: the key pairs in Lightsail changed since {self.path} "
                "was made",
                hint=hint,
                details=moved,
            )
        if _changes_digest(plan) != self.changes_digest:
            raise StalePlanError(
                f"Saved plan is stale: planning again gives different changes than {self.path}",
                hint=hint,
                details=moved,
            )

    def _moved(self, doc: StateDocument, live: LiveSnapshot) -> tuple[str, ...]:
        """One line per key pair and field that moved since the plan was saved."""
        now = seen(doc.entries, live)
        lines: list[str] = []
        for address in sorted(set(self.saw) | set(now)):
            before, after = self.saw.get(address, {}), now.get(address, {})
            for side, label in (("state", "in the state"), ("live", "in Lightsail")):
                was, _is = before.get(side), after.get(side)
                if was == _is:
                    continue
                if was is None or _is is None:
                    lines.append(f"  {address}: {'added' if was is None else 'gone'} {label}")
                    continue
                for d in explain(was, _is):
                    lines.append(
                        f"  {address} {label}: {d.path} {_said(d.before)} -> {_said(d.after)}"
                    )
        return tuple(lines)


def load_if_saved(paths: Sequence[str]) -> SavedPlan | None:
    """The saved plan if ``paths`` is exactly one saved-plan file, else None."""
    if len(paths) != 1:
        return None
    path = paths[0]
    try:
        fd, _ = open_regular(path)
    except OSError:
        return None  # a folder, or a path whose problem reading manifests reports
    try:
        with os.fdopen(fd, "rb") as fh:
            head = fh.read(256)
            if b'"kind"' not in head or KIND.encode() not in head:
                return None
            data = json.loads(head + fh.read())
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot read the saved plan ({type(e).__name__})") from None
    if data.get("version") != VERSION:
        raise UsageError(
            f"{path}: saved plan format {data.get('version')} is not supported",
            hint="run `reconciler plan --out FILE` again with this version",
        )
    if not isinstance(data, dict) or not hmac.compare_digest(
        str(data.get("binding", "")), _binding(data)
    ):
        raise UsageError(
            f"{path}: the saved plan was changed after it was made (its binding does not "
            "match); nothing was applied",
            hint="make the plan again with `reconciler plan --out FILE`",
        )
    try:
        key_pairs = {}
        for item in data["desired"]:
            kp = _desired_from_json(item)
            key_pairs[kp.address] = kp
        return SavedPlan(
            path=path,
            lineage=str(data["lineage"]),
            serial=int(data["serial"]),
            live_digest=str(data["liveDigest"]),
            changes_digest=str(data["changesDigest"]),
            desired=DesiredSet(key_pairs, tuple(data.get("files", ()))),
            settings=Settings.from_json(data.get("options", {})),
            where=Where.from_json(data.get("where", {})),
            saw=dict(data.get("seen", {})),
            shown={str(k): str(v) for k, v in data.get("shown", {}).items()},
        )
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{path}: the saved plan is damaged") from None


def _said(value: Any) -> str:
    return "(none)" if value is None else json.dumps(value, ensure_ascii=False)
