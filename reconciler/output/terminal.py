"""The terminal: the one place bytes go to stdout and stderr, and the one place a question is asked.

Commands print through a ``Terminal`` (``TERMINAL`` is the process's own):
results to stdout, everything said about them (errors with their hints,
warnings, notes, progress, prompts) to stderr. Errors and hints always read
``Error: WHAT`` then ``  -> HOW TO FIX IT``, whoever raises them.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from reconciler.errors import ApplyError, ManifestError, ReconcilerError, UsageError
from reconciler.output.escape import lines, visible


def use_color(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class Palette:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def green(self, text: str) -> str:
        return self._wrap("32", text)

    def yellow(self, text: str) -> str:
        return self._wrap("33", text)

    def red(self, text: str) -> str:
        return self._wrap("31", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)


def error_lines(message: str, hint: str | None = None, details: Iterable[str] = ()) -> str:
    """``Error: message``, any detail lines, and ``  -> hint`` when there is one, each one
    line (whatever a message carries from outside is shown escaped: see ``escape``)."""
    text = f"Error: {visible(message)}\n" + "".join(f"{visible(d)}\n" for d in details)
    return text + (f"  -> {visible(hint)}\n" if hint else "")


def and_more(items: Iterable[Any], listed: int, *, sep: str = ", ") -> str:
    """The first ``listed`` items joined, then " and N more" when there are more."""
    shown = list(items)
    text = sep.join(str(i) for i in shown[:listed])
    more = len(shown) - listed
    return text + (f" and {more} more" if more > 0 else "")


class Terminal:
    """stdout for results, stderr for what is said about them."""

    def __init__(self, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self._out = out
        self._err = err

    @property
    def stdout(self) -> TextIO:
        return self._out or sys.stdout

    @property
    def stderr(self) -> TextIO:
        return self._err or sys.stderr

    @property
    def color(self) -> bool:
        """Whether results may be coloured (stdout is a terminal and NO_COLOR is unset)."""
        return use_color(self.stdout)

    def out(self, text: str, *, secret: bool = False) -> None:
        """A result, on stdout, flushed (a pipeline reads it as it comes). Formats escape the
        values they show; here, as a second line of defence, no control character but a
        newline (and the text format's own colours) passes. ``secret``: key material the
        user asked for, written exactly as it is."""
        self.stdout.write(text if secret else lines(text, colours=True))
        self.stdout.flush()

    def say(self, text: str) -> None:
        """A line (or lines) about the run, on stderr; a newline is added if missing."""
        text = lines(text)
        self.stderr.write(text if text.endswith("\n") else text + "\n")
        self.stderr.flush()

    def error(self, message: str, hint: str | None = None) -> None:
        self.stderr.write(error_lines(message, hint))
        self.stderr.flush()

    def warning(self, message: str) -> None:
        self.say(f"Warning: {visible(message)}")

    def failure(self, err: ReconcilerError) -> None:
        """A ReconcilerError as the user sees it: the line, its details or a manifest's
        problems, the hint."""
        details = [str(p) for p in err.problems] if isinstance(err, ManifestError) else []
        self.stderr.write(error_lines(err.message, err.hint, [*err.details, *details]))
        self.stderr.flush()

    def confirm(self, verb: str, *, auto_approve: bool) -> None:
        """Ask "Verb?" before doing it, unless ``auto_approve``; refuse without a terminal.
        ``verb`` is what is about to happen: "apply these changes"."""
        if auto_approve:
            return
        if not sys.stdin.isatty():
            raise UsageError(
                f"{verb} needs confirmation, and there is no terminal to ask on; nothing was "
                "changed",
                hint="pass --auto-approve in pipelines",
            )
        question = verb[0].upper() + verb[1:]
        self.stderr.write(f"\n{question}? Only 'yes' will be accepted.\n  Enter a value: ")
        self.stderr.flush()
        if sys.stdin.readline().strip() != "yes":
            raise ApplyError(f"{verb} cancelled; nothing was changed")


TERMINAL = Terminal()
