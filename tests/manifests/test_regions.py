"""The regions: botocore's endpoint data for Lightsail, the schema's enum and the tool agree,
and a typo is an error with a suggestion everywhere a region is given."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from reconciler.model import REGIONS
from tests.helpers import run_cli, write_manifest

SCHEMA = Path(__file__).resolve().parents[2] / "reconciler" / "schemas" / "keypairs.schema.json"


def test_the_regions_are_those_botocore_has_a_lightsail_endpoint_for() -> None:
    served = boto3.session.Session().get_available_regions("lightsail")
    assert sorted(REGIONS) == sorted(served)
    schema = json.loads(SCHEMA.read_text())
    assert schema["properties"]["region"]["enum"] == list(REGIONS)


def test_a_mistyped_region_in_a_manifest_suggests_the_one_meant(tmp_path: Path) -> None:
    write_manifest(tmp_path / "m.yaml", "us-east1", "- name: web")
    result = run_cli("validate", "m.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert "m.yaml:3:9: 'us-east1' is not a region Lightsail serves (did you mean us-east-1?)" in (
        result.stdout
    )


@pytest.mark.parametrize("command", [("plan", "m.yaml"), ("drift", "m.yaml"), ("state", "list")])
def test_a_mistyped_region_flag_is_refused_never_no_changes(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    write_manifest(tmp_path / "m.yaml", "us-east-1", "- name: web")
    result = run_cli(*command, "--region", "us-east1", "--local", cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "Error: --region 'us-east1' is not a region Lightsail serves (did you mean us-east-1?)"
        in (result.stderr)
    )
    assert "No changes" not in result.stdout and "No drift" not in result.stdout
