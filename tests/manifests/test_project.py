"""The project file: where it is found, what it may say, and how --state overrides it."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from reconciler.errors import UsageError
from reconciler.manifests.project import (
    PROJECT_FILE,
    ProjectConfig,
    find_project,
    load_project,
    read_project,
    resolve_state,
)
from reconciler.state.local_settings import LocalSettings
from reconciler.state.s3_settings import S3Settings

S3_PROJECT = """\
backend:
  type: s3
  bucket: team-state
  key: lightsail/reconciler.state.json
  region: eu-west-1
  encrypt: aws:kms
  kmsKeyId: alias/reconciler-state
"""


def write(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PROJECT_FILE
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(UsageError) as caught:
        read_project(write(tmp_path, text))
    assert caught.value.hint is not None
    assert "--state" in caught.value.hint
    return str(caught.value)


# -- finding it -----------------------------------------------------------------


def test_no_project_file_means_none(tmp_path: Path) -> None:
    assert load_project(tmp_path) is None


def test_the_working_directory_is_searched_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, S3_PROJECT)
    monkeypatch.chdir(tmp_path)
    project = load_project()
    assert project is not None
    assert project.path == path


def test_parents_are_searched_up_to_the_git_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    path = write(repo, S3_PROJECT)
    deep = repo / "manifests" / "prod"
    deep.mkdir(parents=True)
    assert find_project(deep) == path


def test_the_nearest_project_file_wins(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, S3_PROJECT)
    nearer = write(repo / "team", "backend: {type: local, path: team.json}\n")
    assert find_project(repo / "team") == nearer


def test_nothing_above_the_git_root_is_used(tmp_path: Path) -> None:
    write(tmp_path, S3_PROJECT)
    repo = tmp_path / "repo"
    (repo / "sub").mkdir(parents=True)
    (repo / ".git").write_text("gitdir: elsewhere\n")  # a worktree or submodule
    assert find_project(repo / "sub") is None


def test_outside_a_repository_only_the_working_directory_counts(tmp_path: Path) -> None:
    write(tmp_path, S3_PROJECT)
    (tmp_path / "sub").mkdir()
    assert find_project(tmp_path / "sub") is None
    assert find_project(tmp_path) == tmp_path / PROJECT_FILE


# -- what it says -----------------------------------------------------------------


def test_an_s3_backend_gives_its_url_and_settings(tmp_path: Path) -> None:
    project = read_project(write(tmp_path, S3_PROJECT))
    assert project.backend == S3Settings(
        "team-state",
        "lightsail/reconciler.state.json",
        "eu-west-1",
        "aws:kms",
        "alias/reconciler-state",
    )
    assert project.state_url() == "s3://team-state/lightsail/reconciler.state.json"


@pytest.mark.parametrize(
    ("encrypt", "kms", "sse"),
    [
        (None, None, None),
        ("true", None, "AES256"),
        ("yes", None, "AES256"),
        ("false", None, None),
        ("AES256", None, "AES256"),
        (None, "alias/k", "aws:kms"),
        ("true", "alias/k", "aws:kms"),
    ],
)
def test_encryption_settings(
    tmp_path: Path, encrypt: str | None, kms: str | None, sse: str
) -> None:
    text = "backend:\n  type: s3\n  bucket: team-state\n  key: state.json\n"
    text += f"  encrypt: {encrypt}\n" if encrypt else ""
    text += f"  kmsKeyId: {kms}\n" if kms else ""
    backend = read_project(write(tmp_path, text)).backend
    assert isinstance(backend, S3Settings)
    assert (backend.sse, backend.kms_key_id) == (sse, kms)


def test_a_local_path_is_relative_to_the_project_file(tmp_path: Path) -> None:
    project = read_project(write(tmp_path, "backend:\n  type: local\n  path: state/x.json\n"))
    assert project.backend == LocalSettings(str(tmp_path / "state" / "x.json"))
    assert project.state_url() == str(tmp_path / "state" / "x.json")


# -- what it may not say ---------------------------------------------------------


def test_every_problem_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        """\
        backend:
          type: s3
          bucket: Team State
          key: /state.json
          encrypt: aws:fsx
          path: nope
        lock: true
        """,
    )
    assert message.startswith(f"5 problems in project file {tmp_path / PROJECT_FILE}")
    for expected in (
        "reconciler.yaml:3:11: 'Team State' is not an S3 bucket name",
        "reconciler.yaml:4:8: backend.key must not start or end with '/'",
        "reconciler.yaml:5:12: backend.encrypt must be AES256, aws:kms, true or false",
        "reconciler.yaml:6:3: unknown field 'backend.path' for a s3 backend",
        "reconciler.yaml:7:1: unknown field 'lock' (expected: backend, policy",
    ):
        assert expected in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1:1: a project file needs a 'backend' or a 'policy' section"),
        ("- backend\n", "1:1: a project file needs a 'backend' or a 'policy' section"),
        ("backend: s3://b/k\n", "1:10: 'backend' must be a mapping"),
        ("backend: {type: gcs}\n", "1:17: backend.type must be 's3' or 'local'"),
        ("backend: {bucket: b}\n", "backend.type must be 's3' or 'local'"),
        ("backend: {type: [s3]}\n", "backend.type must be 's3' or 'local'"),
        ("backend: {type: s3, key: k}\n", "backend.bucket is required"),
        ("backend: {type: s3, bucket: team-state}\n", "backend.key is required"),
        ("backend: {type: s3, bucket: team-state, key: 7}\n", "backend.key must be a non-empty"),
        ("backend: {type: local}\n", "backend.path is required"),
        ("backend: {type: local, path: 's3://b/k'}\n", "an s3:// location needs type: s3"),
        (
            "backend: {type: s3, bucket: team-state, key: k, encrypt: AES256, kmsKeyId: a}\n",
            "backend.kmsKeyId needs encrypt: aws:kms, not AES256",
        ),
        (
            "backend: {type: s3, bucket: team-state, key: k, encrypt: false, kmsKeyId: a}\n",
            "backend.kmsKeyId needs encryption",
        ),
        ("backend: {type: s3\n", "invalid YAML"),
        ("backend: {type: local, path: *nowhere}\n", "alias *nowhere names no anchor"),
        ("backend: {type: local, path: x}\nbackend: {type: s3}\n", "duplicate"),
        ("backend: {type: local, path: x}\n---\nbackend: {type: local, path: y}\n", "one YAML"),
    ],
)
def test_invalid_project_files_are_usage_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in problems(tmp_path, text)


def test_a_non_utf8_project_file_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / PROJECT_FILE
    path.write_bytes(b"backend: {type: local, path: \xff}\n")
    with pytest.raises(UsageError, match="not valid UTF-8"):
        read_project(path)


# -- precedence -----------------------------------------------------------------


def test_without_a_project_file_the_flag_is_all_there_is() -> None:
    assert resolve_state(None, None) == (None, None)
    assert resolve_state("s3://b-1/k", None) == ("s3://b-1/k", None)


def test_the_project_file_names_the_state_when_no_flag_does(tmp_path: Path) -> None:
    project = read_project(write(tmp_path, S3_PROJECT))
    assert resolve_state(None, project) == (project.state_url(), project.backend)


def test_state_flag_overrides_the_project_files_location(tmp_path: Path) -> None:
    # Its settings go along: the registry applies them to a location of their backend
    # (see test_state_registry).
    project = read_project(write(tmp_path, S3_PROJECT))
    assert resolve_state("s3://other/k.json", project) == ("s3://other/k.json", project.backend)
    assert resolve_state("mine.json", project) == ("mine.json", project.backend)
    local = ProjectConfig(tmp_path / PROJECT_FILE, LocalSettings(str(tmp_path / "x.json")))
    assert resolve_state("s3://other/k.json", local) == ("s3://other/k.json", local.backend)


def test_problems_name_the_file_as_found_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "backend: {type: local, path: ''}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as caught:
        load_project()
    assert str(caught.value) == (
        "a problem in project file reconciler.yaml:\n"
        "  reconciler.yaml:1:30: backend.path must be a non-empty string [project]"
    )
