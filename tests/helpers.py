"""Small helpers shared by the tests."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, text


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


def quote(target: Any, name: str) -> str:
    """An identifier quoted for the database behind `target` (a URL or an engine): backticks on
    MySQL/MariaDB, ANSI double quotes elsewhere."""
    return f"`{name}`" if _mysql(target) else f'"{name}"'


def portable(target: Any, statement: str) -> str:
    """SQL written with ANSI quotes (`"Column"`), as the database behind `target` reads it: the tests' one
    place that turns them into backticks for MySQL/MariaDB."""
    return statement.replace('"', "`") if _mysql(target) else statement


def sql_rows(url: str, statement: str, **params: Any) -> list[dict[str, Any]]:
    """A read (ANSI-quoted SQL, `portable`) as a list of dicts."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [dict(r) for r in conn.execute(text(portable(engine, statement)), params).mappings()]
    finally:
        engine.dispose()


def _mysql(target: Any) -> bool:
    if isinstance(target, str):
        return target.startswith(("mysql", "mariadb"))
    return bool(target.dialect.name in ("mysql", "mariadb"))


def execute(url: str, *statements: str) -> None:
    """Run raw SQL statements against `url` in one transaction (`text()`: `%` is safe on PyMySQL)."""
    from sqlalchemy import text

    engine = create_engine(url)
    with engine.begin() as conn:
        for stmt in statements:
            conn.execute(text(stmt))
    engine.dispose()


class Db:
    """Raw SQL on the KFP database, each change with the statement that undoes it."""

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)
        self.mysql = self.engine.dialect.name == "mysql"

    def q(self, name: str) -> str:
        return quote(self.engine, name)

    def sql(self, statement: str, **params: Any) -> list[dict[str, Any]]:
        statement = portable(self.engine, statement)
        if self.engine.dialect.name == "postgresql":  # json has no comparison operators there: compare text
            statement = re.sub(r'(\w\."(?:pods|InputParameters|OutputParameters|TypeAttrs|Metadata|StatusMetadata|StateHistory|Producer)")( <>| LIKE)',
                               r"\1::text\2", statement)
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params)
            return [dict(r) for r in result.mappings()] if result.returns_rows else []

    def one(self, statement: str, **params: Any) -> dict[str, Any]:
        found = self.sql(statement, **params)
        assert found, statement
        return found[0]

    def set(self, table: str, key: str, row_id: str, column: str, value: Any) -> Callable[[], None]:
        old = self.one(f'SELECT "{column}" AS v FROM {table} WHERE "{key}" = :i', i=row_id)["v"]
        if isinstance(old, (dict, list)):  # PostgreSQL hands JSON back parsed
            old = json.dumps(old)
        self.sql(f'UPDATE {table} SET "{column}" = :v WHERE "{key}" = :i', v=value, i=row_id)
        return lambda: self.sql(f'UPDATE {table} SET "{column}" = :v WHERE "{key}" = :i', v=old, i=row_id)

    def delete(self, table: str, key: str, row_id: str) -> Callable[[], None]:
        saved = self.sql(f'SELECT * FROM {table} WHERE "{key}" = :i', i=row_id)
        assert saved
        self.sql(f'DELETE FROM {table} WHERE "{key}" = :i', i=row_id)
        return lambda: [self.insert(table, r) for r in saved]

    def insert(self, table: str, row: dict[str, Any]) -> Callable[[], None]:
        json_columns = {"pods", "StatusMetadata", "StateHistory", "InputParameters", "OutputParameters", "TypeAttrs",
                        "Metadata", "Producer"}
        pg = self.engine.dialect.name == "postgresql"  # hands JSON back parsed, JSON `null` as None
        row = {k: json.dumps(v) if isinstance(v, (dict, list)) or (pg and v is None and k in json_columns) else v
               for k, v in row.items()}
        cols = ", ".join(f'"{c}"' for c in row)
        self.sql(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':p' + str(i) for i in range(len(row)))})",
                 **{f"p{i}": v for i, v in enumerate(row.values())})
        key = "UUID" if "UUID" in row else "id"
        return lambda: self.sql(f'DELETE FROM {table} WHERE "{key}" = :i', i=row[key])
