"""The emulator as a process: `python -m reconciler.emulator`, signals, and the AWS CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import ACCESS_KEY, SECRET_KEY, lightsail_client
from tests.emulator_helpers import client

# The whole tool end to end (faults, crashes, a browser, a terminal, real tools):
# `make test-fast` leaves these out.
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
AWS = Path(sys.executable).parent / "aws"


@contextmanager
def emulator_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler.emulator", "--port", "0", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("listening on http://127.0.0.1:"), first
        yield process, first.split()[-1]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def aws_env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "aws-config"
    credentials = tmp_path / "aws-credentials"
    config.write_text("")
    credentials.write_text("")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(credentials),
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def aws(env: dict[str, str], url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AWS), "lightsail", *args, "--endpoint-url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serves_until_a_signal_then_exits_0(signum: signal.Signals) -> None:
    with emulator_process() as (process, url):
        assert lightsail_client(url).get_key_pairs()["keyPairs"] == []
        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        assert process.stderr is not None
        assert "Traceback" not in process.stderr.read()


def test_data_survives_a_process_restart(tmp_path: Path) -> None:
    data = tmp_path / "state" / "emulator.json"
    data.parent.mkdir()
    with emulator_process("--data", str(data), "--key-pool", "1") as (process, url):
        created = lightsail_client(url).create_key_pair(keyPairName="kept")["keyPair"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    with emulator_process("--data", str(data)) as (process, url):
        assert lightsail_client(url).get_key_pair(keyPairName="kept")["keyPair"] == created


def test_fault_and_auth_flags_reach_the_server() -> None:
    flags = ["--throttle-rate", "1", "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY]
    with emulator_process(*flags, "--account-id", "111122223333") as (_, url):
        with pytest.raises(ClientError) as exc:
            client(url).get_key_pairs()
        assert exc.value.response["Error"]["Code"] == "ThrottlingException"


def refused_flags(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m reconciler.emulator ARGS`` expected to stop at once (bad flags)."""
    return subprocess.run(
        [sys.executable, "-m", "reconciler.emulator", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_bad_flags_exit_2_with_a_message() -> None:
    result = refused_flags("--throttle-rate", "1.5")
    assert result.returncode == 2
    assert "--throttle-rate" in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_exits_1_with_a_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "reconciler.emulator", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_the_aws_cli_works_against_it(aws_env: dict[str, str], tmp_path: Path) -> None:
    with emulator_process(
        "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--key-pool", "1"
    ) as (_, url):
        created = aws(aws_env, url, "create-key-pair", "--key-pair-name", "cli-made")
        assert created.returncode == 0, created.stderr
        body = json.loads(created.stdout)
        assert body["keyPair"]["name"] == "cli-made"
        assert body["operation"]["status"] == "Succeeded"

        pem = aws(
            aws_env,
            url,
            "create-key-pair",
            "--key-pair-name",
            "cli-pem",
            "--query",
            "privateKeyBase64",
            "--output",
            "text",
        )
        assert pem.returncode == 0, pem.stderr
        key_file = tmp_path / "key.pem"
        key_file.write_text(pem.stdout)
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)

        listed = aws(aws_env, url, "get-key-pairs")
        assert listed.returncode == 0, listed.stderr
        assert sorted(kp["name"] for kp in json.loads(listed.stdout)["keyPairs"]) == [
            "cli-made",
            "cli-pem",
        ]

        deleted = aws(aws_env, url, "delete-key-pair", "--key-pair-name", "cli-made")
        assert deleted.returncode == 0, deleted.stderr
        assert json.loads(deleted.stdout)["operation"]["operationType"] == "DeleteKeyPair"

        again = aws(aws_env, url, "delete-key-pair", "--key-pair-name", "cli-made")
        assert again.returncode != 0
        assert "NotFoundException" in again.stderr
        assert "The KeyPair does not exist: cli-made" in again.stderr

        bad_secret = aws({**aws_env, "AWS_SECRET_ACCESS_KEY": "wrong"}, url, "get-key-pairs")
        assert bad_secret.returncode != 0
        assert "UnauthenticatedException" in bad_secret.stderr
