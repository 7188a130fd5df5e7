"""The ``synthpt`` command line: one module per group of subcommands, ``main`` the entry point."""

from synthpt.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
