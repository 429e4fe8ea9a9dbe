"""Helpers shared by the benchmark scripts (not part of the package, not run by the test suite)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

SERVER_ENV = {"mariadb": "MLMD2KFP_TEST_MYSQL_URL", "postgresql": "MLMD2KFP_TEST_PG_URL"}


def new_database(backend: str, label: str, tmpdir: str) -> str:
    """A fresh empty database (a file on SQLite) and its URL."""
    if backend == "sqlite":
        return f"sqlite:///{tmpdir}/{label}-{uuid.uuid4().hex[:6]}.sqlite"
    admin = make_url(os.environ[SERVER_ENV[backend]])
    name = f"b_{label}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def drop_database(backend: str, url: str) -> None:
    if backend == "sqlite":
        path = make_url(url).database
        if path and os.path.exists(path):
            os.remove(path)
        return
    admin = make_url(os.environ[SERVER_ENV[backend]])
    name = make_url(url).database
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if backend == "postgresql" else "")))
    engine.dispose()


def run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a child process; its wall time and peak RSS (from wait4, so only that child counts)."""
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    out, err = b"", b""
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.monotonic() - start
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0,):
        sys.stderr.write(err.decode()[-3000:])
        raise SystemExit(f"{args[:4]} exited {code}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "stdout": out.decode(), "stderr": err.decode()}
