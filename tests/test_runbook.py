"""docs/runbook.md walks an operator through the upgrade with commands that exist (issue #7): every
`mlmd2kfp …` line in its code blocks names a real command and only options that command has."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from .helpers import run_cli

RUNBOOK = Path(__file__).resolve().parent.parent / "docs" / "runbook.md"
STEPS = ("Back up", "Look before you leap", "Pre-run", "Maintenance window", "If something is wrong",
         "clean up", "Grants", "Reading the outputs", "Running it in the cluster")


def runbook_commands() -> list[list[str]]:
    out = []
    for line in RUNBOOK.read_text().splitlines():
        if re.match(r"^ {4,}mlmd2kfp ", line):
            out.append(shlex.split(line.split("#")[0].strip()))
    return out


def test_runbook_covers_every_step_of_an_upgrade():
    text = RUNBOOK.read_text()
    for step in STEPS:
        assert step in text, step
    used = {c[1] for c in runbook_commands()}
    assert {"plan", "migrate", "verify", "status", "rollback", "cleanup", "schema"} <= used, used


def test_every_runbook_command_and_option_exists():
    commands = runbook_commands()
    assert len(commands) >= 8
    helps: dict[tuple[str, ...], str] = {}
    for words in commands:
        path = tuple(w for w in words[1:3] if not w.startswith("-") and w in ("schema", "check", "create")
                     or w == words[1])
        if path not in helps:
            result = run_cli(*path, "--help", env={"COLUMNS": "200"})
            assert result.code == 0, (words, result.stderr)
            helps[path] = result.stdout
        for option in (w for w in words if w.startswith("--")):
            assert option in helps[path], (words, option)
