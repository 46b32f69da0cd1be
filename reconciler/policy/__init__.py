"""A team's policy: the rules in ``reconciler.yaml``, checked against the desired key pairs."""

#     policy:
#       rules:
#         - id: required-tags
#           severity: error                 # error (the default) or warning
#           keys: {owner: null, env: "^(prod|staging|dev)$"}
#
# ``parse_policy`` reads the section (every problem at its place); ``Policy``
# checks offline (``validate``) and against what Lightsail holds (``plan``,
# ``drift``), applying each key pair's ``policyExceptions``: an exception in
# force silences its rule for that key pair, an expired one is an error naming
# its date. The rules themselves are in ``rules``. Nothing here touches the
# network or prints.

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from reconciler.errors import Problem
from reconciler.findings import SEVERITIES, Finding, Severity
from reconciler.manifests.yamlsafe import Document, JsonPath
from reconciler.model import DesiredKeyPair, DesiredSet, LiveSnapshot, Source
from reconciler.policy.rules import RULES, Hit, OptionError, Rule

__all__ = ["RULES", "Configured", "Policy", "parse_policy"]


@dataclass(frozen=True, slots=True)
class Configured:
    """A rule switched on, with its severity and where it was configured."""

    rule: Rule
    severity: Severity
    source: Source


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Configured, ...] = ()

    def check(self, desired: DesiredSet, *, today: datetime.date) -> list[Finding]:
        """Offline findings: every rule that needs no live data, and expired exceptions."""
        findings = list(_void_exceptions(desired, today))
        for configured in self.rules:
            findings.extend(_findings(configured, configured.rule.check(desired), today))
        return sorted(findings, key=_place)

    def check_live(self, desired: DesiredSet, live: LiveSnapshot, *, now: float) -> list[Finding]:
        """Findings of the rules that need what Lightsail holds (max-key-age)."""
        today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
        findings: list[Finding] = []
        for configured in self.rules:
            hits = configured.rule.check_live(desired, live, now)
            findings.extend(_findings(configured, hits, today))
        return sorted(findings, key=_place)


def _place(finding: Finding) -> tuple[str, int, int]:
    return finding.file or "", finding.line, finding.column


def _findings(
    configured: Configured, hits: Iterable[Hit], today: datetime.date
) -> Iterator[Finding]:
    rule = configured.rule
    for kp, message in hits:
        if _excepted(kp, rule.id, today):
            continue
        yield Finding(
            rule.id,
            message,
            configured.severity,
            kp.source.file,
            kp.source.line,
            kp.source.column,
            str(kp.address),
            rule.help,
        )


def _excepted(kp: DesiredKeyPair, rule: str, today: datetime.date) -> bool:
    return any(
        e.rule == rule and (e.expires is None or e.expires >= today) for e in kp.policy_exceptions
    )


def _void_exceptions(desired: DesiredSet, today: datetime.date) -> Iterator[Finding]:
    """Exceptions that no longer hold: expired, or naming no rule (a typo excuses nothing)."""
    for address in sorted(desired.key_pairs):
        kp = desired.key_pairs[address]
        for e in kp.policy_exceptions:
            if e.rule not in RULES:
                yield Finding(
                    "policy-exception",
                    f"key pair {address}: the exception names no policy rule {e.rule!r} "
                    f"(rules: {', '.join(RULES)})",
                    "error",
                    e.source.file,
                    e.source.line,
                    e.source.column,
                    str(address),
                    "name the rule id as reconciler.yaml's policy.rules does",
                )
            elif e.expires is not None and e.expires < today:
                yield Finding(
                    "policy-exception",
                    f"key pair {address}: the exception from {e.rule} expired on "
                    f"{e.expires.isoformat()} ({e.reason})",
                    "error",
                    e.source.file,
                    e.source.line,
                    e.source.column,
                    str(address),
                    "renew it with a later 'expires', or comply with the rule and remove it",
                )


def parse_policy(document: Document, file: str) -> tuple[Policy, list[Problem]]:
    """The ``policy`` section of a project document, and every problem with it."""
    problems: list[Problem] = []

    def problem(path: JsonPath, message: str) -> None:
        line, column = document.position(path)
        problems.append(Problem(file, line, column, message, "policy"))

    data = document.data
    section = data.get("policy") if isinstance(data, Mapping) else None
    if section is None:
        return Policy(), problems
    if not isinstance(section, Mapping) or set(section) - {"rules"}:
        problem(("policy",), "'policy' must be a mapping with one field, 'rules'")
        return Policy(), problems
    entries = section.get("rules", [])
    if not isinstance(entries, list):
        problem(("policy", "rules"), "policy.rules must be a list of rules, each with an 'id'")
        return Policy(), problems
    configured: dict[str, Configured] = {}
    for index, entry in enumerate(entries):
        at: JsonPath = ("policy", "rules", index)
        rule = _configure(entry, at, document, file, problem)
        if rule is None:
            continue
        first = configured.setdefault(rule.rule.id, rule)
        if first is not rule:
            line = first.source.line
            problem(at, f"rule {rule.rule.id} is configured twice (first at line {line})")
    return Policy(tuple(configured.values())), problems


def _configure(
    entry: Any,
    at: JsonPath,
    document: Document,
    file: str,
    problem: Callable[[JsonPath, str], None],
) -> Configured | None:
    """One entry of policy.rules as a configured rule, or None after reporting why not."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
        problem(at, "each policy rule is a mapping with an 'id'")
        return None
    rule_id = entry["id"]
    kind = RULES.get(rule_id)
    if kind is None:
        problem((*at, "id"), f"unknown policy rule {rule_id!r} (rules: {', '.join(RULES)})")
        return None
    severity = entry.get("severity", "error")
    if severity not in SEVERITIES:
        problem((*at, "severity"), f"severity must be error or warning, not {severity!r}")
        return None
    unknown = [k for k in entry if k not in ("id", "severity", *kind.options)]
    for name in unknown:
        allowed = ", ".join(("severity", *kind.options))
        problem((*at, name), f"rule {rule_id} has no option '{name}' (options: {allowed})")
    options = {k: v for k, v in entry.items() if k in kind.options}
    try:
        rule = kind(options)
    except OptionError as error:
        problem(at if error.option is None else (*at, error.option, *error.within), error.message)
        return None
    if unknown:
        return None
    line, column = document.position(at)
    return Configured(rule, cast(Severity, severity), Source(file, line, column))
