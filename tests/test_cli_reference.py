"""docs/cli.md is `--help` of every command as it is now, and the help reads as typer users expect."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _reference():
    spec = importlib.util.spec_from_file_location("cli_reference", ROOT / "scripts" / "cli_reference.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_docs_cli_md_matches_the_help():
    module = _reference()
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == module.reference(), (
        "docs/cli.md is out of date: run `.venv/bin/python scripts/cli_reference.py`")


def test_help_at_80_columns_is_whole_and_names_types_plainly():
    module = _reference()
    for command in module.COMMANDS:
        text = module.help_text(command)
        for line in text.splitlines():
            assert len(line) <= 80, (command, line)
            assert "…" not in line and not re.search(r"\w\.\.\.$", line), (command, line)  # nothing cut short
            assert not re.search(r"<(bool|str|int|float|list\[str\]|path)[^>]*>", line), (command, line)
            assert not re.search(r"[│╭╰]", line), (command, line)
        assert "--help" in text


def test_every_command_is_in_the_reference():
    import typer.main

    from mlmd2kfp.cli import app

    group = typer.main.get_command(app)
    names = set(group.commands)  # type: ignore[attr-defined]
    names |= {f"schema {n}" for n in group.commands["schema"].commands}  # type: ignore[attr-defined]
    assert names <= set(_reference().COMMANDS)
