"""Regular expressions from users (policy patterns, schema patterns), matched by RE2.

reconciler.yaml arrives in pull requests, so its patterns are untrusted. Python's
backtracking ``re`` takes exponential time on a pattern such as
``^([a-z0-9]+-?)+$`` against a near-match; RE2 (the ``google-re2`` package)
matches in time linear in the text and refuses what it cannot do that way
(backreferences, lookaround), which ``PatternError`` names. Nothing here
matches with ``re``. ``re2`` is imported on the first compile, so a command
that compiles no pattern never loads it.
"""

from __future__ import annotations

import functools
from typing import Any, Protocol


class Pattern(Protocol):
    """What a compiled RE2 pattern offers (the ``re2`` package has no type stubs)."""

    @property
    def pattern(self) -> str: ...

    def search(self, text: str) -> Any: ...

    def fullmatch(self, text: str) -> Any: ...


class PatternError(ValueError):
    """``pattern`` cannot be compiled by RE2; the message names the construct and why."""


# What RE2's parser says about a construct it refuses on purpose, and that construct
# in the words a user looks up.
_CONSTRUCTS = (
    ("invalid perl operator: (?=", "lookahead (?=...)"),
    ("invalid perl operator: (?!", "negative lookahead (?!...)"),
    ("invalid perl operator: (?<=", "lookbehind (?<=...)"),
    ("invalid perl operator: (?<!", "negative lookbehind (?<!...)"),
    ("invalid perl operator: (?>", "atomic group (?>...)"),
    ("invalid perl operator: (?P", "named backreference (?P=...)"),
    ("invalid escape sequence: \\g", "backreference \\g<...>"),
    ("invalid escape sequence: \\Z", "\\Z (write \\z for the end of the text)"),
)
_LINEAR = "RE2, which matches in linear time, has no backreferences or lookaround"


def _construct(message: str) -> str | None:
    for prefix, construct in _CONSTRUCTS:
        if message.startswith(prefix):
            return construct
    escape = message.removeprefix("invalid escape sequence: \\")
    if escape != message and escape[:1].isdigit():
        return f"backreference \\{escape}"
    if message.startswith("bad repetition operator: ") and message.endswith("+"):
        return f"possessive quantifier {message.rsplit(' ', 1)[-1]}"
    return None


@functools.lru_cache(maxsize=512)
def compile_linear(pattern: str) -> Pattern:
    """``pattern`` compiled by RE2; a ``PatternError`` saying why when it cannot be."""
    import re2  # a small C extension, loaded only when a pattern is compiled

    options = re2.Options()
    options.log_errors = False  # RE2 would write its own complaint to stderr
    try:
        compiled: Pattern = re2.compile(pattern, options)
    except re2.error as error:
        raw = error.args[0] if error.args else b""
        message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        construct = _construct(message)
        if construct is not None:
            raise PatternError(f"it uses a {construct} ({_LINEAR})") from None
        raise PatternError(f"RE2 cannot compile it: {message}") from None
    return compiled
