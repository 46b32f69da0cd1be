"""The key stores as the commands use them: made from options, checked, migrated.

``custody_for`` builds the run's ``Custody`` (``--key-store`` wins, then
reconciler.yaml's ``keys:``, then the store the state records); ``prepare``
records a new setting and finishes store writes an earlier run left undone;
``migrate_keys`` is ``state migrate-keys``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from reconciler.aws.lightsail import aws_client_factory
from reconciler.aws.retry import Pacers
from reconciler.cli import workflow
from reconciler.cli.options import Options
from reconciler.custody.custody import Custody, KeyProblem, KeyProblemKind, KeySetting
from reconciler.custody.registry import STATE, StoreContext, check_spec
from reconciler.errors import UsageError
from reconciler.model import Address, StateEntry
from reconciler.output.terminal import TERMINAL
from reconciler.planning.planner import Finding, FindingKind
from reconciler.state import StateBackend, StateDocument, crypto

# The services meter calls per account and region, however many custodies (and
# stores in each) a run opens: one pace per credentials, service and region.
_PACERS: dict[str | None, Pacers] = {}


def setting_for(options: Options, doc: StateDocument) -> KeySetting:
    """``--key-store`` (or reconciler.yaml's ``keys:``), else what the state records."""
    if options.key_store:
        return KeySetting(options.key_store, options.key_store_kms_key_id)
    return KeySetting.from_json(doc.keys)


def custody_for(
    options: Options,
    doc: StateDocument,
    *,
    sealer: crypto.Sealer | None = None,
    setting: KeySetting | None = None,
) -> Custody:
    setting = setting or setting_for(options, doc)
    if options.accounts.several and setting.spec != STATE and "{account}" not in setting.spec:
        raise UsageError(
            f"key store {setting.spec!r} would keep the keys of every account under one "
            "name: with several accounts its location needs {account}",
            hint="e.g. ssm:/lightsail/{account}/{region}/{name}",
        )
    unsealer = workflow.unsealer_for(options)
    context = StoreContext(
        clients=lambda service: aws_client_factory(
            service, options.profile, timeout=options.key_store_timeout
        ),
        seal=None if sealer is None else sealer.seal,
        unseal=unsealer.unseal,
        account_ids=workflow.account_ids(options),
        pacers=_PACERS.setdefault(options.profile, Pacers()),
    )
    return Custody(setting, context, lineage=doc.lineage)


def _recorded(doc: StateDocument) -> KeySetting:
    return KeySetting.from_json(doc.keys)


def finish(options: Options, doc: StateDocument, backend: StateBackend) -> tuple[Custody, bool]:
    """Under the lock, first thing: keys a failed or interrupted store write left in the
    state (a run that died before its store write, a store that was failing) go to the
    store the state records; the custody, and whether any key moved (a plan made
    before then is to be made again). Not to a new ``--key-store``: that waits for
    ``prepare``, after the plan is confirmed."""
    custody = custody_for(options, doc, setting=_recorded(doc))
    return custody, _settle(custody, doc, backend)


def prepare(
    options: Options,
    doc: StateDocument,
    backend: StateBackend,
    *,
    custody: Custody | None = None,
) -> Custody:
    """Under the lock, before any change: the run's custody, its setting recorded in the
    state, and keys a failed or interrupted store write left in the state stored
    (``custody``, from ``finish``, is used again if it is for the same store)."""
    setting = setting_for(options, doc)
    settled = custody is not None and custody.setting == setting
    if custody is None or not settled:
        custody = custody_for(options, doc)
    if custody.setting != _recorded(doc) and not (custody.setting.spec == STATE and not doc.keys):
        doc.keys = custody.setting.to_json()
        backend.write(doc)
    if not settled:
        _settle(custody, doc, backend)
    return custody


def _settle(custody: Custody, doc: StateDocument, backend: StateBackend) -> bool:
    moved = custody.settle(doc)
    if moved:
        workflow.write_without_copies(backend, doc)
        TERMINAL.say(
            f"Stored {len(moved)} private key(s) left in the state in {custody.target.spec}."
        )
    return bool(moved)


class Reports:
    """The custodies of one run, whose store failures are reported once: at the end,
    or on the way out when the run fails before it."""

    def __init__(self, location: str) -> None:
        self.location = location
        self._custodies: list[Custody] = []

    def add(self, custody: Custody) -> Custody:
        if all(c is not custody for c in self._custodies):
            self._custodies.append(custody)
        return custody

    def report(self) -> bool:
        """Write each custody's report once; True if any had something to say."""
        said = [report(custody, self.location) for custody in self._custodies]
        self._custodies = []
        return any(said)

    def __enter__(self) -> Reports:
        return self

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if kind is not None:
            self.report()


def check(
    options: Options,
    doc: StateDocument,
    regions: Collection[str] | None = None,
    *,
    entries: Mapping[Address, StateEntry] | None = None,
) -> list[KeyProblem]:
    """Stored keys missing or relabelled, by metadata only (plan, drift); ``entries``
    narrows the check to a scoped part of the state."""
    entries = doc.entries if entries is None else entries
    checked: Iterable[StateEntry] = entries.values()
    if regions is not None:
        checked = [e for e in checked if e.address.region in regions]
    stored = [e for e in checked if e.private_key_ref is not None]
    if not stored:
        return []
    return custody_for(options, doc).check(stored)


def plan_findings(problems: Iterable[KeyProblem]) -> tuple[Finding, ...]:
    out: list[Finding] = []
    for problem in problems:
        if problem.kind is KeyProblemKind.MISSING:
            out.append(
                Finding(
                    FindingKind.LOST_KEY,
                    problem.address,
                    f"{problem.address}: {problem.detail}",
                    f"restore it, or replace the key pair: "
                    f"`reconciler apply --replace {problem.address}`",
                )
            )
        else:
            out.append(
                Finding(
                    FindingKind.CONFLICT,
                    problem.address,
                    f"{problem.address}: {problem.detail}",
                    "it was replaced outside the tool; `reconciler drift` shows both fingerprints",
                )
            )
    return tuple(out)


def report(custody: Custody, location: str) -> bool:
    """Show what ``custody``'s store could not do this run; True if there was anything."""
    text = custody.summary(location)
    if text:
        TERMINAL.say(text)
    return bool(text)


def migrate_keys(to: str, kms_key_id: str | None, options: Options) -> tuple[int, str]:
    """``state migrate-keys``: every private key moved to ``to``; how many, and the store."""
    check_spec(to, kms_key_id, "--to")
    backend = workflow.open_backend(options)
    target = KeySetting(to, kms_key_id)
    with backend.lock("state migrate-keys", timeout=options.lock_timeout):
        doc = backend.begin()
        sealer = workflow.sealer_for(options, doc) if target.spec == STATE else None
        custody = custody_for(options, doc, sealer=sealer, setting=target)
        moved = custody.migrate(doc, target, backend.write)
        if moved:
            # Once more, so the previous version kept as a backup holds no moved key.
            backend.write(doc)
    return moved, custody.target.spec
