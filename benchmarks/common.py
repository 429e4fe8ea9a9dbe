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


def _hwm_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc/<pid>/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children", encoding="ascii") as f:
                    todo.extend(int(c) for c in f.read().split())
        except OSError:
            pass
    return out


def run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run a child process; its wall time and peak RSS.

    The peak is the sum of each process's own VmHWM in the child's tree (`migrate` runs its reader as a
    second process), polled from /proc while it runs: `wait4`'s ru_maxrss would include the (large)
    benchmark parent's RSS inherited at fork, and would miss the grandchild.
    """
    import threading

    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    peaks: dict[int, int] = {}
    outputs: dict[str, bytes] = {}
    reader = threading.Thread(target=lambda: outputs.update(zip(("out", "err"), proc.communicate(), strict=True)))
    reader.start()
    while reader.is_alive():
        for pid in _tree(proc.pid):
            peaks[pid] = max(peaks.get(pid, 0), _hwm_kb(pid))
        time.sleep(0.05)
    reader.join()
    peak = sum(peaks.values())
    seconds = time.monotonic() - start
    if proc.returncode != 0:
        sys.stderr.write(outputs.get("err", b"").decode()[-3000:])
        raise SystemExit(f"{args[:4]} exited {proc.returncode}")
    return {"seconds": round(seconds, 3), "peak_rss_mb": round(peak / 1024, 1), "processes": len(peaks),
            "stdout": outputs.get("out", b"").decode(), "stderr": outputs.get("err", b"").decode()}
