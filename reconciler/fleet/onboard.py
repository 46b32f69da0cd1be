"""Onboarding, for `reconciler import --all`: every live key pair under management in one step.

Reads every key pair Lightsail holds in the chosen regions (of every chosen
account), writes manifests for them (one file per region, in a folder per
account when the project declares several; key pairs sorted by name, tags included, a
header saying where they came from), and adopts into the state those it does
not hold yet, all under one lock. Afterwards ``plan`` on the folder shows no
changes, and running it again changes nothing.

Key pairs already in the state are written the way the state knows them (an
imported key keeps its ``publicKey``, a generated one ``generate: local``),
so the new manifests never ask for a replacement. Existing files are only
overwritten with ``--force``; nothing is written or adopted before every
region was read (or found unreadable) and every file checked.

An account or region that cannot be read does not hold up the others: what
was read is onboarded, each place not read is an error line naming it (no
manifest is written for it, nothing of it adopted) and the run exits 1.
Running it again once that place answers onboards the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import UsageError
from reconciler.fleet.adopt import adoption, recoverable
from reconciler.manifests.yamlsafe import MAX_FILE_BYTES
from reconciler.model import (
    Address,
    DesiredSet,
    LiveKeyPair,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
    account_of,
    name_problem,
    region_of,
    tag_problems,
)
from reconciler.planning.changes import Change
from reconciler.regular import NotRegularFile, read_regular
from reconciler.state.files import write_output

API_VERSION = "reconciler.lightsail/v1"


@dataclass(frozen=True, slots=True)
class ManifestFile:
    """One manifest to write: its path, text, and whether it is new or differs."""

    path: Path
    region: str
    count: int
    text: str
    status: str  # "new", "overwrite" or "unchanged"


@dataclass(frozen=True, slots=True)
class Onboarding:
    """What `import --all` would do: the files to write and the key pairs to adopt."""

    files: tuple[ManifestFile, ...]
    adoptions: tuple[Change, ...]
    # Live key pairs no manifest could declare (their name or tags break Lightsail's
    # rules, as someone else's tooling may have left them): named, never written.
    skipped: tuple[tuple[Address, str], ...] = ()

    @property
    def writes(self) -> tuple[ManifestFile, ...]:
        return tuple(f for f in self.files if f.status != "unchanged")

    @property
    def empty(self) -> bool:
        return not self.writes and not self.adoptions


def _account(key_pairs: list[LiveKeyPair]) -> str:
    """The AWS account the key pairs belong to, from their ARNs."""
    accounts = sorted({kp.arn.split(":")[4] for kp in key_pairs if kp.arn.count(":") >= 5})
    return ", ".join(accounts) or "unknown"


def _entry_yaml(
    kp: LiveKeyPair, prior: StateEntry | None, recovered: OpenIntent | None
) -> dict[str, Any]:
    item: dict[str, Any] = {"name": kp.address.name}
    if prior is not None and prior.origin == "imported" and prior.imported_public_key:
        item["publicKey"] = prior.imported_public_key
    elif (prior is not None and prior.origin == "generated") or recovered is not None:
        item["generate"] = "local"
    if prior is not None and prior.prevent_destroy:
        item["preventDestroy"] = True
    if kp.tags:
        item["tags"] = {k: kp.tags[k] for k in sorted(kp.tags)}
    return item


def manifest_text(
    region: str,
    key_pairs: list[LiveKeyPair],
    entries: Mapping[Address, StateEntry],
    recovered: Mapping[Address, OpenIntent],
) -> str:
    """A KeyPairSet document for ``key_pairs`` of one region (``REGION`` or
    ``ACCOUNT/REGION``), stable byte for byte."""
    ordered = sorted(key_pairs, key=lambda kp: kp.address.name)
    alias = account_of(region)
    named = f" ({alias})" if alias else ""
    header = (
        f"# Key pairs found in Lightsail, account {_account(ordered)}{named}, "
        f"region {region_of(region)},\n"
        "# by `reconciler import --all`, which adopted them into the state.\n"
        "# This file is now their source of truth: edit it, then `reconciler plan`.\n"
    )
    document = {
        "apiVersion": API_VERSION,
        "kind": "KeyPairSet",
        **({"account": alias} if alias else {}),
        "region": region_of(region),
        "keyPairs": [
            _entry_yaml(kp, entries.get(kp.address), recovered.get(kp.address)) for kp in ordered
        ],
    }
    body = yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, allow_unicode=True, width=4096
    )
    return header + body


def _recoverable(pending: Mapping[Address, OpenIntent]) -> dict[Address, OpenIntent]:
    """Keys generated here by an interrupted run: adopting them keeps the private half."""
    return {a: p for a, p in pending.items() if recoverable(p) is not None}


def plan_onboarding(
    live: LiveSnapshot,
    entries: Mapping[Address, StateEntry],
    pending: Mapping[Address, OpenIntent],
    folder: Path,
    declared: DesiredSet | None = None,
) -> Onboarding:
    """Pure but for reading the existing files: the manifests and adoptions ``live`` asks for.

    Key pairs ``declared`` by existing manifests are adopted but not written again (their
    files, with their ``publicKeyFile`` and ``rotate:``, stay as they are); no file of
    ``declared`` is written over.
    """
    recovered = _recoverable(pending)
    declared_files = {Path(f).resolve() for f in (declared.files if declared else ())}
    by_region: dict[str, list[LiveKeyPair]] = {}
    skipped: dict[Address, str] = {}
    for kp in live.key_pairs.values():
        problem = undeclarable(kp)
        if problem is not None:
            skipped[kp.address] = problem
        elif declared is None or kp.address not in declared.key_pairs:
            by_region.setdefault(kp.address.where, []).append(kp)
    files: list[ManifestFile] = []
    for region in sorted(by_region):
        alias = account_of(region)
        path = (folder / alias if alias else folder) / f"{region_of(region)}.yaml"
        if path.resolve() in declared_files:
            path = path.with_name(f"{region_of(region)}.imported.yaml")
        text = manifest_text(region, by_region[region], entries, recovered)
        try:
            data, size = read_regular(path, MAX_FILE_BYTES)
            if size > MAX_FILE_BYTES:
                raise UsageError(f"{path}: cannot read it ({size} bytes is too large)")
            existing: str | None = data.decode("utf-8")
        except FileNotFoundError:
            existing = None
        except NotRegularFile as exc:
            raise UsageError(f"{path} is {exc.kind}, not a regular file; not read") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{path}: cannot read it ({type(exc).__name__})") from None
        status = "new" if existing is None else "unchanged" if existing == text else "overwrite"
        files.append(ManifestFile(path, region, len(by_region[region]), text, status))
    adoptions = tuple(
        adoption(live.key_pairs[address], import_all=True, recovered=recovered.get(address))
        for address in sorted(live.key_pairs)
        if address not in entries and address not in skipped
    )
    return Onboarding(tuple(files), adoptions, tuple(sorted(skipped.items())))


def undeclarable(kp: LiveKeyPair) -> str | None:
    """Why no manifest could declare ``kp`` as it is live, or None when one can: a file
    written for it would fail `validate`."""
    problem = name_problem(kp.address.name)
    if problem is not None:
        return f"its name: {problem}"
    problems = tag_problems(kp.tags)
    return f"its tags: {problems[0]}" if problems else None


def write_manifest_file(manifest: ManifestFile) -> None:
    """Write one manifest atomically: a reader sees the old file or the new one."""
    write_output(manifest.path, manifest.text.encode(), what="manifest", make_folder=True)
