"""What the tool wrote for a run, as one digest (issue #27 item 2; docs/mapping.md W15).

`migrate` records, per run, a SHA-256 over the `tasks` and `artifact_tasks` rows it wrote (ids of the tool's
versions only: rows KFP writes itself are not the tool's), and a mark of the run's `run_details` state then. A later
pass, `verify` and `rollback` read the rows back and compare: equal digests mean nobody changed what the tool
wrote. The same function digests rows about to be written (JSON columns as canonical text) and rows read
back (JSON as text, or parsed on PostgreSQL, or rewritten by MySQL 8's JSON type): every value is brought to
one canonical form first, so the digest does not depend on the backend.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import bindparam, func, text
from sqlalchemy.engine import Connection

from ..batching import chunks
from ..dialects import dialect_for
from .run_sums import WRITTEN_PARTS, run_sums
from .schema import ARTIFACT_TASKS, TASKS

TASK_COLUMNS = tuple(c.name for c in TASKS.columns)
LINK_COLUMNS = tuple(c.name for c in ARTIFACT_TASKS.columns)
_KINDS = {c.name: c.kind for c in (*TASKS.columns, *ARTIFACT_TASKS.columns)}
UNORDERED = frozenset({"InputParameters", "OutputParameters"})
"""JSON lists whose order is not significant (kfp-native-schema.md §3.2: KFP's merge rebuilds them)."""
RUN_COLUMNS = ("State", "Conditions", "FinishedAtInSec")
"""The `run_details` columns KFP changes when it takes a run up again (RetryRun sets it running, unfinished;
the persistence agent then follows the new workflow): their values make the run's mark."""


TOOL_ID_VERSIONS = ("8", "5")
"""The version digit of the ids this tool writes: 8 since mapping version 4 (in key order, docs/mapping.md
§2), 5 before it (rows a rerun rewrites); KFP's API server writes version 4."""


def is_tool_id(value: Any) -> bool:
    """A row id this tool writes (`TOOL_ID_VERSIONS`)."""
    return isinstance(value, str) and len(value) == 36 and value[14] in TOOL_ID_VERSIONS


def tool_written(table: Any) -> Any:
    """Rows this tool wrote: the version digit of their id (position 15) is one of `TOOL_ID_VERSIONS`."""
    return func.substr(table.c.UUID, 15, 1).in_(TOOL_ID_VERSIONS)


def _whole(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole(v) for v in value]
    return value


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2 ** 53 else value


_DECODE = json.JSONDecoder(parse_float=_number).decode
_ENCODE = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def _canonical(column: str, value: Any) -> Any:
    if value is None:
        return None
    kind = _KINDS.get(column, "")
    if kind == "json":
        if isinstance(value, (str, bytes)):  # text: rows about to be written, rows read back but on PostgreSQL
            try:
                value = _DECODE(value if isinstance(value, str) else value.decode("utf-8"))
            except ValueError:
                return ["text", value if isinstance(value, str) else value.decode("utf-8", "replace")]
        else:  # parsed by the driver (PostgreSQL)
            value = _whole(value)
        if column in UNORDERED and isinstance(value, list):  # the order of parameters is not significant
            value = sorted(value, key=_ENCODE)
        return value
    if kind.startswith("int"):
        return int(value)
    if kind == "double":
        return repr(float(value)) if not math.isnan(float(value)) else "nan"
    return value if isinstance(value, str) else str(value)


def _row_line(row: Mapping[str, Any], columns: tuple[str, ...]) -> bytes:
    return _ENCODE([_canonical(c, row.get(c)) for c in columns]).encode("utf-8", "surrogatepass")


def rows_digest(tasks: Iterable[Mapping[str, Any]], links: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 over a run's tool-written task and link rows (dicts by column name), in id order; other rows
    (KFP's own, version-4 ids) are left out."""
    digest = hashlib.sha256()
    for label, rows, columns in ((b"T", tasks, TASK_COLUMNS), (b"L", links, LINK_COLUMNS)):
        lines = sorted((str(r["UUID"]), _row_line(r, columns)) for r in rows if is_tool_id(r["UUID"]))
        for _, line in lines:
            digest.update(label + line + b"\n")
    return digest.hexdigest()


def run_mark(row: Mapping[str, Any] | None) -> str:
    """A short digest of a `run_details` row's state (`RUN_COLUMNS`); '' for a run that has no row."""
    if row is None:
        return ""
    values = [None if row.get(c) is None else str(row.get(c)) for c in RUN_COLUMNS]
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()[:32]


def read_rows_digests(conn: Connection, tasks_table: str, run_ids: list[str]) -> dict[str, str]:
    """The digest of each run's tool-written rows as they are now (runs without any: the digest of nothing)."""
    q = dialect_for(conn).q
    tasks: dict[str, list[dict[str, Any]]] = {r: [] for r in run_ids}
    links: dict[str, list[dict[str, Any]]] = {r: [] for r in run_ids}
    for table, columns, into in ((tasks_table, TASK_COLUMNS, tasks), ("artifact_tasks", LINK_COLUMNS, links)):
        sql = text(f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)} WHERE {q('RunUUID')} IN :ids") \
            .bindparams(bindparam("ids", expanding=True))
        for part in chunks(run_ids):
            for row in conn.execute(sql, {"ids": part}).mappings():
                into[row["RunUUID"]].append(dict(row))
    return {r: rows_digest(tasks[r], links[r]) for r in run_ids}


def read_run_marks(conn: Connection, run_ids: list[str]) -> dict[str, str]:
    """`run_mark` of each run's `run_details` row now ('' for a run with none)."""
    q = dialect_for(conn).q
    sql = text(f"SELECT {q('UUID')}, {', '.join(q(c) for c in RUN_COLUMNS)} FROM run_details WHERE {q('UUID')} IN :ids") \
        .bindparams(bindparam("ids", expanding=True))
    out = dict.fromkeys(run_ids, "")
    for part in chunks(run_ids):
        for row in conn.execute(sql, {"ids": part}).mappings():
            out[row["UUID"]] = run_mark(dict(row))
    return out


def rows_changed(conn: Connection, tasks_table: str, recorded: dict[str, tuple[str | None, str | None]],
                 sums_now: dict[str, str] | None = None) -> set[str]:
    """Of these runs ((digest, sums) recorded when their rows were written), those whose tool-written rows differ
    now from the digest. The sums the database computes (`run_sums`, no row shipped) prove a run unchanged
    where they equal what was recorded; they cover every row of the run (KFP's own too) and the stored text,
    so a run whose sums moved is read back into `rows_digest`, which decides (docs/mapping.md W15), as are runs
    recorded without sums (an earlier release, a MySQL whose SHA2 does not answer). `sums_now`: the sums of
    these runs (`WRITTEN_PARTS`) read already (a pass over many runs reads them for all at once)."""
    by_sums = {r: s for r, (_, s) in recorded.items() if s}
    now = run_sums(conn, tasks_table, list(by_sums), WRITTEN_PARTS) if by_sums and sums_now is None else sums_now
    unchanged = {r for r, s in by_sums.items() if now is not None and now.get(r) == s}
    rest = [r for r, (d, _) in recorded.items() if r not in unchanged and d is not None]
    if not rest:
        return set()
    digests = read_rows_digests(conn, tasks_table, rest)
    return {r for r in rest if digests[r] != recorded[r][0]}
