"""validate, policy list and --help start offline: no AWS SDK, emulator or crypto backend imported.

Each runs in a fresh interpreter, through the same entry point as the console
script; the modules loaded afterwards are listed from ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = Path(__file__).parents[1] / "data" / "manifests" / "good"
HEAVY = ("boto3", "botocore", "cryptography", "jsonschema", "reconciler.emulator", "s3transfer")
PROBE = """
import contextlib, io, json, sys
from reconciler.cli.app import main
code = None
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    try:
        code = main(sys.argv[1:])
    except SystemExit as exit:
        code = exit.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def loaded(*args: str, cwd: Path) -> tuple[int, list[str]]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    data = json.loads(result.stdout)
    heavy = [m for m in data["modules"] if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    return data["code"], heavy


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(
        "backend: {type: s3, bucket: team-state, key: k.json}\n"
        "policy: {rules: [{id: min-rsa-bits, bits: 2048}, {id: max-key-age, days: 30}]}\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("validate", str(GOOD)), 0),
        (("validate", "--format", "sarif", str(GOOD)), 0),
        (("validate", str(GOOD.parent / "bad" / "public-key-rsa-1024.yaml")), 1),
        (("policy", "list"), 0),
        (("--help",), 0),
        (("validate", "--help"), 0),
    ],
)
def test_offline_commands_import_no_aws_sdk_emulator_or_crypto(
    project: Path, args: tuple[str, ...], code: int
) -> None:
    assert loaded(*args, cwd=project) == (code, [])


def test_the_probe_would_see_them_when_they_are_needed(project: Path) -> None:
    _, heavy = loaded("emulator", "--help", cwd=project)
    assert "reconciler.emulator" in heavy
