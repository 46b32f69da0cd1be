"""The command line: a parser built from a table of commands, one module per command."""

from reconciler.cli.app import main

__all__ = ["main"]
