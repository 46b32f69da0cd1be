"""Least-privilege IAM policies for the tool's roles (plan, apply, key-reader), from the project."""

from reconciler.iam.policies import Project, Role, policy

__all__ = ["Project", "Role", "policy"]
