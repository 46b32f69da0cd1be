"""Tag and name characters: the emulator, the schema and validate follow AWS's rules.

AWS takes tag keys and values of Unicode letters, numbers and separators
(spaces) and ``_ . : / = + - @`` (``^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$``): no
newline, tab, escape or other control character. Names follow Lightsail's
``\\w[\\w\\-]*\\w`` (ASCII). The emulator refuses everything else over HTTP, as
``InvalidInputException`` / ``InvalidParameter`` naming the tag; validate refuses
it at its file, line and column, so a manifest that validates is one Lightsail
would take.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.emulator_helpers import error
from tests.helpers import run_cli

REFUSED_TEXT = {
    "newline": "a\nb",
    "carriage-return": "a\rb",
    "tab": "a\tb",
    "escape": "a\x1b[31mb",
    "nel": "a\x85b",
    "bell": "\x07",
    "asterisk": "a*b",
    "zero-width-space": "a\u200bb",
}
TAKEN_TEXT = ["Équipe Nord", "東京-1", "a_b.c:d/e=f+g-h@i", "١٢٣", "no\u00a0break", ""]


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(key_pool=2)) as emu:
        yield emu


@pytest.fixture
def client(shared: Emulator) -> Any:
    return lightsail_client(shared.url)


def assert_invalid(exc: pytest.ExceptionInfo[ClientError], *fragments: str) -> None:
    error_type, code, message, status = error(exc.value)
    assert (error_type, code, status) == ("InvalidInputException", "InvalidParameter", 400)
    assert message.startswith("Invalid value for parameter ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.parametrize("text", REFUSED_TEXT.values(), ids=REFUSED_TEXT.keys())
def test_the_emulator_refuses_a_tag_value_aws_refuses(client: Any, text: str) -> None:
    with pytest.raises(ClientError) as exc:
        client.create_key_pair(keyPairName="bad-value", tags=[{"key": "team", "value": text}])
    assert_invalid(exc, "parameter tags:", "tag 'team' value", "does not allow")
    with pytest.raises(ClientError):
        client.get_key_pair(keyPairName="bad-value")  # nothing was created


@pytest.mark.parametrize("text", REFUSED_TEXT.values(), ids=REFUSED_TEXT.keys())
def test_the_emulator_refuses_a_tag_key_aws_refuses(client: Any, text: str) -> None:
    with pytest.raises(ClientError) as exc:
        client.create_key_pair(keyPairName="bad-key", tags=[{"key": text + "k"}])
    assert_invalid(exc, "parameter tags:", "tag key", "does not allow")


@pytest.mark.parametrize("text", ["a\nb", "a\tb", "\x1b"], ids=["newline", "tab", "escape"])
def test_tag_and_untag_refuse_what_create_refuses(client: Any, text: str) -> None:
    name = "kp-" + str(abs(hash(text)))
    client.create_key_pair(keyPairName=name, tags=[{"key": "team", "value": "web"}])
    with pytest.raises(ClientError) as exc:
        client.tag_resource(resourceName=name, tags=[{"key": "team", "value": text}])
    assert_invalid(exc, "parameter tags:")
    with pytest.raises(ClientError) as exc:
        client.untag_resource(resourceName=name, tagKeys=[text])
    assert_invalid(exc, "parameter tagKeys:")
    tags = client.get_key_pair(keyPairName=name)["keyPair"]["tags"]
    assert tags == [{"key": "team", "value": "web"}]
    client.delete_key_pair(keyPairName=name)


def test_the_emulator_takes_unicode_letters_numbers_and_spaces(client: Any) -> None:
    tags = [{"key": f"k{i} {text}"[:128], "value": text} for i, text in enumerate(TAKEN_TEXT)]
    client.create_key_pair(keyPairName="unicode-tags", tags=tags)
    got = client.get_key_pair(keyPairName="unicode-tags")["keyPair"]["tags"]
    assert sorted(got, key=lambda t: t["key"]) == sorted(tags, key=lambda t: t["key"])
    client.delete_key_pair(keyPairName="unicode-tags")


@pytest.mark.parametrize(
    "name",
    ["web\n", "web\tx", "we\x1bb", "wéb", "web.01", "-web", "w", "x" * 256],
    ids=["newline", "tab", "escape", "non-ascii", "dot", "leading-dash", "short", "long"],
)
def test_the_emulator_refuses_names_outside_lightsail_s_pattern(client: Any, name: str) -> None:
    with pytest.raises(ClientError) as exc:
        client.create_key_pair(keyPairName=name)
    assert_invalid(exc, "parameter keyPairName:")
    with pytest.raises(ClientError) as exc:
        client.tag_resource(resourceName=name, tags=[{"key": "a"}])
    assert_invalid(exc, "parameter resourceName:")


# -- validate -------------------------------------------------------------------------------


def manifest(tmp_path: Path, tags: str) -> Path:
    (tmp_path / ".git").mkdir(exist_ok=True)
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler.lightsail/v1\nkind: KeyPairSet\nregion: us-east-1\n"
        f"keyPairs:\n  - name: web\n    tags:\n{tags}",
        encoding="utf-8",
    )
    return tmp_path


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (
            '      team: "a\\nb"\n',
            "m.yaml:7:7: tag 'team' value 'a\\nb' has characters Lightsail does not allow "
            "(U+000A, a control character;",
        ),
        (
            '      team: "a\\tb"\n',
            "m.yaml:7:7: tag 'team' value 'a\\tb' has characters Lightsail does not allow "
            "(U+0009, a control character;",
        ),
        (
            '      team: "\\e[31mred"\n',
            "m.yaml:7:7: tag 'team' value '\\x1b[31mred' has characters Lightsail does not "
            "allow (U+001B, a control character;",
        ),
        (
            '      "te\\u0085am": x\n',
            "m.yaml:7:7: tag key 'te\\x85am' has characters Lightsail does not allow "
            "(U+0085, a control character;",
        ),
        (
            "      team: |\n        two\n        lines\n",
            "m.yaml:7:7: tag 'team' value 'two\\nlines\\n' has characters Lightsail does not "
            "allow (U+000A, a control character;",
        ),
    ],
    ids=["newline", "tab", "escape", "nel-in-key", "block-scalar"],
)
def test_validate_refuses_a_control_character_in_a_tag_at_its_place(
    tmp_path: Path, tags: str, expected: str
) -> None:
    result = run_cli("validate", "m.yaml", cwd=manifest(tmp_path, tags))
    assert result.returncode == 1
    (line,) = result.stdout.splitlines()
    assert line.startswith(expected), line
    assert line.endswith("[tags]")
    assert "\x1b" not in result.stdout and "\x85" not in result.stdout


def test_validate_takes_the_unicode_tags_lightsail_takes(tmp_path: Path) -> None:
    tags = "".join(f'      "k{i} {text}": "{text}"\n' for i, text in enumerate(TAKEN_TEXT))
    result = run_cli("validate", "m.yaml", cwd=manifest(tmp_path, tags))
    assert result.returncode == 0, result.stdout + result.stderr
