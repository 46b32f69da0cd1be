"""`reconciler state SUBCOMMAND`: inspect or edit the state.

``list`` and ``show`` read it; ``rm``, ``unprotect``, ``encrypt``,
``decrypt`` and ``migrate-keys`` change it under its lock. Each subcommand
is one function in ``SUBCOMMANDS``; all take the common options.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from reconciler.cli.arguments import common, encryption, output_format
from reconciler.errors import EXIT_OK, UsageError
from reconciler.output.base import Kind

if TYPE_CHECKING:
    from reconciler.cli.options import Options
    from reconciler.model import StateEntry
    from reconciler.state import StateBackend, StateDocument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="state_command", metavar="SUBCOMMAND", required=True)
    p = sub.add_parser("list", help="list key pairs in the state")
    output_format(p, Kind.STATE)
    common(p)
    p = sub.add_parser("show", help="show one key pair")
    p.add_argument("address", metavar="REGION/NAME", help="the key pair")
    p.add_argument("--reveal", action="store_true", help="include the private key")
    common(p)
    p = sub.add_parser("encrypt", help="encrypt the private keys in the state")
    encryption(p)
    common(p)
    p = sub.add_parser("decrypt", help="store the private keys in clear again")
    common(p)
    p = sub.add_parser("migrate-keys", help="move every private key to another key store")
    p.add_argument(
        "--to", required=True, metavar="STORE", help="state, ssm:... or secretsmanager:..."
    )
    p.add_argument("--kms-key-id", metavar="KEY_ID", help="KMS key for the new store")
    common(p)
    p = sub.add_parser("unprotect", help="drop the preventDestroy recorded for a key pair")
    p.add_argument("address", metavar="REGION/NAME", help="the key pair")
    common(p)
    p = sub.add_parser("rm", help="forget a key pair (Lightsail is not touched)")
    p.add_argument("address", metavar="REGION/NAME", help="the key pair")
    common(p)


def run(args: argparse.Namespace) -> int:
    from reconciler.cli import options

    return SUBCOMMANDS[args.state_command](args, options.from_args(args))


def _backend(options: Options) -> StateBackend:
    from reconciler.cli import workflow

    return workflow.open_backend(options)


def state_list(args: argparse.Namespace, options: Options) -> int:
    from reconciler.cli import generations
    from reconciler.output.base import StateView
    from reconciler.output.formats import get
    from reconciler.output.terminal import TERMINAL

    doc = _backend(options).read()
    counts = generations.instance_counts(doc, options)
    TERMINAL.out(get(args.format).state(StateView(doc.entries, doc.pending, counts)))
    return EXIT_OK


def state_show(args: argparse.Namespace, options: Options) -> int:
    import json

    from reconciler.cli import generations
    from reconciler.output.terminal import TERMINAL
    from reconciler.state import entry_to_json

    doc = _backend(options).read()
    entry = generations.entry_of(doc, args.address)
    data = entry_to_json(entry)
    if args.reveal:
        data["privateKey"] = generations.private_key(entry, options, doc)
    elif "privateKey" in data or "privateKeySealed" in data:
        data.pop("privateKeySealed", None)
        data["privateKey"] = "(sensitive: add --reveal, or use `reconciler key get`)"
    generations.redact(data, reveal=args.reveal)
    TERMINAL.out(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return EXIT_OK


def _edit(
    options: Options, command: str, text: str, edit: Callable[[StateDocument, StateEntry], bool]
) -> tuple[StateEntry, str]:
    """Under the lock: ``edit`` the entry at ``text`` in place, written if it says it changed;
    the entry as it was, and the state's location."""
    from reconciler.cli import generations

    backend = _backend(options)
    with backend.lock(command, timeout=options.lock_timeout):
        doc = backend.begin()
        entry = generations.entry_of(doc, text)
        if edit(doc, entry):
            backend.write(doc)
    return entry, backend.location


def state_unprotect(args: argparse.Namespace, options: Options) -> int:
    from reconciler.output.terminal import TERMINAL
    from reconciler.planning import protect

    def unprotect(doc: StateDocument, entry: StateEntry) -> bool:
        if not entry.prevent_destroy:
            return False
        doc.entries[entry.address] = protect.unprotected(entry)
        return True

    entry, _ = _edit(options, "state unprotect", args.address, unprotect)
    TERMINAL.say(
        f"{entry.address} is no longer protected by preventDestroy in the state"
        f"{'' if entry.prevent_destroy else ' (it was not)'}; a manifest that still "
        "declares preventDestroy: true records it again on the next apply."
    )
    return EXIT_OK


def state_rm(args: argparse.Namespace, options: Options) -> int:
    from reconciler.output.terminal import TERMINAL

    def forget(doc: StateDocument, entry: StateEntry) -> bool:
        del doc.entries[entry.address]
        return True

    entry, _ = _edit(options, "state rm", args.address, forget)
    TERMINAL.say(f"Removed {entry.address} from the state; Lightsail was not touched.")
    if entry.private_key_ref is not None:
        TERMINAL.say(
            f"Its private key stays in {entry.private_key_ref.get('location')} "
            f"({entry.private_key_ref.get('store')})."
        )
    return EXIT_OK


def state_encrypt(args: argparse.Namespace, options: Options) -> int:
    return _seal_state(True, options)


def state_decrypt(args: argparse.Namespace, options: Options) -> int:
    return _seal_state(False, options)


def _seal_state(encrypt: bool, options: Options) -> int:
    from reconciler.cli import workflow
    from reconciler.output.terminal import TERMINAL
    from reconciler.state import crypto

    backend = _backend(options)
    command = "state encrypt" if encrypt else "state decrypt"
    with backend.lock(command, timeout=options.lock_timeout):
        doc = backend.begin()
        unsealer = workflow.unsealer_for(options)
        if encrypt:
            sealer = workflow.sealer_for(options, doc)
            if sealer is None:
                raise UsageError(
                    "state encrypt needs a recipient",
                    hint="pass --encrypt-with kms:KEY_ID or --encrypt-with age:RECIPIENT "
                    "(repeat it for several)",
                )
            changed = crypto.seal_entries(doc.entries, sealer, unsealer=unsealer)
            doc.encryption = [spec.to_json() for spec in sealer.specs]
        else:
            changed = crypto.unseal_entries(doc.entries, unsealer)
            doc.encryption = []
        doc.entries.update(changed)
        workflow.write_without_copies(backend, doc)
    verb = "Encrypted" if encrypt else "Decrypted"
    TERMINAL.say(f"{verb} {len(changed)} private key(s) in {backend.location}.")
    if encrypt and changed:
        TERMINAL.say(
            "Copies made before now (older S3 object versions, your own backups) still hold "
            "them in clear."
        )
    return EXIT_OK


def state_migrate_keys(args: argparse.Namespace, options: Options) -> int:
    from reconciler.cli import custody as key_commands
    from reconciler.output.terminal import TERMINAL

    moved, spec = key_commands.migrate_keys(args.to, args.kms_key_id, options)
    TERMINAL.say(f"Moved {moved} private key(s) to {spec}.")
    return EXIT_OK


SUBCOMMANDS: dict[str, Callable[[argparse.Namespace, Options], int]] = {
    "list": state_list,
    "show": state_show,
    "encrypt": state_encrypt,
    "decrypt": state_decrypt,
    "migrate-keys": state_migrate_keys,
    "unprotect": state_unprotect,
    "rm": state_rm,
}
