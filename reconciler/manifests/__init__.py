"""Manifests on disk: the YAML walker, the schema and its fast check, reconciler.yaml, accounts."""

from reconciler.manifests.accounts import Account, Accounts
from reconciler.manifests.load import default_root, load_desired
from reconciler.manifests.project import ProjectConfig, find_project, load_project, read_project

__all__ = [
    "Account",
    "Accounts",
    "ProjectConfig",
    "default_root",
    "find_project",
    "load_desired",
    "load_project",
    "read_project",
]
