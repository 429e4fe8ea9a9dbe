"""What the MLMD and KFP databases hold, counted in SQL (for `plan` and its ledger of unmapped rows)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import case, exists, func, inspect, select
from sqlalchemy.engine import Connection

from ..bitmap import Bitmap
from ..mappers.enums import KFP_EXECUTION_TYPES
from ..records import LedgerEntry
from .reader import MlmdReader

V1_RUN_CONTEXT_TYPES = ("KfpRun", "pipeline_run")
"""Run context types of KFP v1 (never migrated: ledger `unsupported-v1`)."""
EXECUTION_STATE_NAMES = {None: "NULL", 0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED",
                         5: "CACHED", 6: "CANCELED"}


@dataclass
class SourceInventory:
    """Row counts of the MLMD database and what belongs to no run."""

    tables: dict[str, int] = field(default_factory=dict)
    executions_by_type_state: Counter[tuple[str, str]] = field(default_factory=Counter)
    artifacts_by_type: Counter[str] = field(default_factory=Counter)
    contexts_by_type: Counter[str] = field(default_factory=Counter)
    kfp_artifact_ids_max: int = 0


def dangling_events(t: Any) -> Any:
    """SELECT of the ids of events whose execution row is missing (no run can claim them)."""
    ev, ex = t.event.c, t.execution.c
    return select(ev.id).where(~exists().where(ex.id == ev.execution_id)).order_by(ev.id)


def runless_reason(type_name: str) -> str:
    """The ledger reason of an execution in no run context (mapping.md §7)."""
    if type_name in KFP_EXECUTION_TYPES:
        return "no-run"
    return "unsupported-v1" if type_name.startswith("components.") else "unsupported-type"


def runless_executions(reader: MlmdReader, in_run: Bitmap) -> Iterator[tuple[int, str]]:
    """(id, type name) of the executions not in `in_run` (`executions_in_runs`), in id order.

    A streamed scan against bitmaps, no per-row subquery: MLMD's SQLite schema has no index that serves a
    `NOT EXISTS` over `Association`, which made it quadratic."""
    ex = reader.t.execution.c
    conn, streamed = reader.mlmd, {"yield_per": 5000}  # per statement: the connection's options stay as they are
    names = {i: n for i, (n, _) in reader.types.items()}
    for execution_id, type_id in conn.execute(select(ex.id, ex.type_id).order_by(ex.id), execution_options=streamed):
        if execution_id not in in_run:
            yield int(execution_id), names.get(type_id, "?")


def executions_in_runs(reader: MlmdReader) -> Bitmap:
    """The executions associated with a `system.PipelineRun` context (two streamed scans)."""
    t = reader.t
    c, a = t.context.c, t.association.c
    conn, streamed = reader.mlmd, {"yield_per": 5000}
    run_contexts, in_run = Bitmap(), Bitmap()
    twins = reader.twin_run_contexts  # not migrated: their executions are in no run unless another has them
    for (context_id,) in conn.execute(select(c.id).where(c.type_id.in_(reader.run_type_ids or [-1])),
                                      execution_options=streamed):
        if context_id not in twins:
            run_contexts.add(context_id)
    for context_id, execution_id in conn.execute(select(a.context_id, a.execution_id), execution_options=streamed):
        if context_id in run_contexts:
            in_run.add(execution_id)
    return in_run


def events_and_artifacts_in_no_run(reader: MlmdReader, in_run: Bitmap) -> dict[str, int]:
    """MLMD rows no run's read touches besides the executions in no run (`runless_executions`): events of
    executions outside `in_run` (or of missing ones), artifacts no event of a run's execution names. With
    the distinct rows read run by run they make up the whole store, which is how `migrate` reports what it
    read. Two streamed scans."""
    t, conn, streamed = reader.t, reader.mlmd, {"yield_per": 5000}
    out = {"events": 0, "artifacts": 0}
    touched = Bitmap()
    for execution_id, artifact_id in conn.execute(select(t.event.c.execution_id, t.event.c.artifact_id),
                                                  execution_options=streamed):
        if execution_id in in_run:
            touched.add(artifact_id)
        else:
            out["events"] += 1
    for (artifact_id,) in conn.execute(select(t.artifact.c.id), execution_options=streamed):
        out["artifacts"] += artifact_id not in touched
    return out


def is_v2_artifact_type(name: str) -> bool:
    """KFP v2 artifact types are schema titles (`system.Model`, `google.VertexModel`); v1 ones are bare."""
    return "." in name and not name.startswith("mlmd.")


DAG_DRIVER_NOTE = "dag-driver-failure-not-in-mlmd"
"""The ledger reason of the one note per migration that such failures cannot be seen (mapping.md §3)."""


def runless_entries(reader: MlmdReader, in_run: Bitmap, linked: Container[int], run_id: str) -> Iterator[LedgerEntry]:
    """The ledger of MLMD rows no run accounts for, filed under `run_id` (mapping.md §7): executions in no
    run (`no-run`, `unsupported-v1`, `unsupported-type`), artifacts of v1 types and v2 ones outside
    `linked` (`orphan-artifact`: no migrated run links them), events of missing executions and v1 run
    contexts; `in_run` is `executions_in_runs`; and one note that MLMD holds no row for a DAG whose driver
    failed before creating its execution (mapping.md §3 (v3): the PR head writes a FAILED row for it, the
    migration cannot). Streamed scans only (`plan` counts these entries, `migrate` writes them)."""
    yield LedgerEntry(run_id, "migration", 0, DAG_DRIVER_NOTE, "a DAG whose driver failed before its MLMD "
                      "execution existed (input resolution, condition evaluation) left no row to migrate")
    names = {i: n for i, (n, _) in reader.types.items()}
    m = reader.t
    c, art = m.context.c, m.artifact.c
    conn, streamed = reader.mlmd, {"yield_per": 5000}  # per statement, as in runless_executions
    for execution_id, type_name in runless_executions(reader, in_run):
        yield LedgerEntry(run_id, "execution", execution_id, runless_reason(type_name), type_name)
    for r in conn.execute(select(art.id, art.type_id).order_by(art.id), execution_options=streamed):
        name = names.get(r.type_id, "?")
        if not is_v2_artifact_type(name):
            yield LedgerEntry(run_id, "artifact", r.id, "unsupported-v1", name)
        elif r.id not in linked:
            yield LedgerEntry(run_id, "artifact", r.id, "orphan-artifact")
    for r in conn.execute(dangling_events(m), execution_options=streamed):
        yield LedgerEntry(run_id, "event", r.id, "dangling-event", "its execution row does not exist")
    for context_id, name in sorted(reader.twin_run_contexts.items()):
        yield LedgerEntry(run_id, "context", context_id, "duplicate-run", f"run {name}: a second run context with "
                          "this run id (another `system.PipelineRun` type row); the first one is migrated")
    v1_types = [i for i, (n, k) in reader.types.items() if k == 2 and n in V1_RUN_CONTEXT_TYPES]
    for r in conn.execute(select(c.id, c.type_id).where(c.type_id.in_(v1_types or [-1])).order_by(c.id),
                          execution_options=streamed):
        yield LedgerEntry(run_id, "context", r.id, "unsupported-v1", names.get(r.type_id, "?"))


def take_inventory(reader: MlmdReader) -> SourceInventory:
    """Count MLMD rows per table, executions per type/state, artifacts and contexts per type (what belongs
    to no run is `runless_entries`)."""
    t, conn = reader.t, reader.mlmd
    inv = SourceInventory()
    for name in ("type", "context", "execution", "artifact", "event", "association", "attribution",
                 "execution_property", "artifact_property", "context_property", "parent_context", "event_path"):
        table = getattr(t, name)
        inv.tables[table.name] = int(conn.execute(select(func.count()).select_from(table)).scalar() or 0)
    names = {i: n for i, (n, _) in reader.types.items()}
    ex = t.execution.c
    for type_id, state, n in conn.execute(select(ex.type_id, ex.last_known_state, func.count())
                                          .group_by(ex.type_id, ex.last_known_state)):
        inv.executions_by_type_state[(names.get(type_id, "?"), EXECUTION_STATE_NAMES.get(state, str(state)))] += n
    a = t.artifact.c
    for type_id, n in conn.execute(select(a.type_id, func.count()).group_by(a.type_id)):
        inv.artifacts_by_type[names.get(type_id, "?")] += n
    c = t.context.c
    for type_id, n in conn.execute(select(c.type_id, func.count()).group_by(c.type_id)):
        inv.contexts_by_type[names.get(type_id, "?")] += n
    inv.kfp_artifact_ids_max = int(conn.execute(select(func.max(a.id))).scalar() or 0)
    return inv


def count_run_contexts(reader: MlmdReader, after: int = 0) -> int:
    """The number of `system.PipelineRun` contexts (the progress bar's total), of those after context id `after`
    (a resumed pass counts only what is left)."""
    c = reader.t.context.c
    return int(reader.mlmd.execute(select(func.count()).where(c.type_id.in_(reader.run_type_ids or [-1]),
                                                               c.id > after)).scalar() or 0)


@dataclass
class KfpInventory:
    """What the KFP database holds that the plan reports on."""

    runs: int = 0
    runs_without_namespace: int = 0
    old_tasks_cache_rows: int | None = None
    old_tasks_node_rows: int | None = None


def contradicting_runs(conn: Connection, multi_user: bool, examples: int = 3) -> tuple[int, list[str]]:
    """Runs whose `run_details.Namespace` contradicts the install mode (issue #27 item 5): in multi-user mode
    runs without a namespace, in single-user mode runs with one; their count and the first ids."""
    from sqlalchemy import Column, MetaData, String, Table

    rd = Table("run_details", MetaData(), Column("UUID", String), Column("Namespace", String))
    empty = func.coalesce(rd.c.Namespace, "") == ""
    wrong = empty if multi_user else ~empty
    n = int(conn.execute(select(func.count()).select_from(rd).where(wrong)).scalar() or 0)
    first = [r[0] for r in conn.execute(select(rd.c.UUID).where(wrong).order_by(rd.c.UUID).limit(examples))] if n else []
    return n, first


def take_kfp_inventory(conn: Connection, old_tasks: bool = True) -> KfpInventory:
    """Run counts (for multi-user detection) and, unless told not to (`migrate` counts them once, after its
    pass: a scan of the whole table), the old `tasks` table's two populations."""
    from sqlalchemy import Column, MetaData, String, Table

    inv = KfpInventory()
    names = set(inspect(conn).get_table_names())
    md = MetaData()
    if "run_details" in names:
        rd = Table("run_details", md, Column("Namespace", String))
        row = conn.execute(select(func.count(), func.sum(case((rd.c.Namespace == "", 1), else_=0)))).one()
        inv.runs, inv.runs_without_namespace = int(row[0] or 0), int(row[1] or 0)
    if old_tasks and "tasks" in names:
        columns = {col["name"] for col in inspect(conn).get_columns("tasks")}
        if "MLMDExecutionID" in columns:
            tasks = Table("tasks", md, Column("MLMDExecutionID", String))
            row = conn.execute(select(func.sum(case((tasks.c.MLMDExecutionID != "", 1), else_=0)),
                                      func.sum(case((tasks.c.MLMDExecutionID == "", 1), else_=0)))).one()
            inv.old_tasks_cache_rows, inv.old_tasks_node_rows = int(row[0] or 0), int(row[1] or 0)
    return inv

