"""Fault injection for the fault suite (STYLE.md point 11, tests/faults/).

`MLMD2KFP_FAULT_AT=point[:n]` acts the n-th time (default 1st) the process passes `point`;
`point:n+` acts on the n-th and every later pass. The action is `MLMD2KFP_FAULT_ACTION`:
`kill` (default: SIGKILL itself), `sigterm` (the operator's stop request) or `drop-connection`
(the server ends this database session, as a failover or an administrator's KILL would).
`MLMD2KFP_FAULT_TRACE=file` appends every point passed to `file` (to choose points from).
Unset, a fault point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
from typing import Any

_hits: dict[str, int] = {}
_parent: int | None = None


def set_fault_parent(pid: int) -> None:
    """In the reader process: a fault here stops the migrator `pid` (killed with it, or sent the SIGTERM)."""
    global _parent
    _parent = pid


def fault_point(name: str, conn: Any = None) -> None:
    """Act here if the environment asks for it (tests only)."""
    trace = os.environ.get("MLMD2KFP_FAULT_TRACE")
    if trace:
        with open(trace, "a", encoding="utf-8") as f:
            f.write(name + "\n")
    wanted = os.environ.get("MLMD2KFP_FAULT_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    every = nth.endswith("+")
    first = int(nth.rstrip("+") or 1)
    if _hits[name] < first or (_hits[name] > first and not every):
        return
    action = os.environ.get("MLMD2KFP_FAULT_ACTION", "kill")
    if action == "drop-connection" and conn is not None:
        _drop_connection(conn)
    elif action == "sigterm":
        os.kill(_parent or os.getpid(), signal.SIGTERM)
    else:
        if _parent:
            os.kill(_parent, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


def _drop_connection(conn: Any) -> None:
    """End `conn`'s server session from a second session (SQLite has none to end)."""
    from .dialects import end_session_sql

    statement = end_session_sql(conn)
    if statement is None:
        return
    with conn.engine.connect() as other:
        other.exec_driver_sql(statement)
        other.commit()
