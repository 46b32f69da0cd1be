"""Saved plans: `plan --out FILE`, then `apply FILE`.

A saved plan is bound to the world it saw: the state's lineage and serial and
a digest of the live snapshot. It stores the desired model it was made from
(never key material) and the plan itself; `apply FILE` re-plans from that
model under the lock and refuses, like Terraform ("Saved plan is stale"),
unless the state, the live snapshot and the resulting changes are identical.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from reconciler.cli.workflow import Options
from reconciler.errors import StalePlanError, UsageError
from reconciler.model import Address, DesiredKeyPair, DesiredSet, Rotation, Source
from reconciler.output import render
from reconciler.planning.planner import Plan
from reconciler.planning.scope import Scope
from reconciler.regular import open_regular
from reconciler.state import StateDocument
from reconciler.state.files import write_output

KIND = "reconciler.lightsail/saved-plan"
VERSION = 1


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


def _changes_digest(plan: Plan) -> str:
    body = json.dumps(render.plan_json(plan)["changes"], sort_keys=True)
    return "sha256:" + hashlib.sha256(body.encode()).hexdigest()


def write(path: str, plan: Plan, desired: DesiredSet, options: Options, state: str) -> None:
    document = {
        "kind": KIND,
        "version": VERSION,
        "state": state,
        "lineage": plan.lineage,
        "serial": plan.serial,
        "liveDigest": plan.live_digest,
        "changesDigest": _changes_digest(plan),
        "options": {
            "prune": options.prune,
            "maxDeletes": plan.max_deletes,
            "replace": [str(a) for a in options.replace],
            "rotate": [str(a) for a in options.rotate],
            "allowInUse": options.allow_in_use,
            "regions": list(options.regions),
            "target": list(options.scope.targets),
            "exclude": list(options.scope.excludes),
            "account": list(options.accounts.chosen),
        },
        "desired": [_desired_json(desired.key_pairs[a]) for a in sorted(desired.key_pairs)],
        "files": list(desired.files),
        "plan": render.plan_json(plan),
    }
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
    options: Mapping[str, Any]

    def apply_options(self, options: Options) -> Options:
        return replace(
            options,
            prune=bool(self.options.get("prune")),
            max_deletes=int(self.options.get("maxDeletes", 0)),
            replace=tuple(Address.parse(a) for a in self.options.get("replace", ())),
            rotate=tuple(Address.parse(a) for a in self.options.get("rotate", ())),
            allow_in_use=bool(self.options.get("allowInUse")),
            regions=tuple(self.options.get("regions", ())),
            scope=Scope.parse(self.options.get("target", ()), self.options.get("exclude", ())),
            accounts=options.accounts.only(self.options.get("account")),
        )

    def check(self, doc: StateDocument, plan: Plan) -> None:
        """Refuse to apply if anything the plan was made against has moved."""
        hint = "run `reconciler plan --out FILE` again and apply the new plan"
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
            )
        if plan.live_digest != self.live_digest:
            raise StalePlanError(
                f"Saved plan is stale: the key pairs in Lightsail changed since {self.path} "
                "was made",
                hint=hint,
            )
        if _changes_digest(plan) != self.changes_digest:
            raise StalePlanError(
                f"Saved plan is stale: planning again gives different changes than {self.path}",
                hint=hint,
            )


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
        raise UsageError(f"{path}: saved plan format {data.get('version')} is not supported")
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
            options=data.get("options", {}),
        )
    except (KeyError, TypeError, ValueError):
        raise UsageError(f"{path}: the saved plan is damaged") from None
