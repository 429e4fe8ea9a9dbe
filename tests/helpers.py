"""Small helpers shared by the tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

from sqlalchemy import create_engine


@dataclass
class CliResult:
    """A finished `mlmd2kfp` process."""

    code: int
    stdout: str
    stderr: str


def run_cli(*args: str, env: dict[str, str] | None = None) -> CliResult:
    """Run the real console entry point in a subprocess (exit codes and streams as an operator sees them)."""
    import os

    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mlmd2kfp", *args], capture_output=True, text=True,
                          env=full_env, timeout=600)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def execute(url: str, *statements: str) -> None:
    """Run raw SQL statements against `url` in one transaction (`text()`: `%` is safe on PyMySQL)."""
    from sqlalchemy import text

    engine = create_engine(url)
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))
    engine.dispose()
