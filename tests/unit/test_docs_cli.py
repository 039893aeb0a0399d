"""Docs that can't drift: every `callcore` command has a section in docs/cli.md."""

import argparse
from pathlib import Path

from callcore.cli import build_parser

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def leaf_commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[str]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return [" ".join(prefix)]
    commands = []
    for name, child in subparsers[0].choices.items():
        commands += leaf_commands(child, (*prefix, name))
    return commands


def test_every_cli_command_has_a_heading_in_docs():
    headings = {
        line.removeprefix("## ").strip()
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("## ")
    }
    commands = leaf_commands(build_parser())
    assert "user create" in commands and "db shell" in commands
    missing = [c for c in commands if f"callcore {c}" not in headings]
    assert not missing, f"undocumented commands in docs/cli.md: {missing}"
