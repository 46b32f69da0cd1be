"""Names, tags, TagResource and UntagResource on the emulator, through boto3.

botocore checks only required members and types on the client, so every
pattern and limit here is enforced (or not) by the emulator itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from reconciler.emulator import Emulator, EmulatorConfig
from tests.conftest import lightsail_client
from tests.emulator_helpers import error


@pytest.fixture(scope="module")
def shared() -> Iterator[Emulator]:
    # Many creates, few assertions about key material: a small key pool keeps it fast.
    with Emulator(EmulatorConfig(key_pool=2)) as emu:
        yield emu


@pytest.fixture
def client(shared: Emulator) -> Any:
    return lightsail_client(shared.url)


@pytest.fixture
def kp(client: Any, request: pytest.FixtureRequest) -> str:
    """A fresh key pair with tags {team: web, flag: (no value)}; its name."""
    name = "kp-" + "".join(c if c.isalnum() else "-" for c in request.node.name)[-60:].strip("-")
    client.create_key_pair(
        keyPairName=name, tags=[{"key": "team", "value": "web"}, {"key": "flag"}]
    )
    return name


def tags_of(client: Any, name: str) -> list[dict[str, str]]:
    return list(client.get_key_pair(keyPairName=name)["keyPair"]["tags"])


def assert_invalid(exc: pytest.ExceptionInfo[ClientError], *fragments: str) -> None:
    error_type, code, message, status = error(exc.value)
    assert (error_type, code, status) == ("InvalidInputException", "InvalidParameter", 400)
    for fragment in fragments:
        assert fragment in message


# -- names ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["a", "-ab", "ab-", "a.b", "a b", "ab!", "héllo", "", "x" * 256],
    ids=[
        "one-char",
        "leading-dash",
        "trailing-dash",
        "dot",
        "space",
        "bang",
        "non-ascii",
        "empty",
        "256",
    ],
)
def test_names_outside_the_pattern_or_length_are_invalid(client: Any, name: str) -> None:
    for operation, kwargs in (
        ("create_key_pair", {"keyPairName": name}),
        ("get_key_pair", {"keyPairName": name}),
        ("delete_key_pair", {"keyPairName": name}),
        ("tag_resource", {"resourceName": name, "tags": []}),
    ):
        with pytest.raises(ClientError) as exc:
            getattr(client, operation)(**kwargs)
        assert_invalid(exc, next(iter(kwargs)))


@pytest.mark.parametrize("name", ["ab", "_x_", "a-b_c-9", "Z" * 255, "__"])
def test_names_inside_the_pattern_are_accepted(client: Any, name: str) -> None:
    client.create_key_pair(keyPairName=name)
    assert client.get_key_pair(keyPairName=name)["keyPair"]["name"] == name
    client.delete_key_pair(keyPairName=name)


def test_an_invalid_name_message_names_the_value(client: Any) -> None:
    with pytest.raises(ClientError) as exc:
        client.create_key_pair(keyPairName="bad.name")
    assert_invalid(exc, "keyPairName", "bad.name")


# -- tags on create ------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "fragment"),
    [
        ([{"key": f"k{i}"} for i in range(51)], "51 tags"),
        ([{"key": "k" * 129}], "k" * 20),
        ([{"key": "long", "value": "v" * 257}], "'long'"),
        ([{"key": "aws:owner", "value": "me"}], "aws:owner"),
        ([{"key": "AWS:Owner", "value": "me"}], "AWS:Owner"),
        ([{"key": "owner", "value": "aws:me"}], "'owner'"),
        ([{"key": "a*b", "value": "x"}], "a*b"),
        ([{"key": "ok", "value": "semi;colon"}], "semi;colon"),
        ([{"key": ""}], "empty"),
        ([{"key": "dup", "value": "1"}, {"key": "dup", "value": "2"}], "dup"),
        ([{"value": "no key"}], "key"),
    ],
    ids=[
        "51-tags",
        "key-129",
        "value-257",
        "aws-key",
        "AWS-key",
        "aws-value",
        "bad-key-char",
        "bad-value-char",
        "empty-key",
        "duplicate-key",
        "no-key",
    ],
)
def test_tags_beyond_the_limits_are_invalid(
    shared: Emulator, client: Any, tags: list[dict[str, str]], fragment: str
) -> None:
    with pytest.raises(ClientError) as exc:
        client.create_key_pair(keyPairName="tagged", tags=tags)
    assert_invalid(exc, "tags", fragment)
    assert shared.store.get("us-east-1", "tagged") is None


def test_tags_at_the_limits_are_accepted(client: Any) -> None:
    tags = [{"key": f"key-{i:02d}", "value": f"v{i}"} for i in range(48)]
    tags += [{"key": "k" * 128, "value": "v" * 256}, {"key": "chars +-=._:/@ ok", "value": ""}]
    client.create_key_pair(keyPairName="at-limits", tags=tags)
    assert tags_of(client, "at-limits") == tags
    client.delete_key_pair(keyPairName="at-limits")


def test_a_key_only_tag_differs_from_an_empty_value(client: Any) -> None:
    client.create_key_pair(
        keyPairName="kinds", tags=[{"key": "none"}, {"key": "empty", "value": ""}]
    )
    assert tags_of(client, "kinds") == [{"key": "none"}, {"key": "empty", "value": ""}]
    client.delete_key_pair(keyPairName="kinds")


# -- TagResource / UntagResource -----------------------------------------------


def test_tag_resource_merges_and_overwrites(client: Any, kp: str) -> None:
    out = client.tag_resource(
        resourceName=kp, tags=[{"key": "team", "value": "ops"}, {"key": "env", "value": "prod"}]
    )
    [operation] = out["operations"]
    assert operation["operationType"] == "TagResource"
    assert operation["resourceName"] == kp
    assert operation["resourceType"] == "KeyPair"
    assert operation["status"] == "Succeeded" and operation["isTerminal"] is True
    assert tags_of(client, kp) == [
        {"key": "team", "value": "ops"},
        {"key": "flag"},
        {"key": "env", "value": "prod"},
    ]


def test_tag_resource_can_drop_a_value_and_set_one(client: Any, kp: str) -> None:
    client.tag_resource(resourceName=kp, tags=[{"key": "team"}, {"key": "flag", "value": "on"}])
    assert tags_of(client, kp) == [{"key": "team"}, {"key": "flag", "value": "on"}]


def test_untag_resource_removes_keys_and_ignores_absent_ones(client: Any, kp: str) -> None:
    out = client.untag_resource(resourceName=kp, tagKeys=["flag", "never-there"])
    [operation] = out["operations"]
    assert operation["operationType"] == "UntagResource"
    assert tags_of(client, kp) == [{"key": "team", "value": "web"}]


def test_tagging_by_arn(client: Any, kp: str) -> None:
    arn = client.get_key_pair(keyPairName=kp)["keyPair"]["arn"]
    client.tag_resource(resourceName=kp, resourceArn=arn, tags=[{"key": "by", "value": "arn"}])
    client.untag_resource(resourceName=kp, resourceArn=arn, tagKeys=["team"])
    assert tags_of(client, kp) == [{"key": "flag"}, {"key": "by", "value": "arn"}]


def test_an_arn_that_names_no_such_key_pair_is_not_found(
    shared: Emulator, client: Any, kp: str
) -> None:
    arn = client.get_key_pair(keyPairName=kp)["keyPair"]["arn"]
    other_id = arn.rsplit("/", 1)[0] + "/00000000-0000-4000-8000-000000000000"
    wrong = [
        other_id,
        arn.replace(":us-east-1:", ":eu-west-1:"),
        arn.replace(":123456789012:", ":999999999999:"),
        arn.replace(":KeyPair/", ":Instance/"),
    ]
    for bad in wrong:
        for operation, change in (("tag_resource", "tags"), ("untag_resource", "tagKeys")):
            value: Any = [{"key": "x"}] if change == "tags" else ["team"]
            with pytest.raises(ClientError) as exc:
                getattr(client, operation)(resourceName=kp, resourceArn=bad, **{change: value})
            assert error(exc.value) == (
                "NotFoundException",
                "DoesNotExist",
                f"The KeyPair does not exist: {bad}",
                400,
            )
    assert tags_of(client, kp) == [{"key": "team", "value": "web"}, {"key": "flag"}]


def test_a_malformed_arn_is_invalid(client: Any, kp: str) -> None:
    with pytest.raises(ClientError) as exc:
        client.tag_resource(resourceName=kp, resourceArn="not-an-arn", tags=[{"key": "x"}])
    assert_invalid(exc, "resourceArn", "not-an-arn")


def test_tagging_a_missing_key_pair_is_not_found(client: Any) -> None:
    for operation, change in (
        ("tag_resource", {"tags": [{"key": "x"}]}),
        ("untag_resource", {"tagKeys": ["x"]}),
    ):
        with pytest.raises(ClientError) as exc:
            getattr(client, operation)(resourceName="ghost", **change)
        assert error(exc.value) == (
            "NotFoundException",
            "DoesNotExist",
            "The KeyPair does not exist: ghost",
            400,
        )


def test_tag_limits_apply_after_merging(client: Any, kp: str) -> None:
    client.tag_resource(resourceName=kp, tags=[{"key": f"t{i}"} for i in range(48)])
    with pytest.raises(ClientError) as exc:
        client.tag_resource(resourceName=kp, tags=[{"key": "one-too-many"}])
    assert_invalid(exc, "51 tags")
    assert len(tags_of(client, kp)) == 50
    client.tag_resource(resourceName=kp, tags=[{"key": "team", "value": "overwrite is fine"}])


@pytest.mark.parametrize(
    "tags",
    [[{"key": "aws:x"}], [{"key": "ok", "value": "v" * 257}], [{"key": "a", "value": "<b>"}]],
)
def test_tag_resource_validates_like_create(client: Any, kp: str, tags: Any) -> None:
    with pytest.raises(ClientError) as exc:
        client.tag_resource(resourceName=kp, tags=tags)
    assert_invalid(exc, "tags")
    assert tags_of(client, kp) == [{"key": "team", "value": "web"}, {"key": "flag"}]


def test_untag_refuses_reserved_keys(client: Any, kp: str) -> None:
    with pytest.raises(ClientError) as exc:
        client.untag_resource(resourceName=kp, tagKeys=["aws:createdBy"])
    assert_invalid(exc, "tagKeys", "aws:createdBy")
