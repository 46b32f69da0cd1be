"""The policy rules a team may switch on in ``reconciler.yaml``: one class each, one registry.

A rule is built from its entry under ``policy.rules`` (options checked by
``__init__``, which raises ``OptionError`` naming the option) and then asked
about the desired key pairs (``check``, offline) or about what Lightsail
holds (``check_live``, for rules that need live data such as ``createdAt``).
Each yields ``(key pair, message)``; the engine turns them into findings at
the key pair's place and applies exceptions. Adding a rule is one class here
plus one line in ``RULES``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

from reconciler import keys
from reconciler.findings import register
from reconciler.manifests.regex import Pattern, PatternError, compile_linear
from reconciler.model import REGIONS, DesiredKeyPair, DesiredSet, LiveSnapshot

Hit = tuple[DesiredKeyPair, str]
KEY_SOURCES = ("create", "import", "generate")
_DAY = 86_400.0


class OptionError(ValueError):
    """An option of a rule is missing or wrong; ``option`` names it (None: the rule itself),
    ``within`` the path inside it to the wrong value (a key of ``keys``)."""

    def __init__(self, option: str | None, message: str, within: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.option = option
        self.message = message
        self.within = within


class Rule:
    """One policy rule: its id, what it checks, its options, and the check itself."""

    id: ClassVar[str]
    summary: ClassVar[str]
    help: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    required: ClassVar[tuple[str, ...]] = ()
    live: ClassVar[bool] = False  # checked by plan and drift against Lightsail, not by validate

    def __init__(self, options: Mapping[str, Any]) -> None:
        for name in self.required:
            if name not in options:
                raise OptionError(None, f"rule {self.id} needs the option '{name}'")

    def check(self, desired: DesiredSet) -> Iterator[Hit]:
        """Offline findings about the desired key pairs: by default each key pair's
        ``problems``, in address order."""
        for kp in _in_order(desired):
            for message in self.problems(kp):
                yield kp, message

    def problems(self, kp: DesiredKeyPair) -> Iterator[str]:
        """What is wrong with one key pair alone, for rules that look at one at a time."""
        return iter(())

    def check_live(self, desired: DesiredSet, live: LiveSnapshot, now: float) -> Iterator[Hit]:
        """Findings that need what Lightsail holds."""
        return iter(())

    def describe(self) -> str:
        """The options in force, in words, for ``policy list``."""
        return ""


def _pattern(option: str, value: Any, within: tuple[str, ...] = ()) -> Pattern:
    """A pattern option compiled by RE2: reconciler.yaml is untrusted, and RE2 matches
    in linear time where ``re`` can backtrack for ever."""
    if not isinstance(value, str):
        raise OptionError(option, f"'{option}' must be a regular expression string", within)
    try:
        return compile_linear(value)
    except PatternError as error:
        raise OptionError(
            option,
            f"'{option}' {value!r} is not a valid regular expression for RE2: {error}",
            within,
        ) from None


def _strings(option: str, value: Any, allowed: tuple[str, ...] | None = None) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise OptionError(option, f"'{option}' must be a non-empty list of strings")
    if allowed is not None:
        for item in value:
            if item not in allowed:
                choices = ", ".join(allowed)
                raise OptionError(option, f"'{option}': {item!r} is not one of {choices}")
    return tuple(value)


def _positive(option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise OptionError(option, f"'{option}' must be a positive whole number")
    return value


def _in_order(desired: DesiredSet) -> list[DesiredKeyPair]:
    return [desired.key_pairs[a] for a in sorted(desired.key_pairs)]


class RequiredTags(Rule):
    id = "required-tags"
    summary = "Every key pair carries the required tags, with values of the required shape."
    help = "Add the missing tag (defaults.tags applies to every key pair of a document)."
    options = ("keys",)
    required = ("keys",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        spec = options["keys"]
        if isinstance(spec, list) and spec and all(isinstance(k, str) for k in spec):
            spec = dict.fromkeys(spec)
        if not isinstance(spec, dict) or not spec:
            raise OptionError("keys", "'keys' must map tag keys to a value pattern or null")
        self.keys = {
            key: None if p is None else _pattern("keys", p, (key,)) for key, p in spec.items()
        }

    def problems(self, kp: DesiredKeyPair) -> Iterator[str]:
        for key, pattern in self.keys.items():
            if key not in kp.tags:
                yield f"key pair {kp.address} has no tag '{key}'"
            elif pattern is not None and not pattern.search(kp.tags[key] or ""):
                yield (
                    f"key pair {kp.address}: tag '{key}' is {kp.tags[key]!r}, "
                    f"which does not match {pattern.pattern!r}"
                )

    def describe(self) -> str:
        return ", ".join(
            f"{key} ({'any value' if p is None else p.pattern})" for key, p in self.keys.items()
        )


class NamePattern(Rule):
    id = "name-pattern"
    summary = "Key pair names follow the team's naming pattern."
    help = "Rename the key pair so that the whole name matches the pattern."
    options = ("pattern",)
    required = ("pattern",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.pattern = _pattern("pattern", options["pattern"])

    def problems(self, kp: DesiredKeyPair) -> Iterator[str]:
        if not self.pattern.fullmatch(kp.address.name):
            yield f"key pair name {kp.address.name!r} does not match {self.pattern.pattern!r}"

    def describe(self) -> str:
        return self.pattern.pattern


class AllowedRegions(Rule):
    id = "allowed-regions"
    summary = "Key pairs live only in the regions the team allows."
    help = "Move the manifest to an allowed region, or ask for the region to be allowed."
    options = ("regions",)
    required = ("regions",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.regions = _strings("regions", options["regions"], REGIONS)

    def problems(self, kp: DesiredKeyPair) -> Iterator[str]:
        if kp.address.region not in self.regions:
            yield f"key pair {kp.address} is in {kp.address.region}; allowed: {self.describe()}"

    def describe(self) -> str:
        return ", ".join(self.regions)


def key_source(kp: DesiredKeyPair) -> str:
    """How a key pair's private key comes to be: create (by Lightsail), import or generate."""
    if kp.public_key is not None:
        return "import"
    return "generate" if kp.generate_local else "create"


class KeySources(Rule):
    id = "key-sources"
    summary = "Private keys come only from the allowed sources (create, import, generate)."
    help = (
        "Use an allowed source: publicKey/publicKeyFile (import), generate: local (generate), "
        "or neither (create: Lightsail generates the private key)."
    )
    options = ("allowed",)
    required = ("allowed",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.allowed = _strings("allowed", options["allowed"], KEY_SOURCES)

    def problems(self, kp: DesiredKeyPair) -> Iterator[str]:
        if kp.adopt:
            return  # made before and elsewhere: the tool chose no source for it
        source = key_source(kp)
        if source not in self.allowed:
            yield f"key pair {kp.address} is a {source}; allowed key sources: {self.describe()}"

    def describe(self) -> str:
        return ", ".join(self.allowed)


class MinRsaBits(Rule):
    id = "min-rsa-bits"
    summary = "Imported RSA keys have at least the required size."
    help = "Import a larger RSA key (or an ed25519 key)."
    options = ("bits",)
    required = ("bits",)

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.bits = _positive("bits", options["bits"])

    def problems(self, kp: DesiredKeyPair) -> Iterator[str]:
        if kp.public_key is None or not kp.public_key.startswith("ssh-rsa "):
            return
        bits = keys.parse_public_key(kp.public_key).bits
        if bits < self.bits:
            yield f"key pair {kp.address} imports a {bits}-bit RSA key; at least {self.bits}"

    def describe(self) -> str:
        return f"{self.bits} bits"


class DuplicatePublicKey(Rule):
    id = "duplicate-public-key"
    summary = "One public key is imported under one name in one region only."
    help = "Give each key pair its own key, so that revoking one does not revoke the others."

    def check(self, desired: DesiredSet) -> Iterator[Hit]:
        first: dict[str, DesiredKeyPair] = {}
        for kp in _in_order(desired):
            if kp.public_key is None:
                continue
            earlier = first.setdefault(kp.public_key, kp)
            if earlier is not kp:
                yield (
                    kp,
                    (
                        f"key pair {kp.address} imports the same public key as {earlier.address} "
                        f"({earlier.source})"
                    ),
                )


class MaxKeyAge(Rule):
    id = "max-key-age"
    summary = "Key pairs are replaced before they reach the maximum age (live createdAt)."
    help = "Rotate the key pair: `reconciler apply --replace REGION/NAME`."
    options = ("days",)
    required = ("days",)
    live = True

    def __init__(self, options: Mapping[str, Any]) -> None:
        super().__init__(options)
        self.days = _positive("days", options["days"])

    def check_live(self, desired: DesiredSet, live: LiveSnapshot, now: float) -> Iterator[Hit]:
        for kp in _in_order(desired):
            have = live.key_pairs.get(kp.address)
            if have is None or not have.created_at:
                continue
            age = int((now - have.created_at) // _DAY)
            if age > self.days:
                yield kp, f"key pair {kp.address} is {age} days old; at most {self.days}"

    def describe(self) -> str:
        return f"{self.days} days"


RULES: dict[str, type[Rule]] = {
    rule.id: rule
    for rule in (
        RequiredTags,
        NamePattern,
        AllowedRegions,
        KeySources,
        MinRsaBits,
        DuplicatePublicKey,
        MaxKeyAge,
    )
}

for _rule in RULES.values():
    register(_rule.id, _rule.summary, _rule.help)
