"""`reconciler apply [PLAN_FILE | PATH...]`: make Lightsail match the manifests.

``execute`` is the run that apply and destroy share, one step per method of
``ApplyRun``: under the state lock, observe and plan; check a saved plan
against what is there now; store keys an earlier run left behind; show the
plan and refuse what is unsafe or against policy; ask; record what must be
recorded before any change; carry the changes out; commit and report.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reconciler.cli.arguments import (
    auto_approve,
    common,
    encryption,
    key_store,
    paths_argument,
    planning,
    quiet,
)
from reconciler.errors import EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from reconciler.apply.executor import ApplyResult, Executor
    from reconciler.aws.lightsail import Lightsail
    from reconciler.cli import custody as key_commands
    from reconciler.cli.options import Options
    from reconciler.custody import Custody
    from reconciler.errors import StorageError
    from reconciler.findings import Finding
    from reconciler.model import DesiredSet, LiveSnapshot
    from reconciler.planning.changes import Plan
    from reconciler.planning.savedplan import SavedPlan
    from reconciler.state import StateBackend, StateDocument, crypto


def add_arguments(parser: argparse.ArgumentParser) -> None:
    paths_argument(
        parser,
        required=True,
        metavar="PLAN_FILE|PATH",
        help="a plan saved by `plan --out`, or manifest files or folders",
    )
    auto_approve(parser)
    quiet(parser)
    planning(parser)
    encryption(parser)
    key_store(parser)
    common(parser)


@dataclass(frozen=True, slots=True)
class Asked:
    """What apply and destroy were asked beyond ``Options``."""

    command: str
    auto_approve: bool
    quiet: bool
    destroy: bool = False


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import options, workflow
    from reconciler.manifests.load import load_desired
    from reconciler.planning import savedplan

    saved = savedplan.load_if_saved(args.paths)
    if saved is not None and saved.where.local and not args.endpoint_url:
        args.local = True  # planned with --local: applied there, state and all
    opts = options.from_args(args)
    asked = Asked("apply", args.auto_approve, args.quiet)
    if saved is not None:
        return execute(asked, options.with_saved(opts, saved), saved.desired, saved=saved)
    desired = load_desired(workflow.manifest_paths(args.paths), accounts=opts.accounts)
    return execute(asked, opts, desired)


def execute(
    asked: Asked, opts: Options, desired: DesiredSet, *, saved: SavedPlan | None = None
) -> int:
    from reconciler.cli import custody as key_commands
    from reconciler.cli import workflow

    backend = workflow.open_backend(opts)
    stores = key_commands.Reports(backend.location)  # reported once, also if the run fails
    with (
        backend.lock(asked.command, timeout=opts.lock_timeout),
        workflow.lightsail_for(opts) as lightsail,
        stores,
    ):
        step = ApplyRun(asked, opts, desired, backend, lightsail, stores, saved=saved is not None)
        result = step.plan(saved)
        step.show(result)
        step.refuse_unsafe(result)
        if not result.changes and not result.stale_pending:
            return step.nothing_to_change(result)
        if result.changes and saved is None:
            step.confirm()
        custody = step.record_before_changes()
        executor = step.executor(result, custody)
        backend.preflight(executor.reserve_bytes(result))
        outcome, committed = step.carry_out(executor, result)
    return step.report(result, outcome, committed, executor)


class ApplyRun:
    """One apply or destroy, under the lock; see the module docstring for the order."""

    def __init__(
        self,
        asked: Asked,
        opts: Options,
        desired: DesiredSet,
        backend: StateBackend,
        lightsail: Lightsail,
        stores: key_commands.Reports,
        *,
        saved: bool,
    ) -> None:
        from reconciler.output.terminal import TERMINAL

        self.asked = asked
        self.opts = opts
        self.desired = desired
        self.backend = backend
        self.lightsail = lightsail
        self.stores = stores
        # Quiet only where nothing is asked: a saved plan, or --auto-approve.
        self.quiet = asked.quiet and (asked.auto_approve or saved)
        self.terminal = TERMINAL
        self.placed: list[int] = []
        self.early: Custody | None = None
        self.doc: StateDocument
        self.live: LiveSnapshot

    def plan(self, saved: SavedPlan | None) -> Plan:
        from reconciler.cli import custody as key_commands
        from reconciler.cli import workflow

        self.doc, self.live = workflow.observe(
            self.desired,
            self.backend.begin,
            self.lightsail,
            self.opts,
            on_placed=self.placed.append,
        )
        result = self._build()
        if saved is not None:
            saved.check(self.doc, result, self.live)
        # Keys an earlier run left in the state go to their store before anything else.
        self.early, moved = key_commands.finish(self.opts, self.doc, self.backend)
        self.stores.add(self.early)
        return self._build() if moved else result  # the plan's entries predate the move

    def _build(self) -> Plan:
        from reconciler.cli import workflow

        result, _ = workflow.build_plan(
            self.desired,
            self.doc,
            self.lightsail,
            self.opts,
            destroy=self.asked.destroy,
            live=self.live,
        )
        return result

    def show(self, result: Plan) -> None:
        from reconciler.output.common import left_out_line, summary_line
        from reconciler.output.text import plan_text

        if self.quiet:
            scoped = f"{left_out_line(result)}\n" if result.left_out else ""
            self.terminal.out(f"{summary_line(result)}\n{scoped}")
        else:
            self.terminal.out(plan_text(result, color=self.terminal.color))

    def refuse_unsafe(self, result: Plan) -> None:
        from reconciler.cli import checks

        result.raise_if_unsafe()
        if not self.asked.destroy:
            self._refuse_policy_errors(checks.manifest_policy(self.desired))

    def _refuse_policy_errors(self, found: list[Finding]) -> None:
        """Apply makes nothing while the manifests break the team's policy (as validate and
        plan report it). Rules on live key pairs (max-key-age) do not block: the apply that
        rotates an old key pair must be able to run."""
        from reconciler.errors import ApplyError

        if found:
            self.terminal.say("Policy:\n" + "".join(f"{f}\n" for f in found))
        errors = sum(1 for f in found if f.severity == "error")
        if errors:
            raise ApplyError(
                f"the manifests break {errors} policy rule(s); nothing was changed",
                hint="fix the manifests, or add a policyExceptions entry with a reason",
            )

    def nothing_to_change(self, result: Plan) -> int:
        """No change to make: what must be recorded still is, and keys left behind are stored."""
        self.record_before_changes()
        self._warn_unencrypted()
        code = self._summarize(result, None) if result.findings else EXIT_OK
        return EXIT_ERROR if self.stores.report() else code

    def confirm(self) -> None:
        verb = "destroy these key pairs" if self.asked.destroy else "apply these changes"
        self.terminal.confirm(verb, auto_approve=self.asked.auto_approve)

    def record_before_changes(self) -> Custody:
        """Under the lock, before any change: accounts given to a single-account state's
        entries, the preventDestroy the manifests now declare for entries already there (an
        entry a change records carries its protection in the journal record that makes it
        durable), and the run's custody with its setting recorded."""
        from reconciler.cli import custody as key_commands
        from reconciler.planning import protect

        if self.placed:
            self.backend.write(self.doc)
            self.terminal.say(f"Recorded the account of {self.placed[0]} key pair(s) in the state.")
        changed = protect.recorded(self.doc.entries, self.desired, self.opts.scope)
        if changed:
            self.doc.entries.update(changed)
            self.backend.write(self.doc)
            self.terminal.say(
                f"Recorded preventDestroy of {len(changed)} key pair(s) in the state."
            )
        return self.stores.add(
            key_commands.prepare(self.opts, self.doc, self.backend, custody=self.early)
        )

    def executor(self, result: Plan, custody: Custody) -> Executor:
        from reconciler.cli import workflow
        from reconciler.output.summary import Progress

        sealer = self._sealer() if result.changes else None
        progress = None if self.quiet else Progress(len(result.changes))
        return workflow.executor(
            self.lightsail,
            self.backend,
            custody,
            self.opts.parallelism,
            sealer=sealer,
            on_progress=progress,
        )

    def _sealer(self) -> crypto.Sealer | None:
        """The run's sealer, made (and a new --encrypt-with recorded) before any change."""
        from reconciler.cli import workflow

        sealer = workflow.sealer_for(self.opts, self.doc)
        if sealer is not None and self.opts.encrypt_with:
            setting = [spec.to_json() for spec in sealer.specs]
            if setting != self.doc.encryption:
                self.doc.encryption = setting
                self.backend.write(self.doc)
        return sealer

    def carry_out(
        self, executor: Executor, result: Plan
    ) -> tuple[ApplyResult, StorageError | None]:
        from reconciler.errors import StorageError

        committed: StorageError | None = None
        try:
            outcome = executor.run(result)
        finally:
            try:
                self.doc = self.backend.commit()
            except StorageError as e:
                committed = e  # the journal keeps every result; reported after the summary
        return outcome, committed

    def report(
        self,
        result: Plan,
        outcome: ApplyResult,
        committed: StorageError | None,
        executor: Executor,
    ) -> int:
        from reconciler.output import summary

        code = self._summarize(result, outcome)
        if self.stores.report():  # once for the run, not per key pair
            code = EXIT_ERROR
        if outcome.unreachable is not None:
            self.terminal.say(summary.unreachable(outcome))
            code = EXIT_ERROR
        stopped = outcome.stopped or committed
        if stopped is not None:
            room = sum(map(executor.change_bytes, outcome.not_started))
            self.terminal.say(summary.stopped(stopped, outcome, room))
            return EXIT_ERROR
        self._warn_unencrypted()
        return code

    def _summarize(self, result: Plan, outcome: ApplyResult | None) -> int:
        from reconciler.output import summary

        self.terminal.say(summary.closing(result, outcome, destroy=self.asked.destroy))
        return EXIT_OK if summary.succeeded(result, outcome) else EXIT_ERROR

    def _warn_unencrypted(self) -> None:
        from reconciler.state import crypto

        doc = self.doc
        count = crypto.unencrypted_count([*doc.entries.values(), *doc.pending.values()])
        warning = crypto.unencrypted_warning(count, self.backend.location)
        if warning is not None:
            self.terminal.say(warning)
