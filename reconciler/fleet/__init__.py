"""Inventory and onboarding: the whole fleet as a report, import --all, adoption."""

from reconciler.fleet.adopt import adoption, recoverable
from reconciler.fleet.inventory import KeyPairRow, Report, build_report
from reconciler.fleet.onboard import ManifestFile, Onboarding, plan_onboarding

__all__ = [
    "KeyPairRow",
    "ManifestFile",
    "Onboarding",
    "Report",
    "adoption",
    "build_report",
    "plan_onboarding",
    "recoverable",
]
