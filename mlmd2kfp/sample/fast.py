"""`sample --fast`: large MLMD databases for benchmarks, written with bulk SQL (issue #6).

A one-repetition sample is first written through `ml-metadata` into a temporary SQLite pair (the
template); the target MLMD database's schema is created by `ml-metadata` itself; then every
run-scoped row of the template is copied N times with shifted ids, fresh run ids and shifted times
(multi-row INSERTs, a few thousand rows per statement). Pipeline contexts and types are shared, as
in a real install. `tests/sample/test_fast.py` proves the copies read back through `ml-metadata`'s
API exactly like library-written runs of the same shape.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, Connection, Engine

from ..batching import chunks
from ..db import make_engine, parse_url
from ..dialects import Dialect, dialect_for, sync_sequence_sql
from ..errors import ConfigError
from ..target.legacy import LEGACY_TABLES
from .api import SampleReport, write_sample
from .kfp_db import RunRecord, create_legacy_tables
from ..source.mlmd_api import open_store
from .scenarios import SCENARIOS_PER_REPETITION

RUN_SCOPED_CONTEXT_TYPES = ("system.PipelineRun", "KfpRun")
HOUR_MS = 3_600_000
BOOL_COLUMNS = {"is_custom_property", "is_index_step", "bool_value"}
CHUNK_ROWS = 2000


def _new_uuid(old: str, rep: int) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(f"{old}:{rep}".encode()).digest()[:16], version=4))


def _rows(conn: Connection, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in conn.execute(text(f'SELECT * FROM "{table}"')).mappings()]


class _Template:
    """The library-written repetition, loaded into memory once (a few hundred rows)."""

    def __init__(self, mlmd: Connection, kfp: Connection, report: SampleReport) -> None:
        self.tables = {t: _rows(mlmd, t) for t in (
            "Type", "TypeProperty", "Context", "ContextProperty", "ParentContext", "Execution", "ExecutionProperty",
            "Artifact", "ArtifactProperty", "Event", "EventPath", "Association", "Attribution")}
        types = {r["id"]: r["name"] for r in self.tables["Type"]}
        self.run_contexts = {r["id"] for r in self.tables["Context"] if types[r["type_id"]] in RUN_SCOPED_CONTEXT_TYPES}
        self.max = {t: max((r["id"] for r in self.tables[t]), default=0) for t in
                    ("Context", "Execution", "Artifact", "Event", "Association", "Attribution")}
        self.kfp = {t.name: _rows(kfp, t.name) for t in LEGACY_TABLES}
        self.report = report
        self.names = {r["id"]: r["name"] for r in self.tables["Context"] if r["id"] in self.run_contexts}


def _replicate(t: _Template, rep: int) -> dict[str, list[dict[str, Any]]]:
    """The rows of repetition `rep` (0 = the template's own run-scoped rows)."""
    off = {k: v * rep for k, v in t.max.items()}
    shift = rep * SCENARIOS_PER_REPETITION * HOUR_MS
    names = {old: (name if rep == 0 else _rename(name, rep)) for old, name in t.names.items()}

    def ctx(cid: int) -> int:
        return cid + off["Context"] if cid in t.run_contexts else cid

    def swap(value: Any) -> Any:
        if isinstance(value, str) and rep:
            for old in t.names.values():
                if old in value:
                    value = value.replace(old, _rename(old, rep))
        return value

    def timed(row: dict[str, Any]) -> dict[str, Any]:
        for col in ("create_time_since_epoch", "last_update_time_since_epoch", "milliseconds_since_epoch"):
            if col in row and row[col]:
                row[col] = row[col] + shift
        return row

    out: dict[str, list[dict[str, Any]]] = {}
    out["Context"] = [timed({**r, "id": ctx(r["id"]), "name": names[r["id"]]})
                      for r in t.tables["Context"] if r["id"] in t.run_contexts]
    out["ContextProperty"] = [{**r, "context_id": ctx(r["context_id"]), "string_value": swap(r["string_value"])}
                              for r in t.tables["ContextProperty"] if r["context_id"] in t.run_contexts]
    out["ParentContext"] = [{**r, "context_id": ctx(r["context_id"])}
                            for r in t.tables["ParentContext"] if r["context_id"] in t.run_contexts]
    out["Execution"] = [timed({**r, "id": r["id"] + off["Execution"], "name": swap(r["name"])})
                        for r in t.tables["Execution"]]
    props = []
    for r in t.tables["ExecutionProperty"]:
        row = {**r, "execution_id": r["execution_id"] + off["Execution"], "string_value": swap(r["string_value"])}
        if r["name"] == "parent_dag_id" and r["int_value"] is not None:
            row["int_value"] = r["int_value"] + off["Execution"]
        if r["name"] == "cached_execution_id" and r["string_value"]:
            row["string_value"] = str(int(r["string_value"]) + off["Execution"])
        props.append(row)
    out["ExecutionProperty"] = props
    out["Artifact"] = [timed({**r, "id": r["id"] + off["Artifact"], "uri": swap(r["uri"])}) for r in t.tables["Artifact"]]
    out["ArtifactProperty"] = [{**r, "artifact_id": r["artifact_id"] + off["Artifact"]}
                               for r in t.tables["ArtifactProperty"]]
    out["Event"] = [timed({**r, "id": r["id"] + off["Event"], "artifact_id": r["artifact_id"] + off["Artifact"],
                           "execution_id": r["execution_id"] + off["Execution"]}) for r in t.tables["Event"]]
    out["EventPath"] = [{**r, "event_id": r["event_id"] + off["Event"]} for r in t.tables["EventPath"]]
    out["Association"] = [{**r, "id": r["id"] + off["Association"], "context_id": ctx(r["context_id"]),
                           "execution_id": r["execution_id"] + off["Execution"]} for r in t.tables["Association"]]
    out["Attribution"] = [{**r, "id": r["id"] + off["Attribution"], "context_id": ctx(r["context_id"]),
                           "artifact_id": r["artifact_id"] + off["Artifact"]} for r in t.tables["Attribution"]]
    return out


def _rename(name: str, rep: int) -> str:
    try:
        uuid.UUID(name)
        return _new_uuid(name, rep)
    except ValueError:
        return f"{name}-r{rep}"  # KfpRun contexts are named by workflow name


def _insert(conn: Connection, table: str, rows: list[dict[str, Any]], lower: bool, booleans: bool) -> None:
    if not rows:
        return
    name = table.lower() if lower else table
    cols = list(rows[0])
    d = dialect_for(conn)
    sql = text(f"INSERT INTO {d.q(name) if not lower else name} ({', '.join(cols)}) "
               f"VALUES ({', '.join(':' + c for c in cols)})")
    if booleans:
        rows = [{k: (bool(v) if k in BOOL_COLUMNS and v is not None else v) for k, v in r.items()} for r in rows]
    for part in chunks(rows, CHUNK_ROWS):
        conn.execute(sql, part)


def write_fast_sample(mlmd_url: str, kfp_url: str, *, runs: int, seed: int = 0, single_user: bool = False,
                      on_progress: Callable[[int, int], None] | None = None) -> list[RunRecord]:
    """Write `runs` runs (rounded up to whole repetitions of the scenario set) with bulk SQL.

    Raises:
        ConfigError: a database is not empty.
    """
    reps = max(1, -(-runs // SCENARIOS_PER_REPETITION))
    template = _load_template(seed, single_user)
    m_url = parse_url(mlmd_url, "MLMD")
    kfp_engine = make_engine(kfp_url, "KFP")
    mlmd_engine = make_engine(m_url, "MLMD")
    _require_empty(m_url, kfp_engine)
    with mlmd_engine.connect() as conn:
        d = dialect_for(conn)
    _write_shared_mlmd(mlmd_engine, template, d)
    _write_mlmd_copies(mlmd_engine, template, d, reps, on_progress)
    _sync_sequences(mlmd_engine, d)
    _write_kfp_copies(kfp_engine, template, reps)
    records = [_copy_record(r, rep) for rep in range(reps) for r in template.report.runs]
    mlmd_engine.dispose()
    kfp_engine.dispose()
    return records


def append_fast_runs(mlmd_url: str, kfp_url: str, *, first: int, reps: int, seed: int = 0,
                     single_user: bool = False) -> list[RunRecord]:
    """Add repetitions `first` .. `first + reps - 1` of the scenario set to a store `write_fast_sample` wrote
    with the same seed and mode (new runs arriving while the old KFP serves: the window benchmark)."""
    template = _load_template(seed, single_user)
    kfp_engine, mlmd_engine = make_engine(kfp_url, "KFP"), make_engine(parse_url(mlmd_url, "MLMD"), "MLMD")
    with mlmd_engine.connect() as conn:
        d = dialect_for(conn)
    _write_mlmd_copies(mlmd_engine, template, d, reps, None, first)
    _sync_sequences(mlmd_engine, d)
    with kfp_engine.begin() as conn:
        _insert_kfp(conn, "run_details", [_kfp_run(r, rep) for rep in range(first, first + reps)
                                          for r in template.kfp["run_details"]])
        _insert_kfp(conn, "tasks", [_kfp_task(r, rep, template.max["Execution"]) for rep in range(first, first + reps)
                                    for r in template.kfp["tasks"]])
    mlmd_engine.dispose()
    kfp_engine.dispose()
    return [_copy_record(r, rep) for rep in range(first, first + reps) for r in template.report.runs]


def _load_template(seed: int, single_user: bool) -> _Template:
    """Write one repetition through `ml-metadata` into a temporary SQLite pair and load it."""
    with tempfile.TemporaryDirectory() as tmp:
        tm, tk = f"sqlite:///{Path(tmp) / 'm.sqlite'}", f"sqlite:///{Path(tmp) / 'k.sqlite'}"
        report = write_sample(tm, tk, seed=seed, single_user=single_user)
        te, tke = create_engine(tm), create_engine(tk)
        with te.connect() as mconn, tke.connect() as kconn:
            template = _Template(mconn, kconn, report)
        te.dispose()
        tke.dispose()
    return template


def _require_empty(m_url: URL, kfp_engine: Engine) -> None:
    """Refuse an MLMD database with contexts or a KFP database with runs."""
    store = open_store(m_url)  # ml-metadata creates the schema (version 10) and its nine simple types
    if store.get_contexts():
        raise ConfigError("the MLMD database already holds contexts; `sample --fast` writes only into an empty one")
    del store
    with kfp_engine.connect() as conn:
        if "run_details" in inspect(conn).get_table_names() and conn.execute(text("SELECT COUNT(*) FROM run_details")).scalar():
            raise ConfigError("the KFP database already holds runs; `sample --fast` writes only into an empty one")


def _write_shared_mlmd(mlmd_engine: Engine, template: _Template, d: Dialect) -> None:
    """Insert the rows every run shares: types the store lacks, type properties, pipeline contexts."""
    lower, booleans = d.lower_case_mlmd, d.native_booleans
    with mlmd_engine.begin() as conn:
        existing = {r[0] for r in conn.execute(text(f"SELECT id FROM {'type' if lower else _q(conn, 'Type')}"))}
        _insert(conn, "Type", [r for r in template.tables["Type"] if r["id"] not in existing], lower, booleans)
        _insert(conn, "TypeProperty", template.tables["TypeProperty"], lower, booleans)
        shared = [r for r in template.tables["Context"] if r["id"] not in template.run_contexts]
        _insert(conn, "Context", shared, lower, booleans)
        _insert(conn, "ContextProperty", [r for r in template.tables["ContextProperty"]
                                          if r["context_id"] not in template.run_contexts], lower, booleans)


def _write_mlmd_copies(mlmd_engine: Engine, template: _Template, d: Dialect, reps: int,
                       on_progress: Callable[[int, int], None] | None, first: int = 0) -> None:
    """Insert `reps` copies of the run-scoped MLMD rows (repetitions `first` on), 20 repetitions per
    transaction."""
    lower, booleans = d.lower_case_mlmd, d.native_booleans
    for start in range(0, reps, 20):
        with mlmd_engine.begin() as conn:
            for rep in range(first + start, first + min(reps, start + 20)):
                rows = _replicate(template, rep)
                for table in ("Context", "ContextProperty", "ParentContext", "Execution", "ExecutionProperty",
                              "Artifact", "ArtifactProperty", "Event", "EventPath", "Association", "Attribution"):
                    _insert(conn, table, rows[table], lower, booleans)
        if on_progress:
            on_progress(min(reps, start + 20), reps)


def _sync_sequences(mlmd_engine: Engine, d: Dialect) -> None:
    """Move the id sequences past the copied ids (where the backend has sequences)."""
    with mlmd_engine.begin() as conn:
        for table in ("Type", "Context", "Execution", "Artifact", "Event", "Association", "Attribution"):
            statement = sync_sequence_sql(d, d.mlmd_name(table))
            if statement:
                conn.execute(text(statement))


def _write_kfp_copies(kfp_engine: Engine, template: _Template, reps: int) -> None:
    """Create KFP's pre-upgrade tables and insert the shared rows, then `reps` copies of the run rows."""
    with kfp_engine.begin() as conn:
        create_legacy_tables(conn)
        for name in ("experiments", "pipelines", "pipeline_versions"):
            _insert_kfp(conn, name, template.kfp[name])
        for start in range(0, reps, 50):
            rd, tasks = [], []
            for rep in range(start, min(reps, start + 50)):
                rd += [_kfp_run(r, rep) for r in template.kfp["run_details"]]
                tasks += [_kfp_task(r, rep, template.max["Execution"]) for r in template.kfp["tasks"]]
            _insert_kfp(conn, "run_details", rd)
            _insert_kfp(conn, "tasks", tasks)


def _copy_record(r: RunRecord, rep: int) -> RunRecord:
    """The record of run `r`'s copy in repetition `rep` (0 = the template's own run)."""
    return RunRecord(r.scenario, _new_uuid(r.run_id, rep) if rep else r.run_id, r.namespace,
                     r.pod_namespace, r.pipeline, r.workflow_name if not rep else f"{r.workflow_name}-r{rep}",
                     r.state, r.created_s, r.finished_s, None, orphan=r.orphan)


def _q(conn: Connection, name: str) -> str:
    return dialect_for(conn).q(name)


def _kfp_run(row: dict[str, Any], rep: int) -> dict[str, Any]:
    if rep == 0:
        return row
    shift = rep * SCENARIOS_PER_REPETITION * 3600
    return {**row, "UUID": _new_uuid(row["UUID"], rep), "Name": f"{row['Name']}-r{rep}",
            "DisplayName": f"{row['DisplayName']} r{rep}",
            "CreatedAtInSec": row["CreatedAtInSec"] + shift, "ScheduledAtInSec": (row["ScheduledAtInSec"] or 0) + shift,
            "FinishedAtInSec": row["FinishedAtInSec"] + shift if row["FinishedAtInSec"] else 0}


def _kfp_task(row: dict[str, Any], rep: int, max_exec: int) -> dict[str, Any]:
    if rep == 0:
        return row
    out = {**row, "UUID": _new_uuid(row["UUID"], rep), "RunUUID": _new_uuid(row["RunUUID"], rep)}
    if row["MLMDExecutionID"]:
        out["MLMDExecutionID"] = str(int(row["MLMDExecutionID"]) + rep * max_exec)
    out["Payload"] = json.dumps({k: v for k, v in out.items() if k != "Payload"}, separators=(",", ":"))
    return out


def _insert_kfp(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    d = dialect_for(conn)
    cols = list(rows[0])
    sql = text(f"INSERT INTO {d.q(table)} ({', '.join(d.q(c) for c in cols)}) VALUES "
               f"({', '.join(':p' + str(i) for i in range(len(cols)))})")
    params = [{f"p{i}": r[c] for i, c in enumerate(cols)} for r in rows]
    for part in chunks(params, CHUNK_ROWS):
        conn.execute(sql, part)

