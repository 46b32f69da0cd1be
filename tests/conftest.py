"""Shared fixtures: a real emulator over HTTP, boto3 clients, a clean AWS env."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from reconciler.emulator import Emulator, EmulatorConfig

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.fixture(autouse=True)
def _clean_aws_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test may reach a real AWS account or read the developer's config."""
    for var in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_LIGHTSAIL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_ENDPOINT_URL_SSM",
        "AWS_ENDPOINT_URL_SECRETS_MANAGER",
        "AWS_ENDPOINT_URL_STS",
        "AWS_REGION",
    ):
        monkeypatch.delenv(var, raising=False)
    empty = tmp_path_factory.mktemp("awsconfig")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty / "credentials"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("NO_COLOR", "1")
    # Retries are still made and checked; their waits are a hundredth as long.
    monkeypatch.setenv("RECONCILER_BACKOFF_SCALE", "0.01")


@pytest.fixture(autouse=True)
def _never_leak_private_keys(tmp_path: Path) -> Iterator[None]:
    """An invariant of every test: no private key the reconciler holds ever
    appears in what the CLI printed (at any verbosity), nor in any other file
    it wrote (plan files, logs), and no traceback reaches a user."""
    from tests import helpers

    helpers.CLI_OUTPUTS.clear()
    yield
    outputs = list(helpers.CLI_OUTPUTS)
    helpers.CLI_OUTPUTS.clear()
    pems = helpers.held_private_keys(tmp_path)
    helpers.assert_no_leak(outputs, pems)
    assert not any("Traceback (most recent call last)" in out for out in outputs)
    assert helpers.leaks_under(tmp_path, pems) == []


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A fresh in-memory emulator on a free loopback port."""
    with Emulator(EmulatorConfig(port=0)) as emu:
        yield emu


@pytest.fixture
def lightsail(emulator: Emulator) -> Any:
    """A plain boto3 Lightsail client pointed at the emulator (us-east-1)."""
    return lightsail_client(emulator.url)


def lightsail_client(url: str, region: str = "us-east-1", **config: Any) -> Any:
    return boto3.client(
        "lightsail",
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
    )


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """moto in server mode (S3, KMS, SSM, Secrets Manager, STS) over real HTTP on
    loopback, for the session. Tests sharing it use names of their own."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_client(service: str, url: str, region: str = "us-east-1") -> Any:
    return boto3.client(
        service,
        region_name=region,
        endpoint_url=url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
