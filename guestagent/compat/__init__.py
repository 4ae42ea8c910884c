"""The old tools' commands, as guestagent sub-commands and under their old names.

    guestagent collect         os-collect-config
    guestagent apply-config    os-apply-config
    guestagent refresh-config  os-refresh-config
    guestagent notify          heat-config-notify

`python -m guestagent.compat <old-name> [args]` runs the sub-command under the
old tool's name (what the wrappers `python -m guestagent.install` places run);
its `--help` says it is guestagent.
"""

from __future__ import annotations

import argparse
import sys

# old tool name -> (sub-command, module that implements it)
OLD_NAMES = {
    "os-collect-config": ("collect", "guestagent.compat.collect"),
    "os-apply-config": ("apply-config", "guestagent.compat.apply"),
    "os-refresh-config": ("refresh-config", "guestagent.compat.refresh"),
    "heat-config-notify": ("notify", "guestagent.compat.notify"),
}
SUBCOMMANDS = {sub: module for sub, module in OLD_NAMES.values()}


class Parser(argparse.ArgumentParser):
    """Usage errors as one line and exit 2 (os-apply-config's own errors keep their codes)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}\n")


def parser(prog: str | None, subcommand: str, old_name: str, summary: str) -> Parser:
    """A parser for `guestagent <subcommand>`, or for the old name when `prog` is that name;
    either way the description says which tool it replaces and that it is guestagent."""
    if prog and prog != f"guestagent {subcommand}":
        description = (f"{prog}, provided by guestagent (guestagent {subcommand}): {summary}")
    else:
        prog = f"guestagent {subcommand}"
        description = f"{summary} (the {old_name} command of the old agents)"
    return Parser(prog=prog, description=description)


def run_subcommand(subcommand: str, argv: list[str], prog: str | None = None) -> int:
    """Run `guestagent <subcommand> argv...` (under the old tool's name when `prog` is it)."""
    import importlib

    module = importlib.import_module(SUBCOMMANDS[subcommand])
    return module.main(argv, prog=prog)


def main(argv: list[str] | None = None) -> int:
    """`python -m guestagent.compat <old-name> [args]`."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in OLD_NAMES:
        print(f"usage: python -m guestagent.compat {{{','.join(OLD_NAMES)}}} [args]",
              file=sys.stderr)
        return 2
    return run_subcommand(OLD_NAMES[argv[0]][0], argv[1:], prog=argv[0])
