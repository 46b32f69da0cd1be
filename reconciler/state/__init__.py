"""The state: its document, write-ahead journal, lock, and the backends that keep them.

Private keys pass through here on their way to disk; nothing in this package
logs them or puts them in an error message or a repr.
"""

from reconciler.state.backend import StateBackend
from reconciler.state.document import (
    FORMAT_VERSION,
    StateDocument,
    entry_from_json,
    entry_to_json,
)
from reconciler.state.journal import Journal, read_journal
from reconciler.state.local import LocalBackend
from reconciler.state.lock import LockInfo
from reconciler.state.replay import replay

__all__ = [
    "FORMAT_VERSION",
    "Journal",
    "LocalBackend",
    "LockInfo",
    "StateBackend",
    "StateDocument",
    "entry_from_json",
    "entry_to_json",
    "read_journal",
    "replay",
]
