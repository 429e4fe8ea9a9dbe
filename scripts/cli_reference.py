"""Write docs/cli.md: every command's `--help`, as an operator sees it at 80 columns.

    .venv/bin/python scripts/cli_reference.py            # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check    # exit 1 when docs/cli.md is out of date

tests/test_cli_reference.py runs the check, so the reference cannot drift from the CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

COMMANDS = ["", "plan", "migrate", "verify", "window", "status", "rollback", "cleanup", "schema", "schema create",
            "schema check", "sample", "demo"]
DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"


def help_text(command: str) -> str:
    """`mlmd2kfp <command> --help` at 80 columns."""
    from typer.testing import CliRunner

    from mlmd2kfp.cli import app

    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    if result.exit_code != 0:
        raise SystemExit(f"`mlmd2kfp {command} --help` exited {result.exit_code}: {result.output}")
    return result.output.rstrip() + "\n"


def reference() -> str:
    parts = ["# Command reference", "",
             "Generated from `--help` by `scripts/cli_reference.py` (the tests fail when it is out of date).", ""]
    for command in COMMANDS:
        parts += [f"## `mlmd2kfp{' ' + command if command else ''}`", "", "```text", help_text(command).rstrip(),
                  "```", ""]
    return "\n".join(parts)


def main() -> int:
    text = reference()
    if "--check" in sys.argv[1:]:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC} is out of date: run `.venv/bin/python scripts/cli_reference.py`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
