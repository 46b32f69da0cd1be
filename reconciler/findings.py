"""Findings: what validate, policy, plan and drift report, in the one shape every format renders.

A ``Finding`` is a rule broken at a place (a manifest file, line and column,
and the key pair when there is one) with a severity: ``error`` fails the
command, ``warning`` is shown and does not. A ``Report`` gathers the findings
of one command with the metadata of the rules they name (help text for SARIF
and for people). JSON findings follow ``schemas/finding.schema.json``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from reconciler.errors import Problem

Severity = Literal["error", "warning"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning")


@dataclass(frozen=True, slots=True)
class Finding:
    """One rule broken, where, and how much it matters."""

    rule: str
    message: str
    severity: Severity = "error"
    file: str | None = None
    line: int = 1
    column: int = 1
    address: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        if self.file is not None:
            where = f"{self.file}:{self.line}:{self.column}: "
        else:
            where = f"{self.address}: " if self.address else ""
        level = "warning: " if self.severity == "warning" else ""
        return f"{where}{level}{self.message} [{self.rule}]"

    @classmethod
    def from_problem(cls, problem: Problem) -> Finding:
        return cls(problem.rule or "manifest", problem.message, "error", *_place(problem))

    def to_json(self) -> dict[str, Any]:
        """The shape ``schemas/finding.schema.json`` documents."""
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "message": self.message,
            "rule": self.rule,
            "severity": self.severity,
            "address": self.address,
            "hint": self.hint,
        }


def _place(problem: Problem) -> tuple[str, int, int]:
    return problem.file, problem.line, problem.column


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """What a rule checks (``summary``) and how to satisfy it (``help``)."""

    id: str
    summary: str
    help: str


@dataclass
class Report:
    """The findings of one command run, ready for any format."""

    command: str  # validate, plan or drift
    findings: list[Finding] = field(default_factory=list)  # the command's own
    policy: list[Finding] = field(default_factory=list)  # the team's rules
    key_pairs: int = 0
    files: int = 0
    root: Path = field(default_factory=Path.cwd)  # SARIF locations are relative to it
    # Where a finding with no place of its own (an account not read, a key pair only in
    # the state) is shown to tools that need a file: reconciler.yaml, else a manifest.
    anchor: str | None = None

    @property
    def everything(self) -> list[Finding]:
        return [*self.findings, *self.policy]

    @property
    def errors(self) -> int:
        return sum(1 for f in self.everything if f.severity == "error")

    @property
    def policy_errors(self) -> int:
        return sum(1 for f in self.policy if f.severity == "error")

    @property
    def warnings(self) -> int:
        return len(self.everything) - self.errors

    def rules(self) -> dict[str, RuleInfo]:
        """Metadata of every rule the findings name, in order of first use."""
        out: dict[str, RuleInfo] = {}
        for finding in self.everything:
            if finding.rule not in out:
                out[finding.rule] = describe(finding.rule)
        return out

    def relative(self, file: str) -> str:
        """``file`` relative to the repository root, with forward slashes, when inside it."""
        path = Path(file)
        try:
            absolute = path if path.is_absolute() else Path.cwd() / path
            return Path(os.path.normpath(absolute)).relative_to(self.root).as_posix()
        except ValueError:
            return path.as_posix()


_BUILTIN: Mapping[str, tuple[str, str]] = {
    "yaml": (
        "The file must be YAML a manifest can hold.",
        "Fix the syntax at the place shown: plain mappings, lists and scalars; anchors, aliases "
        "and merge keys are fine within their bounds; no custom tags.",
    ),
    "duplicate-key": (
        "A mapping must not write the same key twice.",
        "Remove one of the two entries; YAML would silently keep only the last.",
    ),
    "schema": (
        "The document must match schemas/keypairs.schema.json.",
        "Point your editor at the schema; the message names the field and what it expects.",
    ),
    "name": (
        "Key pair names must follow Lightsail's rules.",
        "2 to 255 characters: letters, digits, '_' and '-', starting and ending with a "
        "letter, digit or '_'.",
    ),
    "tags": (
        "Tags must follow Lightsail's limits.",
        "At most 50 tags per key pair (defaults included), keys up to 128 characters, values up "
        "to 256, no 'aws:' prefix.",
    ),
    "public-key": (
        "publicKey / publicKeyFile must hold one OpenSSH key Lightsail accepts.",
        "Give one 'ssh-rsa' (2048-4096 bits) or 'ssh-ed25519' public key line; key files stay "
        "inside the repository.",
    ),
    "duplicate": (
        "A (region, name) is declared once across all manifests.",
        "Remove or rename one of the two declarations named in the message.",
    ),
    "path": ("Paths given must exist and be readable.", "Pass existing manifest files or folders."),
    "encoding": ("Manifests are UTF-8.", "Save the file as UTF-8."),
    "size": ("Manifests have a size limit.", "Split the file into several smaller ones."),
    "policy-exception": (
        "A policy exception must name a rule and a reason, and must not have expired.",
        "Renew the exception with a new 'expires' date, or fix the key pair and drop it.",
    ),
    "lost-key": (
        "A create went through but its private key never reached the state.",
        "Run `reconciler apply --replace REGION/NAME`, or `reconciler import` to keep it "
        "without a private key.",
    ),
    "conflict": (
        "A declared key pair exists in Lightsail but not in the state.",
        "Adopt it with `reconciler import REGION/NAME` or `adopt: true`, or rename it.",
    ),
    "region-failed": (
        "A region could not be read.",
        "Check credentials and the endpoint, then plan again.",
    ),
    "account-failed": (
        "An account's credentials or permissions failed, so none of its regions was read.",
        "Fix the account's credentials (profile, role, permissions), then plan again; the "
        "other accounts are planned and applied meanwhile.",
    ),
    "deleted": ("A key pair in the state is gone from Lightsail.", "Run `reconciler apply`."),
    "tags-changed": (
        "Tags were changed outside the tool.",
        "Run `reconciler apply` to restore them, or `drift --refresh` to accept them.",
    ),
    "fingerprint-changed": (
        "Key material was replaced outside the tool.",
        "Find out who replaced it; `reconciler apply --replace REGION/NAME` restores control.",
    ),
    "pending": ("The manifests differ from the state.", "Run `reconciler apply`."),
    "key-missing": (
        "The key store no longer holds the private key the state refers to.",
        "Restore the parameter or secret, or `reconciler apply --replace REGION/NAME`.",
    ),
    "key-fingerprint-changed": (
        "The stored private key is labelled with another fingerprint than the state recorded.",
        "Find out who replaced it; `reconciler key get` refuses a key that does not match.",
    ),
    "unused": (
        "No instance was launched with this managed key pair.",
        "Nothing to fix if it is kept for later; remove it from the manifests if nobody needs it.",
    ),
    "unmanaged-key-in-use": (
        "Instances were launched with a key pair the tool does not manage.",
        "Adopt the key pair with `reconciler import`, or relaunch the instances with a "
        "managed one.",
    ),
    "unmanaged": (
        "A key pair exists in Lightsail that no manifest or state names.",
        "Adopt it with `reconciler import`, or delete it by hand if nobody needs it.",
    ),
}


# Rules defined by other layers (the policy's), registered as they are defined:
# a finding names only rules whose module is loaded.
_REGISTERED: dict[str, RuleInfo] = {}


def register(rule: str, summary: str, help: str) -> None:
    """Make ``rule``'s summary and help known to every format (SARIF's rule metadata)."""
    _REGISTERED[rule] = RuleInfo(rule, summary, help)


def describe(rule: str) -> RuleInfo:
    """What is known about ``rule``: built in, or registered (a policy rule)."""
    builtin = _BUILTIN.get(rule)
    if builtin is not None:
        return RuleInfo(rule, *builtin)
    registered = _REGISTERED.get(rule)
    if registered is not None:
        return registered
    return RuleInfo(rule, f"The '{rule}' check.", "See the message for what to change.")


def from_problems(problems: Iterable[Problem]) -> list[Finding]:
    return [Finding.from_problem(p) for p in problems]
