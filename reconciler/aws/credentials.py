"""One boto3 session per declared account, its credentials resolved once.

A ``profile`` account is that profile's session. A ``roleArn`` account calls
AssumeRole once (from its ``profile`` or the default chain) and keeps the
result in botocore's ``RefreshableCredentials``, whose refresher assumes the
role again shortly before the credentials expire, so a long apply never runs
on an expired session. Failing to assume the role is a ``CredentialsError``
naming the account, raised when the account is first used.

Credentials live only in memory: nothing here logs, prints or returns them
to a caller that could write them out.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import boto3
import botocore.credentials
import botocore.exceptions
import botocore.session

from reconciler.aws import wire
from reconciler.aws.config import client_config
from reconciler.errors import CredentialsError
from reconciler.manifests.accounts import Account

log = logging.getLogger(__name__)

STS_CONFIG = client_config(attempts=5, connect_timeout=10, read_timeout=30)


def session_for(account: Account) -> Any:
    """A boto3 session holding ``account``'s credentials; CredentialsError if they fail."""
    try:
        source = boto3.session.Session(profile_name=account.profile)
        # Resolved now, once: a credential_process that fails, an SSO token that expired
        # or a profile with nothing in it is this account's one failure, not an error in
        # the middle of reading a region.
        source.get_credentials()
    except botocore.exceptions.BotoCoreError as e:
        raise _failure(account, e) from None
    if account.role_arn is None:
        return source
    fetch = _assume_role(account, source)
    try:
        metadata = fetch()
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _failure(account, e) from None
    credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=metadata, refresh_using=fetch, method="assume-role"
    )
    core = botocore.session.Session()
    core._credentials = credentials
    if source.region_name:
        core.set_config_variable("region", source.region_name)
    return boto3.session.Session(botocore_session=core)


def account_id(account: Account, session: Any) -> str:
    """The 12-digit id of ``account`` (its role's, or GetCallerIdentity's)."""
    if account.role_account_id is not None:
        return account.role_account_id
    try:
        sts = session.client(
            "sts", region_name=session.region_name or "us-east-1", config=STS_CONFIG
        )
        return wire.account_number(sts.get_caller_identity())
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        raise _failure(account, e) from None
    except wire.Malformed as e:
        raise CredentialsError(
            f"account {account.alias}: GetCallerIdentity answered outside its model: {e}",
            code=wire.MALFORMED,
        ) from None


def _assume_role(account: Account, source: Any) -> Any:
    """AssumeRole as a botocore refresher: returns the credentials' metadata."""
    sts = source.client("sts", region_name=source.region_name or "us-east-1", config=STS_CONFIG)
    arguments: dict[str, str] = {
        "RoleArn": str(account.role_arn),
        "RoleSessionName": account.session_name,
    }
    if account.external_id is not None:
        arguments["ExternalId"] = account.external_id
    duration = (
        {} if account.duration_seconds is None else {"DurationSeconds": account.duration_seconds}
    )

    def fetch() -> dict[str, str]:
        log.info("assuming %s for account %s", account.role_arn, account.alias)
        issued = sts.assume_role(**arguments, **duration)["Credentials"]
        return {
            "access_key": issued["AccessKeyId"],
            "secret_key": issued["SecretAccessKey"],
            "token": issued["SessionToken"],
            "expiry_time": _iso(issued["Expiration"]),
        }

    return fetch


def _iso(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, int | float):
        return datetime.datetime.fromtimestamp(value, tz=datetime.UTC).isoformat()
    return str(value)


def _failure(account: Account, error: Exception) -> CredentialsError:
    """A credentials failure naming the account and how its credentials are obtained."""
    code = type(error).__name__
    detail = str(error)
    if isinstance(error, botocore.exceptions.ClientError):
        code = str(error.response.get("Error", {}).get("Code", "")) or code
        detail = str(error.response.get("Error", {}).get("Message", "")) or code
    elif isinstance(error, botocore.exceptions.ProfileNotFound):
        code = "ProfileNotFound"
    elif isinstance(error, botocore.exceptions.NoCredentialsError):
        code = "NoCredentials"
        detail = "no AWS credentials found"
    how = account.describe()
    detail = " ".join(detail.split())  # one line, whatever botocore wrote
    return CredentialsError(
        f"account {account.alias}: cannot get credentials ({how}): {detail} ({code})",
        code=code,
        hint=f"fix accounts.{account.alias} in reconciler.yaml or its credentials, "
        "or leave it out with --account",
    )
