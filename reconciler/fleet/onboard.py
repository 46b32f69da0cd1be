"""`reconciler import --all`: bring every live key pair under management in one step.

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

import argparse
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.apply.executor import Executor
from reconciler.cli import custody as key_commands
from reconciler.cli import workflow
from reconciler.errors import EXIT_ERROR, EXIT_OK, UsageError
from reconciler.manifests.yamlsafe import MAX_FILE_BYTES
from reconciler.model import (
    REGIONS,
    Address,
    LiveKeyPair,
    LiveSnapshot,
    OpenIntent,
    StateEntry,
    Unread,
    account_of,
    region_of,
    where,
)
from reconciler.planning.planner import Action, Change, Plan, Reason
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
    return {a: p for a, p in pending.items() if p.operation == "generate"}


def plan_onboarding(
    live: LiveSnapshot,
    entries: Mapping[Address, StateEntry],
    pending: Mapping[Address, OpenIntent],
    folder: Path,
) -> Onboarding:
    """Pure but for reading the existing files: the manifests and adoptions ``live`` asks for."""
    recovered = _recoverable(pending)
    by_region: dict[str, list[LiveKeyPair]] = {}
    for kp in live.key_pairs.values():
        by_region.setdefault(kp.address.where, []).append(kp)
    files: list[ManifestFile] = []
    for region in sorted(by_region):
        alias = account_of(region)
        path = (folder / alias if alias else folder) / f"{region_of(region)}.yaml"
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
        Change(
            Action.ADOPT,
            address,
            "reconciler import --all",
            Reason.IMPORT_REQUESTED,
            before_tags=live.key_pairs[address].tags,
            after_tags=live.key_pairs[address].tags,
            live=live.key_pairs[address],
            recovered=recovered.get(address),
        )
        for address in sorted(live.key_pairs)
        if address not in entries
    )
    return Onboarding(tuple(files), adoptions)


def preview(onboarding: Onboarding, folder: Path, unread: tuple[Unread, ...] = ()) -> str:
    lines: list[str] = []
    total = sum(f.count for f in onboarding.files)
    lines.append(f"Manifests under {folder} for {total} live key pair(s):")
    for f in onboarding.files:
        lines.append(f"  {f.path}  ({f.count} key pair(s), {f.status})")
    if unread:
        lines.append("")
        lines.append("Not read (no manifest is written for them, nothing of them adopted):")
        lines.extend(f"  {_place(u)}" for u in unread)
    if onboarding.adoptions:
        lines.append("")
        lines.append(f"Key pairs to adopt into the state ({len(onboarding.adoptions)}):")
        lines.extend(f"  <= {c.address}" for c in onboarding.adoptions)
    lines.append("")
    lines.append(
        f"Import: {len(onboarding.writes)} file(s) to write, "
        f"{len(onboarding.adoptions)} key pair(s) to adopt."
    )
    return "\n".join(lines) + "\n"


def _place(unread: Unread) -> str:
    return f"account {unread.place}" if unread.account else unread.place


def report_unread(unread: tuple[Unread, ...]) -> bool:
    """One error line per account or region that could not be read; whether there was any."""
    for u in unread:
        sys.stderr.write(f"Error: {u.describe()}; nothing was written or adopted for it\n")
    if unread:
        sys.stderr.write(
            "  -> run `reconciler import --all` again when it answers; what was onboarded "
            "now is left as it is\n"
        )
    return bool(unread)


def write_manifest_file(manifest: ManifestFile) -> None:
    """Write one manifest atomically: a reader sees the old file or the new one."""
    write_output(manifest.path, manifest.text.encode(), what="manifest", make_folder=True)


def _regions(options: workflow.Options) -> list[str]:
    """What to read: the regions, in each covered account when there are several."""
    unknown = [r for r in options.regions if r not in REGIONS]
    if unknown:
        raise UsageError(
            f"{unknown[0]!r} is not a Lightsail region",
            hint=f"use one of: {', '.join(REGIONS)}",
        )
    regions = list(options.regions) or list(REGIONS)
    if not options.accounts.several:
        return regions
    return [where(alias, r) for alias in options.accounts.selected for r in regions]


def run(args: argparse.Namespace, options: workflow.Options) -> int:
    from reconciler.cli.commands import confirm

    if not args.write_manifests:
        raise UsageError(
            "import --all needs --write-manifests DIR",
            hint="the manifests written there become the key pairs' source of truth",
        )
    folder = Path(args.write_manifests)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--write-manifests {folder}: not a directory")
    regions = _regions(options)
    backend = workflow.open_backend(options)
    with (
        backend.lock("import --all", timeout=options.lock_timeout),
        workflow.lightsail_for(options) as lightsail,
    ):
        doc = backend.begin()
        live = lightsail.snapshot(regions, parallelism=options.parallelism)
        unread = live.unread()
        if workflow.place_in_accounts(doc, lightsail, options):
            backend.write(doc)
        onboarding = plan_onboarding(live, doc.entries, doc.pending, folder)
        if onboarding.empty:
            sys.stderr.write(
                f"Nothing to do: the manifests under {folder} and the state already hold "
                f"all {len(live.key_pairs)} live key pair(s)"
                + (" of the regions read" if unread else "")
                + ".\n"
            )
            return EXIT_ERROR if report_unread(unread) else EXIT_OK
        sys.stdout.write(preview(onboarding, folder, unread))
        sys.stdout.flush()
        clashes = [f for f in onboarding.files if f.status == "overwrite"]
        if clashes and not args.force:
            raise UsageError(
                f"{clashes[0].path} exists and differs from what would be written"
                + (f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else "")
                + "; nothing was written or adopted",
                hint="pass --force to overwrite, or choose another --write-manifests folder",
            )
        confirm(args, "write these manifests and adopt these key pairs")
        for manifest in onboarding.writes:
            write_manifest_file(manifest)
        sealer = workflow.sealer_for(options, doc) if _any_recovered(onboarding) else None
        custody = key_commands.prepare(options, doc, backend)
        executor = Executor(
            lightsail,
            backend.journal(),
            parallelism=options.parallelism,
            seal=None if sealer is None else sealer.seal,
            keep=custody.keep if custody.remote else None,
        )
        batch = Plan(
            changes=onboarding.adoptions,
            findings=(),
            unchanged=0,
            orphaned=(),
            stale_pending=(),
            regions=live.regions,
            lineage=doc.lineage,
            serial=doc.serial,
            live_digest=live.digest(),
        )
        try:
            outcome = executor.run(batch)
        finally:
            backend.commit()
    head = "Import finished with errors!" if unread else "Import complete!"
    sys.stderr.write(
        f"\n{head} Wrote {len(onboarding.writes)} manifest file(s) under {folder}; "
        f"adopted {len(outcome.succeeded)} key pair(s), {len(outcome.failed)} failed.\n"
    )
    for failure in outcome.failed:
        sys.stderr.write(f"Error: {failure.message}\n")
    missed = report_unread(unread)
    held = custody.report(backend.location)  # a failing key store: once, not per key pair
    return EXIT_ERROR if outcome.failed or held or missed else EXIT_OK


def _any_recovered(onboarding: Onboarding) -> bool:
    return any(c.recovered is not None for c in onboarding.adoptions)
