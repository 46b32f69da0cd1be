"""Manifests on disk -> the desired model, or every problem with them at once.

Expands files and folders, reads each file safely (yamlsafe), checks every
document against the JSON schema (schema) and Lightsail's own rules (names,
tags, public keys, regions, one declaration per ``(region, name)``), and
builds a ``DesiredSet``. Every problem in every file is collected before one
``ManifestError`` is raised; nothing here prints or touches the network.
"""

from __future__ import annotations

import datetime
import logging
import os
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler import keys, model
from reconciler.errors import ManifestError, Problem
from reconciler.manifests import schema
from reconciler.manifests.accounts import Accounts
from reconciler.manifests.yamlsafe import (
    MAX_PROBLEMS_PER_FILE,
    Document,
    JsonPath,
    clip,
    parse_documents,
    read_text,
)
from reconciler.regular import NotRegularFile, read_regular

log = logging.getLogger(__name__)

PROJECT_FILE = "reconciler.yaml"
MANIFEST_SUFFIXES = (".yaml", ".yml")
MAX_PUBLIC_KEY_FILE_BYTES = 16 * 1024

_TAG_VALUE_TYPES = (str, type(None))


def load_desired(
    paths: Sequence[str | os.PathLike[str]],
    *,
    root: Path | None = None,
    accounts: Accounts | None = None,
) -> model.DesiredSet:
    """Read, validate and model the manifests at ``paths`` (files or folders).

    ``root`` is the repository root that ``publicKeyFile`` paths must stay
    inside (default: see ``default_root``). ``accounts`` are those the project
    declares: a document's ``account`` must name one of them, and with several
    it must say which (its addresses then carry the account). Raises
    ManifestError carrying every problem found, sorted by file, line and column.
    """
    reader = _ManifestReader(default_root(paths) if root is None else root, accounts)
    desired = reader.read(paths)
    if reader.problems:
        problems = sorted(reader.problems, key=lambda p: (p.file, p.line, p.column))
        raise ManifestError(problems)
    return desired


def default_root(paths: Sequence[str | os.PathLike[str]]) -> Path:
    """The git work tree holding the first manifest path, else the current directory.

    Manifests given from outside their repository (``validate /src/repo``)
    still resolve ``publicKeyFile`` against that repository.
    """
    cwd = Path.cwd()
    if not paths:
        return cwd
    start = (cwd / Path(paths[0])).resolve()
    for folder in (start, *start.parents):
        if (folder / ".git").exists():
            return folder
    return cwd


def validate_paths(
    paths: Sequence[str | os.PathLike[str]],
    *,
    root: Path | None = None,
    accounts: Accounts | None = None,
) -> list[Problem]:
    """Every problem with the manifests at ``paths``; empty when they are valid."""
    try:
        load_desired(paths, root=root, accounts=accounts)
    except ManifestError as error:
        return error.problems
    return []


def manifest_files(
    paths: Iterable[str | os.PathLike[str]], *, root: Path | None = None
) -> tuple[list[tuple[Path, str]], list[Problem]]:
    """The files to read, as (path, name used in messages), and problems with the arguments.

    Folders are searched recursively for *.yaml / *.yml in sorted order,
    skipping hidden files and folders (``.git``, ``.github``) and not following
    symlinked folders. A file reached twice is read once. With ``root`` (the
    repository root), a file that resolves outside it is refused, as a
    ``publicKeyFile`` is: a symbolic link in a pull request must not make the
    tool read what lies elsewhere on the machine. An argument named outside the
    root is the user's own choice; what its folder holds must stay inside it.
    """
    files: list[tuple[Path, str]] = []
    problems: list[Problem] = []
    seen: set[str] = set()

    def add(path: Path, name: str, container: Path | None, where: str) -> None:
        real = os.path.realpath(path)
        if container is not None and not Path(real).is_relative_to(container):
            message = outside(f"manifest {name!r}", Path(real), where, "manifests")
            problems.append(Problem(name, 1, 1, message, "path"))
            return
        if real not in seen:
            seen.add(real)
            files.append((path, name))

    for arg in paths:
        name = os.fspath(arg)
        path = Path(name)
        try:
            info = path.stat()
        except FileNotFoundError:
            problems.append(Problem(name, 1, 1, "no such file or folder", "path"))
            continue
        except (OSError, ValueError) as error:
            problems.append(Problem(name, 1, 1, f"cannot read: {error}", "path"))
            continue
        container, where = _container(path, stat.S_ISDIR(info.st_mode), root)
        if not stat.S_ISDIR(info.st_mode):
            add(path, name, container, where)
            continue
        found = _walk_folder(path, name, problems)
        if not found:
            message = f"folder holds no {' or '.join('*' + s for s in MANIFEST_SUFFIXES)} files"
            problems.append(Problem(name, 1, 1, message, "path"))
        for relative in found:
            add(path / relative, os.path.join(name, relative), container, where)
    return files, problems


def _container(path: Path, folder: bool, root: Path | None) -> tuple[Path | None, str]:
    """What the manifests of an argument must resolve inside, and its name in messages:
    the repository root for an argument inside it; for a folder named outside it, that
    folder; nothing for a file named outside it (it is what the user named)."""
    if root is None:
        return None, ""
    if Path(os.path.abspath(path)).is_relative_to(root):
        return root, f"the repository root {root}"
    if folder:
        real = Path(os.path.realpath(path))
        return real, f"the folder {real} named on the command line"
    return None, ""


def outside(what: str, resolved: Path, where: str, things: str) -> str:
    """The one wording of the containment rule, for manifests and public key files alike."""
    return f"{what} resolves to {resolved}, outside {where}; keep {things} inside the repository"


def _walk_folder(folder: Path, name: str, problems: list[Problem]) -> list[str]:
    def failed(error: OSError) -> None:
        where = error.filename or name
        problems.append(Problem(str(where), 1, 1, f"cannot read folder: {error.strerror}", "path"))

    found: list[tuple[tuple[str, ...], str]] = []
    for directory, subdirs, filenames in os.walk(folder, onerror=failed):
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        relative_dir = os.path.relpath(directory, folder)
        for filename in filenames:
            if filename.startswith(".") or not filename.lower().endswith(MANIFEST_SUFFIXES):
                continue
            if filename == PROJECT_FILE:  # the project file beside the manifests is not one
                continue
            relative = os.path.normpath(os.path.join(relative_dir, filename))
            found.append((Path(relative).parts, relative))
    return [relative for _, relative in sorted(found)]


@dataclass(frozen=True, slots=True)
class _Context:
    """What every key pair of one document shares."""

    document: Document
    path: Path
    file: str
    default_tags: Mapping[str, str | None]
    region: str | None  # None when the document's region is invalid
    default_rotation: model.Rotation | None = None
    account: str = ""  # the account part of its addresses


class _FileFull(Exception):
    """The current file has reported as many problems as are useful."""


class _ManifestReader:
    """Collects problems and key pairs across every file of one run."""

    def __init__(self, root: Path, accounts: Accounts | None = None) -> None:
        self.root = root.resolve()
        self.accounts = accounts or Accounts()
        self.problems: list[Problem] = []
        self.key_pairs: dict[model.Address, model.DesiredKeyPair] = {}
        self.declared: dict[model.Address, model.Source] = {}
        self._tag_cache: dict[tuple[str, str | None], list[str]] = {}
        self._key_files: dict[Path, tuple[str | None, str | None]] = {}
        self._budget = MAX_PROBLEMS_PER_FILE  # problems the current file may still add
        self._alias_notes: dict[tuple[int, int], str] = {}  # of the current document

    def read(self, paths: Sequence[str | os.PathLike[str]]) -> model.DesiredSet:
        files, problems = manifest_files(paths, root=self.root)
        self.problems.extend(problems)
        for path, name in files:
            text, problems = read_text(path, name)
            self.problems.extend(problems)
            if text is None:
                continue
            documents, problems = parse_documents(text, name)
            self.problems.extend(problems)
            self._budget = MAX_PROBLEMS_PER_FILE - len(problems)
            try:
                for document in documents:
                    if self._budget <= 0:
                        break  # parse_documents already said it stopped
                    self._document(document, path, name)
            except _FileFull:
                pass
            log.debug("read %s: %d document(s)", name, len(documents))
        return model.DesiredSet(self.key_pairs, tuple(name for _, name in files))

    def _add(self, problems: list[Problem]) -> None:
        """Record problems of the current file; past the budget, stop checking it."""
        if self._alias_notes:
            problems = [self._with_alias_note(p) for p in problems]
        if len(problems) >= self._budget:
            self.problems.extend(problems[: self._budget])
            last = self.problems[-1]
            message = f"more than {MAX_PROBLEMS_PER_FILE} problems; stopped checking this file"
            self.problems.append(Problem(last.file, last.line, last.column, message, last.rule))
            raise _FileFull
        self.problems.extend(problems)
        self._budget -= len(problems)

    def _with_alias_note(self, problem: Problem) -> Problem:
        """A problem at a place an alias was used also names the anchor it came from."""
        note = self._alias_notes.get((problem.line, problem.column))
        if note is None:
            return problem
        message = clip(problem.message + note)
        return Problem(problem.file, problem.line, problem.column, message, problem.rule)

    def _report(self, file: str, position: tuple[int, int], message: str, rule: str) -> None:
        self._add([Problem(file, position[0], position[1], clip(message), rule)])

    def _document(self, document: Document, path: Path, file: str) -> None:
        self._alias_notes = document.alias_notes() if document.aliases else {}
        self._add(schema.schema_problems(document, file, limit=self._budget))
        data = document.data
        if not schema.is_keypair_set(data):
            return
        region = data.get("region")
        region_ok = isinstance(region, str) and region in model.REGIONS
        defaults = data.get("defaults")
        default_tags: dict[str, str | None] = {}
        if isinstance(defaults, dict) and "tags" in defaults:
            default_tags = self._tags(document, file, ("defaults", "tags"), defaults["tags"])
        if default_tags and len(default_tags) > model.MAX_TAGS:
            self._report(
                file,
                document.position(("defaults", "tags")),
                f"defaults.tags has {len(default_tags)} tags; "
                f"Lightsail allows at most {model.MAX_TAGS} per key pair",
                "tags",
            )
        items = data.get("keyPairs")
        if not isinstance(items, list):
            return
        account = self._account(document, file, data.get("account"))
        context = _Context(
            document,
            path,
            file,
            default_tags,
            region if region_ok else None,
            _rotation(defaults.get("rotate")) if isinstance(defaults, dict) else None,
            account or "",
        )
        for index, item in enumerate(items):
            if isinstance(item, dict):
                self._key_pair(context, ("keyPairs", index), item)

    def _account(self, document: Document, file: str, alias: Any) -> str | None:
        """The account part of the document's addresses; reports an unknown or missing alias."""
        declared = self.accounts.by_alias
        if alias is None:
            if self.accounts.several:
                names = ", ".join(sorted(declared))
                self._report(
                    file,
                    document.key_position(("region",)),
                    f"reconciler.yaml declares several accounts ({names}): "
                    "say which with account: ALIAS",
                    "account",
                )
            return None
        if not isinstance(alias, str) or alias in declared:
            return self.accounts.address_account(alias) if isinstance(alias, str) else None
        names = ", ".join(sorted(declared)) or "none"
        self._report(
            file,
            document.position(("account",)),
            f"account {alias!r} is not declared in reconciler.yaml (declared: {names})",
            "account",
        )
        return None

    def _tags(
        self, document: Document, file: str, at: JsonPath, tags: Any
    ) -> dict[str, str | None]:
        """The well-typed tags of a ``tags`` mapping; reports the Lightsail rules they break.

        Entries of the wrong type are left out: the schema reports them.
        """
        if not isinstance(tags, dict):
            return {}
        clean: dict[str, str | None] = {}
        for key, value in tags.items():
            if not isinstance(value, _TAG_VALUE_TYPES):
                continue
            clean[key] = value
            messages = self._tag_cache.get((key, value))
            if messages is None:
                messages = self._tag_cache[(key, value)] = model.tag_problems({key: value})
            for message in messages:
                self._report(file, document.key_position((*at, key)), message, "tags")
        return clean

    def _key_pair(self, context: _Context, at: JsonPath, item: Mapping[str, Any]) -> None:
        document, file, region = context.document, context.file, context.region
        name = item.get("name")
        name_ok = isinstance(name, str)
        if isinstance(name, str) and (problem := model.name_problem(name)):
            name_ok = False
            self._report(file, document.position((*at, "name")), problem, "name")
        tags = dict(context.default_tags)
        if "tags" in item:
            tags.update(self._tags(document, file, (*at, "tags"), item["tags"]))
            if len(tags) > model.MAX_TAGS >= len(context.default_tags):
                self._report(
                    file,
                    document.position((*at, "tags")),
                    f"{len(tags)} tags after merging defaults.tags; "
                    f"Lightsail allows at most {model.MAX_TAGS} per key pair",
                    "tags",
                )
        public_key = None
        for field in ("publicKey", "publicKeyFile"):
            value = item.get(field)
            if not isinstance(value, str):
                continue
            if field == "publicKey":
                public_key, problem = _normalize(value, field)
            else:
                public_key, problem = self._key_file(context.path, value)
            if problem:
                self._report(file, document.position((*at, field)), problem, "public-key")
            break  # giving both is a schema error; check the first only
        line, column = document.position(at)
        source = model.Source(file, line, column)
        if region is None or not isinstance(name, str) or not name_ok:
            return
        address = model.Address(region, name, context.account)
        earlier = self.declared.setdefault(address, source)
        if earlier is not source:
            self._report(
                file,
                (line, column),
                f"key pair {address} is declared twice: here and at {earlier}",
                "duplicate",
            )
            return
        # An imported key is rotated by changing it, never by importing it again.
        default_rotation = None if public_key is not None else context.default_rotation
        # Built even when this entry has problems: the set is only returned when none were found.
        self.key_pairs[address] = model.DesiredKeyPair(
            address=address,
            tags=tags,
            source=source,
            public_key=public_key,
            generate_local=item.get("generate") == "local",
            prevent_destroy=item.get("preventDestroy") is True,
            adopt=item.get("adopt") is True,
            policy_exceptions=self._exceptions(document, file, (*at, "policyExceptions"), item),
            rotation=_rotation(item.get("rotate")) if "rotate" in item else default_rotation,
        )

    def _exceptions(
        self, document: Document, file: str, at: JsonPath, item: Mapping[str, Any]
    ) -> tuple[model.PolicyException, ...]:
        """The well-formed ``policyExceptions`` of a key pair; the schema reports the others."""
        entries = item.get("policyExceptions")
        if not isinstance(entries, list):
            return ()
        out: list[model.PolicyException] = []
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                continue
            rule, reason, expires = entry.get("rule"), entry.get("reason"), entry.get("expires")
            if not isinstance(rule, str) or not isinstance(reason, str):
                continue
            day = _day(expires)
            if expires is not None and day is None:
                self._report(
                    file,
                    document.position((*at, index, "expires")),
                    f"expires must be a date, YYYY-MM-DD, not {clip(repr(expires))}",
                    "policy-exception",
                )
                continue
            line, column = document.position((*at, index))
            out.append(model.PolicyException(rule, reason, day, model.Source(file, line, column)))
        return tuple(out)

    def _key_file(self, manifest: Path, value: str) -> tuple[str | None, str | None]:
        """The normalised key in a publicKeyFile, or why it cannot be used."""
        try:
            resolved = (manifest.parent / value).resolve()
        except (OSError, RuntimeError, ValueError) as error:
            return None, f"publicKeyFile {value!r} cannot be resolved: {error}"
        if not resolved.is_relative_to(self.root):
            where = f"the repository root {self.root}"
            return None, outside(f"publicKeyFile {value!r}", resolved, where, "public keys")
        cached = self._key_files.get(resolved)
        if cached is None:
            cached = self._key_files[resolved] = _read_key_file(resolved, value)
        return cached


def _rotation(value: Any) -> model.Rotation | None:
    """A well-formed ``rotate`` mapping as a Rotation; the schema reports the others."""
    if not isinstance(value, dict):
        return None
    after = model.parse_duration(value["after"]) if isinstance(value.get("after"), str) else None
    keep = value.get("keep", 0)
    if after is None or isinstance(keep, bool) or not isinstance(keep, int | float):
        return None
    if keep < 0 or not float(keep).is_integer():
        return None
    return model.Rotation(after, int(keep))


def _day(value: Any) -> datetime.date | None:
    """A date from YAML: a date, or an ISO YYYY-MM-DD string; None if it is neither."""
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _read_key_file(resolved: Path, value: str) -> tuple[str | None, str | None]:
    try:
        data, size = read_regular(resolved, MAX_PUBLIC_KEY_FILE_BYTES)
        if size > MAX_PUBLIC_KEY_FILE_BYTES:
            return None, (
                f"publicKeyFile {value!r} is {size} bytes; an OpenSSH public key file "
                f"is at most {MAX_PUBLIC_KEY_FILE_BYTES} bytes"
            )
    except NotRegularFile as error:
        return None, f"publicKeyFile {value!r} is {error.kind}, not a regular file"
    except FileNotFoundError:
        return None, f"publicKeyFile {value!r} does not exist (looked for {resolved})"
    except OSError as error:
        return None, f"publicKeyFile {value!r} cannot be read: {error.strerror or error}"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"publicKeyFile {value!r} is not UTF-8 text"
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return _normalize("\n".join(lines), f"publicKeyFile {value!r}")


def _normalize(text: str, what: str) -> tuple[str | None, str | None]:
    """The normalised OpenSSH public key in ``text``, or what is wrong with it."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) != 1:
        count = "no" if not lines else str(len(lines))
        return None, f"{what} must hold exactly one OpenSSH public key line; it holds {count}"
    try:
        return keys.normalize_public_key(lines[0]), None
    except keys.PublicKeyError as error:
        return None, f"{what}: {error}"
