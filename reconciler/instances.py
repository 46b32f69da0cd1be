"""Instances launched with a key pair: plans that would delete or replace it are refused.

An instance keeps the public key of the key pair it was launched with for its
whole life; once the key pair is deleted or replaced, its old private key may
be the only way in. Plans holding a delete or replace read the affected
regions' instances (GetInstances, page by page) and are refused, before
anything changes, when an instance names a key pair they would remove. Plans
without such changes make no instance call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import botocore.exceptions

from reconciler.errors import PlanError
from reconciler.lightsail import Lightsail, translate
from reconciler.model import Address, where
from reconciler.plan import Plan

InUse = Mapping[Address, Sequence[str]]


def users_by_key_pair(lightsail: Lightsail, region: str, account: str = "") -> dict[str, list[str]]:
    """The instances in ``region`` (of ``account``) by the key pair each was launched with."""
    users: dict[str, list[str]] = {}
    token: str | None = None
    try:
        while True:
            kwargs: dict[str, Any] = {"pageToken": token} if token else {}
            page = lightsail.read(region, "get_instances", account, **kwargs)
            for instance in page.get("instances", ()):
                key_name = instance.get("sshKeyName")
                if key_name:
                    users.setdefault(str(key_name), []).append(str(instance.get("name", "")))
            token = page.get("nextPageToken")
            if not token:
                return users
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise translate(e, f"reading instances in {where(account, region)}") from None


def in_use(plan: Plan, lightsail: Lightsail) -> dict[Address, list[str]]:
    """Key pairs the plan would delete or replace that instances were launched with."""
    removing = [change.address for change in plan.changes if change.deletes]
    if not removing:
        return {}
    places = {(a.account, a.region) for a in removing}
    users = {place: users_by_key_pair(lightsail, place[1], place[0]) for place in places}
    found = {
        address: sorted(users[address.account, address.region].get(address.name, []))
        for address in removing
    }
    return {address: names for address, names in sorted(found.items()) if names}


def refuse(used: InUse) -> None:
    """PlanError (nothing changed) when the plan would remove a key pair instances use."""
    if not used:
        return
    address, names = next(iter(used.items()))
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    others = f" (and {len(used) - 1} other key pair(s) in use)" if len(used) > 1 else ""
    raise PlanError(
        f"refusing to delete or replace {address}: {len(names)} instance(s) were launched "
        f"with it ({shown}) and keep its public key{others}; nothing was changed",
        hint="delete or relaunch those instances first, or keep the key pair in the manifests",
    )
