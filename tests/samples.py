"""The sample, written once per test session per shape and backend, then copied (issue #28).

`write_sample` here has the library's signature. Into two empty databases it copies a template written by
the real `mlmd2kfp.sample.write_sample` (through ml-metadata) the first time that shape (seed, runs, mode,
spec) is asked for on that backend: a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL, the
tables and their rows on MariaDB. Anything else (a database that already holds something) gets the real
write. The sample is deterministic (tests/sample/test_determinism.py), so a copy is what a write would give.
"""

from __future__ import annotations

import importlib.util
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url

from mlmd2kfp.db import make_engine
from mlmd2kfp.sample import SampleReport
from mlmd2kfp.sample import write_sample as _write_sample

_templates: dict[tuple[Any, ...], tuple[str, str, SampleReport]] = {}
_made: list[str] = []  # server template URLs, dropped at the end of the session
_folder: Path | None = None


def write_sample(mlmd_url: str, kfp_url: str, **kw: Any) -> SampleReport:
    """The sample in (`mlmd_url`, `kfp_url`), copied from the session's template of its shape when both are
    empty; else written."""
    if importlib.util.find_spec("ml_metadata") is None:  # an install without the `mlmd` extra: a skip, not an error
        pytest.skip("needs the ml-metadata package (the `mlmd` extra, Python 3.11)")
    backend = make_url(mlmd_url).get_backend_name()
    if backend != make_url(kfp_url).get_backend_name() or not (_empty(mlmd_url) and _empty(kfp_url)):
        return _write_sample(mlmd_url, kfp_url, **kw)
    key = (backend, tuple(sorted(kw.items())))
    if key not in _templates:
        tm, tk = _new(mlmd_url), _new(kfp_url)
        _templates[key] = (tm, tk, _write_sample(tm, tk, **kw))
    tm, tk, report = _templates[key]
    copy_database(tm, mlmd_url)
    copy_database(tk, kfp_url)
    return report


def drop_templates() -> None:
    """Drop the server templates (the session's end)."""
    for url in _made:
        name = make_url(url).database
        _on_server(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f"DROP DATABASE IF EXISTS `{name}`")
    _made.clear()
    _templates.clear()
    global _folder
    if _folder is not None:  # the SQLite templates
        shutil.rmtree(_folder, ignore_errors=True)
        _folder = None


def _empty(url: str) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        return bool(parsed.database) and (not path.exists() or path.stat().st_size == 0)
    engine = create_engine(url)
    try:
        return not inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _new(like: str) -> str:
    """An empty database for a template, on the server (or in the folder) of `like`."""
    global _folder
    parsed = make_url(like)
    name = f"t_tpl_{uuid.uuid4().hex[:10]}"
    if parsed.get_backend_name() == "sqlite":
        if _folder is None:
            _folder = Path(tempfile.mkdtemp(prefix="mlmd2kfp-samples-"))
        return f"sqlite:///{_folder / (name + '.sqlite')}"
    _on_server(like, f'CREATE DATABASE "{name}"',
               f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    url = parsed.set(database=name).render_as_string(hide_password=False)
    _made.append(url)
    return url


def _on_server(url: str, postgresql: str, mariadb: str) -> None:
    """One statement (the one for the backend of `url`) on its server's maintenance database, outside any
    transaction (CREATE and DROP DATABASE)."""
    parsed = make_url(url)
    pg = parsed.get_backend_name() == "postgresql"
    admin = create_engine(parsed.set(database="postgres" if pg else "mysql"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(postgresql if pg else mariadb))
    finally:
        admin.dispose()


def copy_database(template: str, target: str) -> None:
    """Make `target` (an empty database on the same server, or a SQLite path) a copy of `template`."""
    src, dst = make_url(template), make_url(target)
    if src.get_backend_name() == "sqlite":
        shutil.copy(src.database or "", dst.database or "")
        return
    if src.get_backend_name() == "postgresql":
        _on_server(target, f'DROP DATABASE "{dst.database}"', "")
        _on_server(target, f'CREATE DATABASE "{dst.database}" TEMPLATE "{src.database}"', "")
        return
    source = create_engine(template)
    tables = inspect(source).get_table_names()
    source.dispose()
    engine = create_engine(target)
    with engine.begin() as conn:
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
        for table in tables:
            ddl = conn.execute(text(f"SHOW CREATE TABLE `{src.database}`.`{table}`")).one()[1]
            conn.execute(text(ddl))
            conn.execute(text(f"INSERT INTO `{table}` SELECT * FROM `{src.database}`.`{table}`"))
        conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))
    engine.dispose()


def in_memory_copy(url: str, role: str) -> Engine:
    """The SQLite database at `url` copied into an in-memory engine (`mlmd2kfp.db.make_engine("sqlite://")`:
    one shared connection), for the library's functions that take engines."""
    engine = make_engine("sqlite://", role)
    raw = engine.raw_connection()
    source = sqlite3.connect(str(make_url(url).database))
    try:
        source.backup(raw.driver_connection)
    finally:
        source.close()
        raw.close()
    return engine
