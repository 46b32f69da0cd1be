"""`reconciler completion bash|zsh`: the shell completion script, written by shtab from the parser.

Install it once where the shell looks, e.g. for bash:
``reconciler completion bash > ~/.local/share/bash-completion/completions/reconciler``.
"""

from __future__ import annotations

import argparse

from reconciler.errors import EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=["bash", "zsh"], help="the shell to complete in")


def run(args: argparse.Namespace) -> int:
    import shtab

    from reconciler.output.terminal import TERMINAL

    TERMINAL.out(shtab.complete(args.root, shell=args.shell))
    return EXIT_OK
