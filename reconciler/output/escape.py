"""Untrusted text made visible: what leaves the program can only say what the tool wrote.

Names, tags, ARNs, instance names, file names and messages from AWS come from
outside; in a terminal, a raw control character in one of them could start a
new line, move the cursor, set the window title, clear the screen or reverse
the text after it, and so pass for the tool's own words. Each format shows
such characters escaped, visibly: ``\\x1b``, ``\\u202e``.

``visible`` is for one value (nothing in it may break the line); ``lines``
for text the tool composed line by line (its newlines are kept);
``json_safe`` for JSON documents (the same characters as JSON escapes, so the
data parses the same); ``code_span`` and ``cell`` for markdown.
"""

from __future__ import annotations

import re

# C0 controls (newline and tab included), DEL, C1 controls, the line and paragraph
# separators, and every bidirectional control: embeddings, overrides, isolates and
# the marks (a mark alone can still reorder what follows it).
_UNSAFE = (
    "\x00-\x1f\x7f-\x9f"
    "\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ufeff"  # a byte-order mark in the middle of a line
)
UNSAFE = re.compile(f"[{_UNSAFE}]")
# The colours the text format itself writes (output.terminal.Palette).
_OWN_COLOURS = re.compile(r"\x1b\[(?:0|1|31|32|33)m")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object) -> str:
    """``value`` as one line: every control, separator and bidi character escaped."""
    return UNSAFE.sub(lambda m: _escape(m.group()), str(value))


def lines(text: str, *, colours: bool = False) -> str:
    """Text the tool composed: newlines and tabs kept, every other unsafe character escaped (the
    text format's own colours kept too when ``colours``)."""
    return _keeping(_LINE_UNSAFE, text, colours)


def one_line(text: str, *, colours: bool = False) -> str:
    """One line the tool composed: as ``visible``, but its own colours kept when ``colours``."""
    return _keeping(UNSAFE, text, colours)


# The tool's own layout characters: newlines, and the tabs between columns (state list).
_LINE_UNSAFE = re.compile("(?![\n\t])" + UNSAFE.pattern)


def _keeping(unsafe: re.Pattern[str], text: str, colours: bool) -> str:
    if not colours:
        return unsafe.sub(lambda m: _escape(m.group()), text)
    out: list[str] = []
    last = 0
    for colour in _OWN_COLOURS.finditer(text):
        out.append(unsafe.sub(lambda m: _escape(m.group()), text[last : colour.start()]))
        out.append(colour.group())
        last = colour.end()
    out.append(unsafe.sub(lambda m: _escape(m.group()), text[last:]))
    return "".join(out)


def json_safe(document: str) -> str:
    """A JSON text with the characters ``json.dumps(ensure_ascii=False)`` leaves raw (DEL,
    C1, separators, bidi controls) written as ``\\uXXXX`` escapes: the same data, and
    nothing a terminal or a viewer would act on."""
    return _RAW_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", document)


# json.dumps escapes C0 controls inside strings itself; its newlines are structure.
_RAW_IN_JSON = re.compile("(?![\x00-\x1f])" + UNSAFE.pattern)


def code_span(value: object) -> str:
    """``value`` as a markdown code span that nothing inside can close: a backtick fence
    longer than any run of backticks in it, spaces where it starts or ends with one."""
    text = visible(value)
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fence_for(text: str, char: str = "`") -> str:
    """A code-block fence longer than any run of ``char`` in ``text`` (at least three)."""
    longest = max((len(run) for run in re.findall(re.escape(char) + "+", text)), default=0)
    return char * max(3, longest + 1)


def prose(value: object) -> str:
    """``value`` in markdown prose (a table cell, a list item): one line, with what markdown
    or GitHub would act on neutralised: HTML (and comments) as entities, link and image
    brackets and code backticks escaped, table pipes escaped, an @mention broken by a
    zero-width space. Words and punctuation otherwise stay as they are."""
    text = visible(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    text = re.sub(r"[\\`\[\]|]", lambda m: "\\" + m.group(), text)
    return text.replace("@", "@\u200b")


def cell(value: object) -> str:
    """``value`` as a code span inside a markdown table cell (a ``|`` would end the cell)."""
    return code_span(value).replace("|", "\\|")
