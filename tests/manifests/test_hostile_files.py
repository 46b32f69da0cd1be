"""What sits at a path the tool reads is untrusted: FIFOs, sockets, devices, symlinks out.

A FIFO where the state, a lock, a journal, a manifest or reconciler.yaml
should be is refused at once with one line: opening one for reading would
wait for a writer for ever. Every run here is a child process with a
deadline, so a regression fails instead of hanging the suite. A manifest
reached through a symbolic link that leaves the repository is refused as a
``publicKeyFile`` that does, in the same words.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.emulator import Emulator
from tests.conftest import lightsail_client
from tests.emulator_helpers import ed25519_openssh
from tests.helpers import run_cli, write_manifest

DEADLINE = 60  # seconds; a run blocked on a FIFO would never end
STATE = "reconciler.state.json"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    write_manifest(tmp_path / "manifests" / "web.yaml", "us-east-1", "- name: web\n")
    return tmp_path


def cli(cwd: Path, *args: str, endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, cwd=cwd, endpoint=endpoint, timeout=DEADLINE)
    assert "internal error" not in result.stderr.lower(), result.stderr
    assert "Traceback" not in result.stderr
    return result


def error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line of the error (its hint, if any, follows on lines starting with ->)."""
    lines = [line for line in result.stderr.splitlines() if not line.lstrip().startswith("->")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def unix_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A Unix socket to bind at a relative path (a tmp_path may exceed the 108-byte limit)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        yield sock
    finally:
        sock.close()


# -- FIFOs, sockets and devices ---------------------------------------------------------------


def test_a_fifo_at_the_state_path_is_refused_by_plan(project: Path, emulator: Emulator) -> None:
    os.mkfifo(project / STATE)
    result = cli(project, "plan", "manifests", endpoint=emulator.url)
    assert result.returncode == 1
    assert error_line(result) == (
        f"Error: state file {STATE} is a FIFO (named pipe), not a regular file; refusing to use it"
    )


def test_a_fifo_at_the_state_path_is_refused_by_state_list(project: Path) -> None:
    os.mkfifo(project / STATE)
    result = cli(project, "state", "list")
    assert result.returncode == 1
    assert "is a FIFO (named pipe), not a regular file" in error_line(result)


@pytest.mark.parametrize(
    ("suffix", "what", "command"),
    [(".journal", "journal", ("plan",)), (".lock", "lock file", ("apply", "--auto-approve"))],
)
def test_a_fifo_at_the_journal_or_lock_path_is_refused(
    project: Path, emulator: Emulator, suffix: str, what: str, command: tuple[str, ...]
) -> None:
    applied = cli(project, "apply", "manifests", "--auto-approve", endpoint=emulator.url)
    assert applied.returncode == 0, applied.stderr
    os.mkfifo(project / (STATE + suffix))
    result = cli(project, *command, "manifests", endpoint=emulator.url)
    assert result.returncode == 1
    line = error_line(result)
    assert f"{what} {STATE}{suffix} is a FIFO (named pipe), not a regular file" in line


def test_a_socket_at_the_state_path_is_refused(
    project: Path, emulator: Emulator, unix_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project)
    unix_socket.bind(STATE)
    assert stat.S_ISSOCK(os.lstat(project / STATE).st_mode)
    result = cli(project, "plan", "manifests", endpoint=emulator.url)
    assert result.returncode == 1
    assert f"state file {STATE} is a socket, not a regular file" in error_line(result)


def test_a_device_at_the_state_path_is_refused(project: Path, emulator: Emulator) -> None:
    try:  # the null device's numbers; making a device node needs privilege
        os.mknod(project / STATE, stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        pytest.skip("making a device node needs privilege")
    result = cli(project, "plan", "manifests", endpoint=emulator.url)
    assert result.returncode == 1
    assert f"state file {STATE} is a character device, not a regular file" in error_line(result)


def test_a_fifo_named_as_a_manifest_is_refused_by_validate_and_plan(
    project: Path, emulator: Emulator
) -> None:
    os.mkfifo(project / "pipe.yaml")
    result = cli(project, "validate", "pipe.yaml")
    assert result.returncode == 1
    assert (
        result.stdout
        == "pipe.yaml:1:1: is a FIFO (named pipe), not a regular file; not read [path]\n"
    )
    result = cli(project, "plan", "pipe.yaml", endpoint=emulator.url)
    assert result.returncode == 1
    assert (
        "pipe.yaml:1:1: is a FIFO (named pipe), not a regular file" in result.stdout + result.stderr
    )


def test_a_fifo_in_a_manifest_folder_is_refused(project: Path) -> None:
    os.mkfifo(project / "manifests" / "pipe.yaml")
    result = cli(project, "validate", "manifests")
    assert result.returncode == 1
    assert result.stdout == (
        "manifests/pipe.yaml:1:1: is a FIFO (named pipe), not a regular file; not read [path]\n"
    )


def test_a_fifo_as_reconciler_yaml_is_refused(project: Path) -> None:
    os.mkfifo(project / "reconciler.yaml")
    result = cli(project, "validate", "manifests")
    assert result.returncode == 1
    assert "reconciler.yaml:1:1: is a FIFO (named pipe), not a regular file" in result.stderr


def test_a_fifo_as_a_public_key_file_is_refused(project: Path) -> None:
    os.mkfifo(project / "manifests" / "key.pub")
    write_manifest(
        project / "manifests" / "web.yaml", "us-east-1", "- name: web\n  publicKeyFile: key.pub\n"
    )
    result = cli(project, "validate", "manifests")
    assert result.returncode == 1
    assert "publicKeyFile 'key.pub' is a FIFO (named pipe), not a regular file" in result.stdout


def test_a_fifo_named_as_a_saved_plan_is_not_waited_on(project: Path, emulator: Emulator) -> None:
    os.mkfifo(project / "plan.out")
    result = cli(project, "apply", "plan.out", endpoint=emulator.url)
    assert result.returncode == 1
    assert (
        "plan.out:1:1: is a FIFO (named pipe), not a regular file" in result.stdout + result.stderr
    )


# -- one containment rule -------------------------------------------------------------------


@pytest.fixture
def outside(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest and a public key outside the repository, as a symbolic link would reach."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    write_manifest(elsewhere / "evil.yaml", "us-east-1", "- name: smuggled\n")
    key = Path(__file__).parents[1] / "data" / "manifests" / "good" / "keys" / "bastion.pub"
    (elsewhere / "key.pub").write_text(key.read_text())
    return elsewhere


def test_a_manifest_linked_from_outside_the_repository_is_refused_in_a_folder(
    project: Path, outside: Path, emulator: Emulator
) -> None:
    (project / "manifests" / "evil.yaml").symlink_to(outside / "evil.yaml")
    result = cli(project, "validate", "manifests")
    assert result.returncode == 1
    assert result.stdout == (
        f"manifests/evil.yaml:1:1: manifest 'manifests/evil.yaml' resolves to "
        f"{outside / 'evil.yaml'}, outside the repository root {project}; keep manifests "
        "inside the repository [path]\n"
    )
    planned = cli(project, "plan", "manifests", endpoint=emulator.url)
    assert planned.returncode == 1
    assert "smuggled" not in planned.stdout + planned.stderr
    assert "outside the repository root" in planned.stdout + planned.stderr


def test_a_manifest_named_directly_through_a_link_out_of_the_repository_is_refused(
    project: Path, outside: Path
) -> None:
    (project / "evil.yaml").symlink_to(outside / "evil.yaml")
    result = cli(project, "validate", "evil.yaml", "manifests")
    assert result.returncode == 1
    assert result.stdout == (
        f"evil.yaml:1:1: manifest 'evil.yaml' resolves to {outside / 'evil.yaml'}, outside "
        f"the repository root {project}; keep manifests inside the repository [path]\n"
    )


def test_a_linked_folder_out_of_the_repository_is_refused_when_named(
    project: Path, outside: Path
) -> None:
    (project / "more").symlink_to(outside, target_is_directory=True)
    result = cli(project, "validate", "more")
    assert result.returncode == 1
    assert "manifest 'more/evil.yaml' resolves to " in result.stdout
    assert f"outside the repository root {project}" in result.stdout


def test_a_public_key_file_out_of_the_repository_is_refused_in_the_same_words(
    project: Path, outside: Path
) -> None:
    (project / "manifests" / "key.pub").symlink_to(outside / "key.pub")
    write_manifest(
        project / "manifests" / "web.yaml", "us-east-1", "- name: web\n  publicKeyFile: key.pub\n"
    )
    result = cli(project, "validate", "manifests")
    assert result.returncode == 1
    assert result.stdout == (
        f"manifests/web.yaml:6:20: publicKeyFile 'key.pub' resolves to {outside / 'key.pub'}, "
        f"outside the repository root {project}; keep public keys inside the repository "
        "[public-key]\n"
    )


def test_links_that_stay_inside_the_repository_are_followed(project: Path) -> None:
    write_manifest(project / "shared" / "db.yaml", "us-east-1", "- name: db\n")
    (project / "manifests" / "db.yaml").symlink_to(project / "shared" / "db.yaml")
    result = cli(project, "validate", "manifests")
    assert result.returncode == 0, result.stdout


def test_a_folder_named_outside_the_repository_keeps_its_links_inside_itself(
    project: Path, outside: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("other")
    write_manifest(other / "fine.yaml", "us-east-1", "- name: fine\n")
    assert cli(project, "validate", str(other)).returncode == 0
    (other / "evil.yaml").symlink_to(outside / "evil.yaml")
    result = cli(project, "validate", str(other))
    assert result.returncode == 1
    assert f"outside the folder {other} named on the command line" in result.stdout


def test_a_fifo_where_import_all_would_write_a_manifest_is_refused(
    tmp_path: Path, emulator: Emulator
) -> None:
    lightsail_client(emulator.url).import_key_pair(
        keyPairName="found", publicKeyBase64=ed25519_openssh()
    )
    (tmp_path / "manifests").mkdir()
    os.mkfifo(tmp_path / "manifests" / "us-east-1.yaml")
    result = cli(
        tmp_path, "import", "--all", "--write-manifests", "manifests", endpoint=emulator.url
    )
    assert result.returncode == 1
    assert "manifests/us-east-1.yaml is a FIFO (named pipe), not a regular file" in result.stderr
