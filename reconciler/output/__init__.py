"""The one place text leaves the program: every format, the terminal, summaries, the HTML report."""

from reconciler.output.base import DriftView, Format, Kind, PlanView
from reconciler.output.formats import FORMATS, choices, get
from reconciler.output.terminal import TERMINAL, Terminal

__all__ = [
    "FORMATS",
    "TERMINAL",
    "DriftView",
    "Format",
    "Kind",
    "PlanView",
    "Terminal",
    "choices",
    "get",
]
