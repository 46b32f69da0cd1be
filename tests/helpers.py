"""Helpers for end-to-end tests: run the real CLI, find leaked key material."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from reconciler.keys import public_key_of
from tests import forkrun

PEM_BODY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
PEM_BLOCK = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:\\n|\n)(.*?)-----END [A-Z ]*PRIVATE KEY-----", re.S
)

# Everything the CLI printed during the current test; checked for leaks by
# the autouse fixture in conftest.py after every test.
CLI_OUTPUTS: list[str] = []


def run_cli(
    *args: str,
    cwd: Path,
    endpoint: str | None = None,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m reconciler ARGS` as a user would, in ``cwd``.

    The process is forked from a pre-imported server (tests/forkrun.py);
    RECONCILER_TEST_SUBPROCESS=1 starts a fresh interpreter instead.
    """
    full_env = dict(os.environ)
    if endpoint:
        full_env["AWS_ENDPOINT_URL_LIGHTSAIL"] = endpoint
    if env:
        full_env.update(env)
    if os.environ.get("RECONCILER_TEST_SUBPROCESS"):
        result = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=cwd,
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    else:
        result = forkrun.run(args, cwd=cwd, env=full_env, input=input, timeout=timeout)
    if args[:2] not in (("key", "get"),) and "--reveal" not in args:
        CLI_OUTPUTS.extend((result.stdout, result.stderr))
    return result


def held_private_keys(root: Path) -> list[str]:
    """Every PEM private key in the state files (state, backup, journal) under ``root``."""
    pems: list[str] = []
    for path in root.rglob("*"):
        if path.is_file() and ".state.json" in path.name:
            text = path.read_text(errors="replace")
            pems.extend(m.group(1).replace("\\n", "\n") for m in PEM_BLOCK.finditer(text))
    return pems


def leaks_under(root: Path, pems: list[str]) -> list[str]:
    """Files under ``root`` other than state files that hold private key material."""
    secrets = private_key_secrets(pems)
    found: list[str] = []
    for path in root.rglob("*"):
        if not path.is_file() or ".state.json" in path.name or path.stat().st_size > 50_000_000:
            continue
        text = path.read_text(errors="replace")
        if any(secret in text for secret in secrets):
            found.append(str(path))
    return found


def write_manifest(path: Path, region: str, key_pairs: str, defaults: str = "") -> Path:
    """A KeyPairSet document; ``key_pairs`` is the YAML list body."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = f"apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: {region}\n"
    if defaults:
        body += f"defaults:\n  tags: {defaults}\n"
    body += "keyPairs:\n" + textwrap.indent(textwrap.dedent(key_pairs).strip("\n"), "  ") + "\n"
    path.write_text(body)
    return path


def load_state(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def state_entries(path: Path) -> dict[str, dict[str, Any]]:
    return {f"{e['region']}/{e['name']}": e for e in load_state(path)["keyPairs"]}


def wait_for_results(journal: Path, count: int) -> None:
    """Until ``journal`` holds ``count`` results (creates are under way), or 30 s."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_bytes().count(b'"kind":"result"') >= count:
            return
        time.sleep(0.002)


def private_key_secrets(pems: Iterable[str]) -> list[str]:
    """Distinctive fragments of each PEM: any one appearing means a leak."""
    out: list[str] = []
    for pem in pems:
        lines = [line for line in pem.strip().splitlines() if "-----" not in line]
        out.extend(line for line in lines[1:3] if len(line) >= 40)
    return out


def assert_no_leak(texts: Iterable[str], pems: Iterable[str]) -> None:
    secrets = private_key_secrets(pems)
    for text in texts:
        assert not PEM_BODY.search(text), "a private key header was printed"
        for secret in secrets:
            assert secret not in text, "private key material was printed"


@functools.lru_cache(maxsize=4096)
def created_fingerprint(pem: str) -> str:
    """How Lightsail (and the emulator) fingerprint a key it created.

    Cached: loading an RSA key checks it (tens of milliseconds), and the crash
    rounds check the same few pooled keys thousands of times.
    """
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    digest = hashlib.sha1(der).hexdigest()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def same_public_key(pem: str, openssh: str) -> bool:
    return public_key_of(pem) == " ".join(openssh.split()[:2])
