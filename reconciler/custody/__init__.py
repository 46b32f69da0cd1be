"""Custody of private keys: key stores (state, SSM Parameter Store, Secrets Manager)."""

# See ``custody.Custody`` for the layer the commands use, ``base.KeyStore`` for
# what a store implements, and ``registry.STORES`` to add one.

from reconciler.custody.base import (
    KeyMetadata,
    KeyStore,
    KeyStoreConflict,
    KeyStoreError,
    key_fingerprint,
)
from reconciler.custody.custody import Custody, KeyProblem, KeyProblemKind, KeySetting
from reconciler.custody.registry import STORES, StoreContext, open_store, spec_problem

__all__ = [
    "STORES",
    "Custody",
    "KeyMetadata",
    "KeyProblem",
    "KeyProblemKind",
    "KeySetting",
    "KeyStore",
    "KeyStoreConflict",
    "KeyStoreError",
    "StoreContext",
    "key_fingerprint",
    "open_store",
    "spec_problem",
]
