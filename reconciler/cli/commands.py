"""One function per command: take parsed arguments, do the work, return an exit code.

Each reads its inputs through ``workflow`` and writes its output through
``render``; none holds logic the others need.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from reconciler.apply.executor import ApplyResult, Executor
from reconciler.cli import checks, generations, workflow
from reconciler.cli import custody as key_commands
from reconciler.errors import (
    EXIT_CHANGES,
    EXIT_ERROR,
    EXIT_OK,
    ApplyError,
    StateError,
    StorageError,
    UsageError,
)
from reconciler.findings import Finding
from reconciler.manifests.accounts import Accounts
from reconciler.manifests.load import load_desired
from reconciler.manifests.project import load_project, resolve_state
from reconciler.model import Address, DesiredSet, StateEntry
from reconciler.output import formats, render
from reconciler.output import outcome as outcome_summary
from reconciler.planning import protect, savedplan
from reconciler.planning.planner import Plan
from reconciler.planning.scope import Scope
from reconciler.state import StateBackend, StateDocument, crypto, entry_to_json
from reconciler.state.files import kib


def _options(args: argparse.Namespace) -> workflow.Options:
    state: str | None = getattr(args, "state", None)
    extra: dict[str, str] = {}
    key_store: str | None = getattr(args, "key_store", None)
    key_kms: str | None = getattr(args, "key_store_kms_key_id", None)
    key_timeout: float | None = None
    if key_store is not None:
        key_commands.check_spec(key_store, key_kms, "--key-store")
    project = load_project()
    if not getattr(args, "local", False):
        # --local keeps its state beside the embedded emulator, never in the
        # team's real backend.
        state, extra = resolve_state(state, project)
        if key_store is None and project is not None and project.keys is not None:
            key_store, key_kms = project.keys.spec, project.keys.kms_key_id
        if project is not None and project.keys is not None:
            key_timeout = project.keys.timeout
    accounts = (Accounts() if project is None else project.accounts).only(
        getattr(args, "account", None)
    )
    return workflow.Options(
        accounts=accounts,
        key_store=key_store,
        key_store_kms_key_id=key_kms,
        key_store_timeout=key_timeout,
        state=None if state is None else accounts.state_location(state),
        extra=dict(extra),
        regions=tuple(getattr(args, "region", ()) or ()),
        local=getattr(args, "local", False),
        allow_insecure_state=getattr(args, "allow_insecure_state", False),
        lock_timeout=getattr(args, "lock_timeout", 0.0),
        parallelism=max(1, getattr(args, "parallelism", 10)),
        replace=tuple(accounts.check(Address.parse(a)) for a in getattr(args, "replace", ()) or ()),
        rotate=tuple(accounts.check(Address.parse(a)) for a in getattr(args, "rotate", ()) or ()),
        allow_in_use=getattr(args, "allow_in_use", False),
        prune=getattr(args, "prune", False),
        max_deletes=getattr(args, "max_deletes", None),
        encrypt_with=tuple(getattr(args, "encrypt_with", ()) or ()),
        age_identities=tuple(getattr(args, "age_identity", ()) or ()),
        scope=Scope.parse(getattr(args, "target", ()) or (), getattr(args, "exclude", ()) or ()),
    )


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def plan(args: argparse.Namespace) -> int:
    options = _options(args)
    desired = load_desired(workflow.manifest_paths(args.paths), accounts=options.accounts)
    backend = workflow.open_backend(options)
    with workflow.lightsail_for(options) as lightsail:
        doc, live = workflow.observe(
            desired, workflow.read_without_secrets(backend), lightsail, options
        )
        result, _ = workflow.build_plan(desired, doc, lightsail, options, live=live)
    stored = key_commands.check(
        options, doc, options.region_filter, entries=options.scope.only(doc.entries)
    )
    if stored:
        result = dataclasses.replace(
            result, findings=result.findings + key_commands.plan_findings(stored)
        )
    report = checks.plan_report(result, desired, live)
    color = render.use_color(sys.stdout)
    _out(formats.get(args.format).plan(result, report, color=color))
    result.raise_if_unsafe()
    if args.out:
        savedplan.write(args.out, result, desired, options, backend.location)
        sys.stderr.write(
            f"Saved the plan to {args.out}; apply it with `reconciler apply {args.out}`.\n"
        )
    if result.findings or report.errors:
        return EXIT_ERROR
    if args.detailed_exitcode and result.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def confirm(args: argparse.Namespace, verb: str) -> None:
    """Ask at the terminal before ``verb``, unless --auto-approve; refuse without a terminal."""
    _confirm(args, verb)


def _confirm(args: argparse.Namespace, verb: str) -> None:
    if args.auto_approve:
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"{verb} needs confirmation, and there is no terminal to ask on; nothing was changed",
            hint="pass --auto-approve in pipelines",
        )
    sys.stderr.write(f"\nDo you want to {verb}? Only 'yes' will be accepted.\n  Enter a value: ")
    sys.stderr.flush()
    if sys.stdin.readline().strip() != "yes":
        raise ApplyError(f"{verb} cancelled; nothing was changed")


def _execute(
    args: argparse.Namespace,
    options: workflow.Options,
    desired: DesiredSet,
    *,
    command: str,
    destroy: bool = False,
    saved: savedplan.SavedPlan | None = None,
) -> int:
    backend = workflow.open_backend(options)
    stores = key_commands.Reports(backend.location)  # reported once, also if the run fails
    with (
        backend.lock(command, timeout=options.lock_timeout),
        workflow.lightsail_for(options) as lightsail,
        stores,
    ):
        placed: list[int] = []
        doc, live = workflow.observe(
            desired, backend.begin, lightsail, options, on_placed=placed.append
        )
        result, _ = workflow.build_plan(
            desired, doc, lightsail, options, destroy=destroy, live=live
        )
        if saved is not None:
            saved.check(doc, result)
        # Keys an earlier run left in the state go to their store before anything else.
        early, moved = key_commands.finish(options, doc, backend)
        stores.add(early)
        if moved:  # the plan's entries predate the move
            result, _ = workflow.build_plan(
                desired, doc, lightsail, options, destroy=destroy, live=live
            )
        quiet = args.quiet and (args.auto_approve or saved is not None)
        if quiet:
            scoped = f"{render.left_out_line(result)}\n" if result.left_out else ""
            _out(f"{render.summary_line(result)}\n{scoped}")
        else:
            _out(render.plan_text(result, color=render.use_color(sys.stdout)))
        result.raise_if_unsafe()
        if not destroy:
            _refuse_policy_errors(checks.manifest_policy(desired))
        if not result.changes and not result.stale_pending:
            _record_accounts(backend, doc, placed)
            _record_protection(backend, doc, desired, options)
            stores.add(key_commands.prepare(options, doc, backend, custody=early))
            _warn_unencrypted(doc, backend.location)
            code = _summarize(result, None) if result.findings else EXIT_OK
            return EXIT_ERROR if stores.report() else code
        if result.changes and saved is None:
            _confirm(args, "destroy these key pairs" if destroy else "perform these actions")
        _record_accounts(backend, doc, placed)
        # Before the changes: an interrupted run loses no protection. A key pair this run
        # records carries its protection in the journal record that makes it durable.
        _record_protection(backend, doc, desired, options)
        custody = stores.add(key_commands.prepare(options, doc, backend, custody=early))
        sealer = _sealer(options, doc, backend) if result.changes else None
        progress = None if quiet else render.Progress(len(result.changes))
        executor = Executor(
            lightsail,
            backend.journal(),
            parallelism=options.parallelism,
            seal=None if sealer is None else sealer.seal,
            on_progress=progress,
            keep=custody.keep if custody.remote else None,
            forget=custody.forget,
        )
        backend.preflight(executor.reserve_bytes(result))
        committed: StorageError | None = None
        try:
            outcome = executor.run(result)
        finally:
            try:
                doc = backend.commit()
            except StorageError as e:
                committed = e  # the journal keeps every result; reported after the summary
    code = _summarize(result, outcome)
    if stores.report():  # once for the run, not per key pair
        code = EXIT_ERROR
    if outcome.unreachable is not None:
        _report_unreachable(outcome)
        code = EXIT_ERROR
    stopped = outcome.stopped or committed
    if stopped is not None:
        _report_stop(stopped, outcome, sum(map(executor.change_bytes, outcome.not_started)))
        return EXIT_ERROR
    _warn_unencrypted(doc, backend.location)
    return code


def _refuse_policy_errors(found: list[Finding]) -> None:
    """Apply makes nothing while the manifests break the team's policy (as validate and
    plan report it). Rules on live key pairs (max-key-age) do not block: the apply that
    rotates an old key pair must be able to run."""
    if found:
        sys.stderr.write("Policy:\n" + "".join(f"{f}\n" for f in found))
    errors = sum(1 for f in found if f.severity == "error")
    if errors:
        raise ApplyError(
            f"the manifests break {errors} policy rule(s); nothing was changed",
            hint="fix the manifests, or add a policyExceptions entry with a reason",
        )


def _record_accounts(backend: StateBackend, doc: StateDocument, placed: list[int]) -> None:
    """Under the lock, before any change: the accounts given to a single-account state's
    entries (``workflow.place_in_accounts``), so the journal's results land beside them."""
    if placed:
        backend.write(doc)
        sys.stderr.write(f"Recorded the account of {placed[0]} key pair(s) in the state.\n")


def _record_protection(
    backend: StateBackend, doc: StateDocument, desired: DesiredSet, options: workflow.Options
) -> None:
    """Under the lock, before any change: the preventDestroy the manifests now declare for
    key pairs the state already records. An entry a change records carries its declared
    protection itself (``Change.protection``), so this reports only protection that changed
    on entries that were there before."""
    changed = protect.recorded(doc.entries, desired, options.scope)
    if changed:
        doc.entries.update(changed)
        backend.write(doc)
        sys.stderr.write(f"Recorded preventDestroy of {len(changed)} key pair(s) in the state.\n")


def _report_stop(error: StorageError, outcome: ApplyResult, room: int) -> None:
    """One message for the storage failure that stopped the run, however many it stopped."""
    sys.stderr.write(f"Error: {error.message}\n")
    if error.hint:
        sys.stderr.write(f"  -> {error.hint}\n")
    if outcome.unrecorded:
        count = len(outcome.unrecorded)
        sys.stderr.write(
            f"{count} change{'s were' if count != 1 else ' was'} under way and could not be "
            "recorded; the next plan checks them against Lightsail.\n"
        )
    if outcome.not_started:
        count = len(outcome.not_started)
        sys.stderr.write(
            f"Stopped before {count} change{'s' if count != 1 else ''} (they need about "
            f"{kib(room)} of journal room): nothing was sent to Lightsail for them; the next "
            "run makes them.\n"
        )


def _report_unreachable(outcome: ApplyResult) -> None:
    """One message for Lightsail going away, however many changes it cut off."""
    error = outcome.unreachable
    assert error is not None
    reason = error.message.rpartition(": ")[2]  # "cannot reach Lightsail at URL (...)"
    parts = []
    if outcome.cut_off:
        parts.append(
            f"{len(outcome.cut_off)} change(s) under way are checked by the next plan (GetKeyPair)"
        )
    if outcome.not_started:
        parts.append(f"{len(outcome.not_started)} not started (nothing was sent for them)")
    sys.stderr.write(f"Error: {reason}; the apply stopped: {', '.join(parts) or 'nothing left'}\n")
    if error.hint:
        sys.stderr.write(f"  -> {error.hint}\n")


def _sealer(
    options: workflow.Options, doc: StateDocument, backend: StateBackend
) -> crypto.Sealer | None:
    """The run's sealer, made (and a new --encrypt-with recorded) before any change."""
    sealer = workflow.sealer_for(options, doc)
    if sealer is not None and options.encrypt_with:
        setting = [spec.to_json() for spec in sealer.specs]
        if setting != doc.encryption:
            doc.encryption = setting
            backend.write(doc)
    return sealer


def _warn_unencrypted(doc: StateDocument, location: str) -> None:
    count = crypto.unencrypted_count([*doc.entries.values(), *doc.pending.values()])
    warning = crypto.unencrypted_warning(count, location)
    if warning is not None:
        sys.stderr.write(warning + "\n")


def _summarize(result: Plan, outcome: ApplyResult | None) -> int:
    sys.stderr.write(f"\n{outcome_summary.summary(result, outcome)}\n")
    for failure in outcome.failed if outcome is not None else ():
        sys.stderr.write(f"Error: {failure.message}\n")
        if failure.hint:
            sys.stderr.write(f"  -> {failure.hint}\n")
    for finding in result.findings:
        sys.stderr.write(f"Error: {finding.message}\n  -> {finding.hint}\n")
    return EXIT_OK if outcome_summary.succeeded(result, outcome) else EXIT_ERROR


def apply(args: argparse.Namespace) -> int:
    options = _options(args)
    saved = savedplan.load_if_saved(args.paths)
    if saved is not None:
        options = saved.apply_options(options)
        return _execute(args, options, saved.desired, command="apply", saved=saved)
    desired = load_desired(workflow.manifest_paths(args.paths), accounts=options.accounts)
    return _execute(args, options, desired, command="apply")


def destroy(args: argparse.Namespace) -> int:
    options = _options(args)
    desired = load_desired(workflow.manifest_paths(args.paths), accounts=options.accounts)
    return _execute(args, options, desired, command="destroy", destroy=True)


def drift(args: argparse.Namespace) -> int:
    from reconciler.output import reasons
    from reconciler.planning import drift as drift_mod

    return drift_mod.run(args, _options(args), word=reasons.cause)


def report(args: argparse.Namespace) -> int:
    from reconciler.fleet import inventory as report_mod

    return report_mod.run(args, _options(args))


def import_(args: argparse.Namespace) -> int:
    if args.all:
        if args.address:
            raise UsageError("pass either REGION/NAME or --all, not both")
        from reconciler.fleet import onboard

        return onboard.run(args, _options(args))
    if not args.address:
        raise UsageError(
            "import needs REGION/NAME",
            hint="or --all --write-manifests DIR to adopt every live key pair",
        )
    from reconciler.fleet import adopt

    return adopt.run(args, _options(args))


def _entry(doc: StateDocument, text: str) -> StateEntry:
    address = Address.parse(text)
    entry = doc.entries.get(address)
    if entry is None:
        raise StateError(
            f"{address} is not in the state", hint="`reconciler state list` shows what is"
        )
    return entry


def state(args: argparse.Namespace) -> int:
    options = _options(args)
    backend = workflow.open_backend(options)
    if args.state_command in ("encrypt", "decrypt"):
        return _seal_state(args.state_command == "encrypt", options, backend)
    if args.state_command == "migrate-keys":
        return key_commands.migrate_keys(args, options)
    if args.state_command == "unprotect":
        with backend.lock("state unprotect", timeout=options.lock_timeout):
            doc = backend.begin()
            entry = _entry(doc, args.address)
            if entry.prevent_destroy:
                doc.entries[entry.address] = protect.unprotected(entry)
                backend.write(doc)
        sys.stderr.write(
            f"{entry.address} is no longer protected by preventDestroy in the state"
            f"{'' if entry.prevent_destroy else ' (it was not)'}; a manifest that still "
            "declares preventDestroy: true records it again on the next apply.\n"
        )
        return EXIT_OK
    if args.state_command == "rm":
        with backend.lock("state rm", timeout=options.lock_timeout):
            doc = backend.begin()
            entry = _entry(doc, args.address)
            del doc.entries[entry.address]
            backend.write(doc)
        sys.stderr.write(f"Removed {entry.address} from the state; Lightsail was not touched.\n")
        if entry.private_key_ref is not None:
            sys.stderr.write(
                f"Its private key stays in {entry.private_key_ref.get('location')} "
                f"({entry.private_key_ref.get('store')}).\n"
            )
        return EXIT_OK
    doc = backend.read()
    if args.state_command == "list":
        users = generations.instance_counts(doc, options)
        for address in sorted(doc.entries):
            e = doc.entries[address]
            held = "sealed" if e.private_key_sealed else "held" if e.private_key else "none"
            if e.private_key_ref is not None:
                held = e.private_key_ref.get("store", "").split(":", 1)[0]
            _out(
                f"{address}\t{e.origin}\t{e.fingerprint}\tprivate-key:{held}"
                f"{generations.list_suffix(e, users)}\n"
            )
        for address in sorted(doc.pending):
            _out(f"{address}\tpending\t-\tinterrupted {doc.pending[address].operation}\n")
        return EXIT_OK
    entry = _entry(doc, args.address)
    data = entry_to_json(entry)
    if args.reveal:
        data["privateKey"] = _private_key(entry, options, doc)
    elif "privateKey" in data or "privateKeySealed" in data:
        data.pop("privateKeySealed", None)
        data["privateKey"] = "(sensitive: add --reveal, or use `reconciler key get`)"
    generations.redact(data, reveal=args.reveal)
    _out(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return EXIT_OK


def _seal_state(encrypt: bool, options: workflow.Options, backend: StateBackend) -> int:
    command = "state encrypt" if encrypt else "state decrypt"
    with backend.lock(command, timeout=options.lock_timeout):
        doc = backend.begin()
        unsealer = workflow.unsealer_for(options)
        if encrypt:
            sealer = workflow.sealer_for(options, doc)
            if sealer is None:
                raise UsageError(
                    "state encrypt needs a recipient",
                    hint="pass --encrypt-with kms:KEY_ID or --encrypt-with age:RECIPIENT "
                    "(repeat it for several)",
                )
            changed = crypto.seal_entries(doc.entries, sealer, unsealer=unsealer)
            doc.encryption = [spec.to_json() for spec in sealer.specs]
        else:
            changed = crypto.unseal_entries(doc.entries, unsealer)
            doc.encryption = []
        doc.entries.update(changed)
        backend.write(doc)
        # Twice, so the previous version kept as a backup holds no key in clear either.
        backend.write(doc)
    verb = "Encrypted" if encrypt else "Decrypted"
    sys.stderr.write(f"{verb} {len(changed)} private key(s) in {backend.location}.\n")
    if encrypt and changed:
        sys.stderr.write(
            "Copies made before now (older S3 object versions, your own backups) still hold "
            "them in clear.\n"
        )
    return EXIT_OK


def _private_key(entry: StateEntry, options: workflow.Options, doc: StateDocument) -> str | None:
    if entry.private_key is not None:
        return entry.private_key
    if entry.has_private_key:
        return key_commands.custody_for(options, doc).read(entry)
    return None


def key(args: argparse.Namespace) -> int:
    options = _options(args)
    doc = workflow.open_backend(options).read()
    entry = generations.pick(_entry(doc, args.address), args.generation)
    if args.public:
        if not entry.public_key_base64:
            raise StateError(f"{entry.address}: the state holds no public key for it")
        _out(entry.public_key_base64.strip() + "\n")
        return EXIT_OK
    pem = _private_key(entry, options, doc)
    if pem is None:
        raise StateError(
            f"{entry.address} has no private key in the state or a key store "
            f"(origin: {entry.origin})",
            hint="imported and adopted key pairs keep their private key wherever it was made",
        )
    _out(pem if pem.endswith("\n") else pem + "\n")
    return EXIT_OK


def force_unlock(args: argparse.Namespace) -> int:
    backend = workflow.open_backend(_options(args))
    backend.force_unlock(args.lock_id, force=args.force)
    sys.stderr.write(f"Lock {args.lock_id} removed from {backend.location}.\n")
    return EXIT_OK
