"""The state: its document, write-ahead journal, lock, and the backends that keep them."""

# ``document`` (the format), ``records`` / ``journal`` / ``s3_journal`` /
# ``replay`` (the write-ahead journal), ``core`` (the protocol every backend
# follows, over an object store and a lock), ``local`` and ``s3`` (the two
# object stores), ``lock`` / ``s3_lock`` (the two locks), ``settings`` /
# ``local_settings`` / ``s3_settings`` (each backend's settings, read from
# reconciler.yaml and ``--state``), ``registry`` (the backends by type, and how
# each opens), ``spool`` (a local home for results a remote store will not
# take), ``files`` (private, durable local files), ``crypto*`` (sealing private
# keys).
#
# Private keys pass through here on their way to disk; nothing in this package
# logs them or puts them in an error message or a repr.

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
