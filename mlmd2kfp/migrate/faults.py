"""Fault injection for the kill-and-resume tests (STYLE.md point 11): `MLMD2KFP_FAULT_AT=point[:n]`
makes the process SIGKILL itself the n-th time (default 1st) it passes `point`. Unset, it costs a
dict lookup."""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    """Die here if the environment asks for it (tests only)."""
    wanted = os.environ.get("MLMD2KFP_FAULT_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
