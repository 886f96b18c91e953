"""Every command and subcommand of `hlfsync` answers --help, found by walking the click tree, so
a command added later is covered without editing this file."""

from __future__ import annotations

from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from hlfsync import cli


# typer ships its own copy of click, so its groups are told apart by their `commands`.
def _paths(command: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    if hasattr(command, "commands"):
        for name, sub in sorted(command.commands.items()):
            found += _paths(sub, (*prefix, name))
    return found


TREE = typer.main.get_command(cli.app)
PATHS = _paths(TREE)


def _command(path: tuple[str, ...]) -> Any:
    command: Any = TREE
    for name in path:
        command = command.commands[name]
    return command


def test_the_walk_finds_the_whole_tree() -> None:
    """The walk reaches the groups' subcommands, not just the top level (db upgrade, dlq list)."""
    assert {("db", "upgrade"), ("dlq", "list"), ("status",)} <= set(PATHS)
    assert len(PATHS) >= 20


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "hlfsync")
def test_every_command_answers_help(path: tuple[str, ...]) -> None:
    """`hlfsync ... --help` exits 0 with a usage line and the command's own description."""
    result = CliRunner().invoke(cli.app, [*path, "--help"], env={"COLUMNS": "120", "NO_COLOR": "1"})
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    summary = (_command(path).help or "").strip().splitlines()
    assert summary, f"hlfsync {' '.join(path)} has no help text"
    assert summary[0].split()[0] in result.output
