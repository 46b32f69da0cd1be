"""State backends by type: each reads its own settings, from reconciler.yaml and from --state.

The project file hands its ``backend:`` section to the registry, which knows
every backend; a new backend is one settings class and one entry, shown here
with the in-memory store of ``test_state_core``.
"""

from __future__ import annotations

import stat
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import pytest

from reconciler.errors import UsageError
from reconciler.manifests.project import PROJECT_FILE, read_project
from reconciler.model import JournalOp
from reconciler.state import LocalBackend, StateBackend
from reconciler.state.core import StateStore
from reconciler.state.files import IOStats
from reconciler.state.local_settings import LocalSettings
from reconciler.state.registry import BACKENDS, Backend, backend_at, open_state, settings_at
from reconciler.state.s3 import S3Backend
from reconciler.state.s3_settings import S3Settings
from reconciler.state.settings import BackendSettings, Section, StateContext
from tests.state.test_state_core import WEB, MemoryObjects, ThreadLock
from tests.state.test_state_document import make_entry


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # problems name the project file as found from here


def project(directory: Path, text: str) -> BackendSettings | None:
    path = directory / PROJECT_FILE
    path.write_text(textwrap.dedent(text))
    return read_project(path).backend


def problems(directory: Path, text: str) -> list[str]:
    with pytest.raises(UsageError) as caught:
        project(directory, text)
    return [line.strip() for line in str(caught.value).splitlines()[1:]]


TEAM_S3 = S3Settings(
    "team-state",
    "lightsail/reconciler.state.json",
    region="eu-west-1",
    sse="aws:kms",
    kms_key_id="alias/reconciler-state",
    timeout=20.0,
)


# -- from reconciler.yaml -------------------------------------------------------


def test_s3_settings_are_read_from_the_project_file(tmp_path: Path) -> None:
    settings = project(
        tmp_path,
        """\
        backend:
          type: s3
          bucket: team-state
          key: lightsail/reconciler.state.json
          region: eu-west-1
          kmsKeyId: alias/reconciler-state
          timeout: 20
          spool: .reconciler/spool
        """,
    )
    # The spool is under the project file's folder, wherever the command runs.
    assert settings == replace(TEAM_S3, spool=tmp_path / ".reconciler" / "spool")
    assert settings is not None
    assert settings.location == "s3://team-state/lightsail/reconciler.state.json"


def test_local_settings_are_read_from_the_project_file(tmp_path: Path) -> None:
    settings = project(tmp_path, "backend: {type: local, path: state/x.json}\n")
    assert settings == LocalSettings(str(tmp_path / "state" / "x.json"))


def test_a_backend_of_an_unknown_type_is_one_problem_naming_the_types_there_are(
    tmp_path: Path,
) -> None:
    # Its other fields are not judged: no backend says what they should be.
    assert problems(tmp_path, "backend: {type: gcs, bucket: b, prefix: p}\n") == [
        "reconciler.yaml:1:17: backend.type must be 's3' or 'local' [project]"
    ]
    assert problems(tmp_path, "backend:\n  bucket: b\n") == [
        "reconciler.yaml:2:3: backend.type must be 's3' or 'local' [project]"
    ]


def test_each_backend_names_its_own_fields(tmp_path: Path) -> None:
    assert problems(tmp_path, "backend: {type: local, path: x, region: r}\n") == [
        "reconciler.yaml:1:33: unknown field 'backend.region' for a local backend "
        "(expected: path) [project]"
    ]
    assert problems(tmp_path, "backend: {type: s3, bucket: team-state, key: k, path: x}\n") == [
        "reconciler.yaml:1:49: unknown field 'backend.path' for a s3 backend "
        "(expected: bucket, key, region, encrypt, kmsKeyId, timeout, spool) [project]"
    ]


def test_a_timeout_must_be_seconds(tmp_path: Path) -> None:
    for bad in ("0", "-1", "true", "soon"):
        text = f"backend: {{type: s3, bucket: team-state, key: k, timeout: {bad}}}\n"
        assert problems(tmp_path, text) == [
            "reconciler.yaml:1:58: backend.timeout must be a number of seconds > 0 [project]"
        ]


# -- from --state ---------------------------------------------------------------


def test_an_s3_location_gives_s3_settings() -> None:
    assert backend_at("s3://b-1/a/k.json") is S3Settings
    assert settings_at("s3://b-1/a/k.json") == S3Settings("b-1", "a/k.json")


def test_a_path_gives_local_settings_as_it_was_named() -> None:
    assert backend_at("./state/x.json") is LocalSettings
    assert settings_at("./state/x.json") == LocalSettings("./state/x.json")


def test_a_malformed_s3_location_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="is not an S3 state location"):
        settings_at("s3://bucket-only")


def test_another_s3_location_keeps_the_projects_region_encryption_and_spool() -> None:
    configured = replace(TEAM_S3, spool=Path("/spool"))
    assert settings_at("s3://other/k.json", configured) == replace(
        configured, bucket="other", key="k.json"
    )


def test_settings_of_another_backend_do_not_carry_over(tmp_path: Path) -> None:
    assert settings_at("mine.json", TEAM_S3) == LocalSettings("mine.json")
    local = LocalSettings(str(tmp_path / "x.json"))
    assert settings_at("s3://other/k.json", local) == S3Settings("other", "k.json")


# -- opening ----------------------------------------------------------------------


def test_an_s3_location_opens_an_s3_backend_without_a_call() -> None:
    backend = open_state("s3://other/k.json", TEAM_S3, StateContext())
    assert isinstance(backend, S3Backend)
    assert backend.location == "s3://other/k.json"


def test_local_makes_the_folder_of_its_state_only_when_asked(tmp_path: Path) -> None:
    location = str(tmp_path / "deep" / "local.state.json")
    backend = open_state(location, None, StateContext())
    assert isinstance(backend, LocalBackend) and backend.location == location
    assert not (tmp_path / "deep").exists()
    open_state(location, None, StateContext(make_parents=True))
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700


# -- a new backend: one settings class and one entry ------------------------------


@dataclass(frozen=True, slots=True)
class MemorySettings(BackendSettings):
    TYPE: ClassVar[str] = "memory"
    NOUN: ClassVar[str] = "memory state"
    FIELDS: ClassVar[tuple[str, ...]] = ("name",)
    SCHEME: ClassVar[str] = "memory://"
    LOCATION_NAME: ClassVar[str] = "a memory:// location"

    name: str

    @property
    def location(self) -> str:
        return f"memory://{self.name}"

    @classmethod
    def parse(cls, section: Section) -> MemorySettings | None:
        name = section.text("name", required=True)
        return None if name is None else cls(name)

    @classmethod
    def at(cls, location: str, configured: MemorySettings | None) -> MemorySettings:
        return cls(location.removeprefix(cls.SCHEME))


def _open_memory(settings: MemorySettings, context: StateContext) -> StateBackend:
    return StateStore(MemoryObjects(), ThreadLock(), IOStats())


@pytest.fixture
def memory_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, MemorySettings.TYPE, Backend(MemorySettings, _open_memory))


@pytest.mark.usefixtures("memory_backend")
def test_a_registered_backend_is_read_from_the_project_file(tmp_path: Path) -> None:
    assert project(tmp_path, "backend: {type: memory, name: team}\n") == MemorySettings("team")
    assert problems(tmp_path, "backend: {type: memory}\n") == [
        "reconciler.yaml:1:10: backend.name is required for this backend [project]"
    ]
    assert problems(tmp_path, "backend: {type: gcs}\n") == [
        "reconciler.yaml:1:17: backend.type must be 's3', 'local' or 'memory' [project]"
    ]
    # A local path that is another backend's location says which type to use.
    assert problems(tmp_path, "backend: {type: local, path: 'memory://team'}\n") == [
        "reconciler.yaml:1:30: a memory:// location needs type: memory [project]"
    ]


@pytest.mark.usefixtures("memory_backend")
def test_a_registered_backend_opens_from_its_location_and_keeps_the_protocol() -> None:
    assert settings_at("memory://team") == MemorySettings("team")
    backend = open_state("memory://team", None, StateContext())
    with backend.lock("apply"):
        backend.begin()
        journal = backend.journal()
        journal.result(journal.intent(JournalOp.CREATE, WEB), make_entry(WEB))
        assert backend.commit().serial == 1
