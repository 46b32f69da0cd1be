"""The pre-commit hook, run by the real `pre-commit try-repo` on this checkout.

try-repo builds the hook's virtual environment from scratch in a temporary
store (a pip install of the project and its dependencies, from the package
index or pip's cache) on every run, and that time is mostly spent waiting on
the index and the disk: the passing and the failing repository are set up
once per module and both runs go at the same time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
GOOD = """\
apiVersion: reconciler.lightsail/v1
kind: KeyPairSet
region: us-east-1
keyPairs:
  - name: web
"""
BAD = GOOD.replace("name: web", "name: web\n  - name: -api")
PRE_COMMIT = Path(sys.executable).with_name("pre-commit")

pytestmark = [
    pytest.mark.e2e,  # the real pre-commit: `make test-fast` leaves it out
    pytest.mark.skipif(
        shutil.which("git") is None or not (PROJECT / ".pre-commit-hooks.yaml").exists(),
        reason="needs git and the project checkout",
    ),
]


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, timeout=60)


def try_repo(repo: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "PRE_COMMIT_COLOR": "never"}
    return subprocess.Popen(
        [str(PRE_COMMIT), "try-repo", str(PROJECT), "reconciler-validate", "--all-files"],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def hooked_repo(root: Path, manifest: str) -> Path:
    git(root, "init", "-q")
    (root / "manifests").mkdir()
    (root / "manifests" / "web.yaml").write_text(manifest)
    # A changed YAML file outside the manifest folders is not a manifest.
    (root / ".github").mkdir()
    (root / ".github" / "ci.yml").write_text("on: push\njobs: {}\n")
    git(root, "add", "-A")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    home = tmp_path_factory.mktemp("pre-commit-home")
    started = {
        case: try_repo(hooked_repo(tmp_path_factory.mktemp(case), text), home)
        for case, text in (("good", GOOD), ("bad", BAD))
    }
    done = {}
    for case, process in started.items():
        out, _ = process.communicate(timeout=600)
        done[case] = (process.returncode, out)
    return done


def test_a_good_manifest_passes(runs: dict[str, tuple[int, str]]) -> None:
    code, out = runs["good"]
    assert code == 0, out
    assert "reconciler validate" in out and "Passed" in out


def test_a_bad_manifest_fails_with_file_line_column(runs: dict[str, tuple[int, str]]) -> None:
    code, out = runs["bad"]
    assert code == 1, out
    assert "Failed" in out
    assert "manifests/web.yaml:6:11: name '-api' does not match" in out
    assert "ci.yml" not in out
