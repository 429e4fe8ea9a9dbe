"""Each MLMD run's change mark, read by verify with its own aggregate queries (issue #30).

A run's expected rows are derived from its context, the executions associated with it, their events and the
artifacts those events name. ml-metadata, the only writer KFP has, sets `last_update_time_since_epoch` on
every row it changes (a property included) and adds rows with new ids; so a run's mark is, per part, the
count, the sum of ids and the sum of update times of those rows: a row added, removed or changed through
ml-metadata moves it. One query per part over the whole store, grouped by run context (what `status --check
--mlmd-url` reads too), or over a chunk of contexts; no row leaves the server.

Not seen: a hand edit that keeps a row's update time, and a property row written without its owner's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from ..batching import chunks
from .source import RUN_TYPE, SqlSource, mlmd_table


def _parts(conn: Connection) -> list[tuple[str, str]]:
    """(aggregate columns, FROM and joins after the run context `c`) of each part, in a fixed order."""
    assoc, execution, event, artifact = (mlmd_table(conn, n) for n in ("Association", "Execution", "Event", "Artifact"))
    by_execution = f"JOIN {assoc} a ON a.context_id = c.id"
    return [
        ("COUNT(*), SUM(x.id), SUM(x.last_update_time_since_epoch)",
         f"{by_execution} JOIN {execution} x ON x.id = a.execution_id"),
        ("COUNT(*), SUM(x.id), SUM(x.artifact_id)", f"{by_execution} JOIN {event} x ON x.execution_id = a.execution_id"),
        ("COUNT(*), SUM(x.id), SUM(x.last_update_time_since_epoch)",
         f"{by_execution} JOIN {event} v ON v.execution_id = a.execution_id JOIN {artifact} x ON x.id = v.artifact_id"),
    ]


def run_marks(conn: Connection, context_ids: Iterable[int] | None = None) -> dict[int, tuple[str, str]]:
    """By run context id: (run id, mark) of every run of the store (`context_ids`: only these), a second
    context of one run id left out (no run of its own, docs/mapping.md M30)."""
    source = SqlSource(conn)
    run_types = [i for i, n in source._types().items() if n == RUN_TYPE]
    if not run_types:
        return {}
    twins = source.twin_run_contexts()
    where = f"c.type_id IN ({','.join(map(str, run_types))})"
    selections: list[list[int] | None] = [None] if context_ids is None else [
        list(c) for c in chunks(sorted(set(context_ids)))]
    found: dict[int, list[Any]] = {}
    ctx = mlmd_table(conn, "Context")
    for ids in selections:
        only = " AND c.id IN :ids" if ids is not None else ""
        params: dict[str, Any] = {"ids": ids} if ids is not None else {}
        asked = set(ids) if ids is not None else None
        for cid, name, updated in _rows(conn, f"SELECT c.id, c.name, c.last_update_time_since_epoch FROM {ctx} c "
                                              f"WHERE {where}{only}", params):
            if int(cid) not in twins:
                found[int(cid)] = [name, f"{updated}"]
        for columns, joins in _parts(conn):
            part = {int(r[0]): ":".join(str(int(v or 0)) for v in r[1:]) for r in _rows(
                conn, f"SELECT c.id, {columns} FROM {ctx} c {joins} WHERE {where}{only} GROUP BY c.id", params)}
            for cid, parts in found.items():
                if asked is None or cid in asked:
                    parts.append(part.get(cid, "0:0:0"))
    return {cid: (str(p[0]), hashlib.sha256("|".join(p[1:]).encode()).hexdigest()[:32]) for cid, p in found.items()}


def _rows(conn: Connection, sql: str, params: dict[str, Any]) -> Any:
    statement = text(sql)
    if "ids" in params:
        statement = statement.bindparams(bindparam("ids", expanding=True))
    return conn.execute(statement, params)
