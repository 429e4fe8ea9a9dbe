"""What the MLMD and KFP databases hold, counted in SQL (for `plan` and its ledger of unmapped rows)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, case, exists, func, inspect, select
from sqlalchemy.engine import Connection

from ..mappers.enums import KFP_EXECUTION_TYPES
from .reader import MlmdReader

EXECUTION_STATE_NAMES = {None: "NULL", 0: "UNKNOWN", 1: "NEW", 2: "RUNNING", 3: "COMPLETE", 4: "FAILED",
                         5: "CACHED", 6: "CANCELED"}


@dataclass
class SourceInventory:
    """Row counts of the MLMD database and what belongs to no run."""

    tables: dict[str, int] = field(default_factory=dict)
    executions_by_type_state: Counter[tuple[str, str]] = field(default_factory=Counter)
    artifacts_by_type: Counter[str] = field(default_factory=Counter)
    contexts_by_type: Counter[str] = field(default_factory=Counter)
    no_run_executions: Counter[str] = field(default_factory=Counter)
    """Executions associated with no `system.PipelineRun` context, by ledger reason."""
    kfp_artifact_ids_max: int = 0
    dangling_events: int = 0
    """Events whose execution row does not exist (ledger `dangling-event`)."""


def dangling_events(t: Any) -> Any:
    """SELECT of the ids of events whose execution row is missing (no run can claim them)."""
    ev, ex = t.event.c, t.execution.c
    return select(ev.id).where(~exists().where(ex.id == ev.execution_id)).order_by(ev.id)


def take_inventory(reader: MlmdReader) -> SourceInventory:
    """Count MLMD rows per table, executions per type/state, and executions that belong to no run."""
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
    assoc = t.association.c
    in_run = exists().where(and_(assoc.execution_id == ex.id, assoc.context_id == c.id,
                                 c.type_id.in_(reader.run_type_ids or [-1])))
    for type_id, n in conn.execute(select(ex.type_id, func.count()).where(~in_run).group_by(ex.type_id)):
        type_name = names.get(type_id, "?")
        if type_name in KFP_EXECUTION_TYPES:
            reason = "no-run"
        elif type_name.startswith("components."):
            reason = "unsupported-v1"
        else:
            reason = "unsupported-type"
        inv.no_run_executions[reason] += n
    inv.kfp_artifact_ids_max = int(conn.execute(select(func.max(a.id))).scalar() or 0)
    inv.dangling_events = int(conn.execute(select(func.count()).select_from(dangling_events(t).subquery())).scalar() or 0)
    return inv


def count_run_contexts(reader: MlmdReader) -> int:
    """The number of `system.PipelineRun` contexts (the progress bar's total)."""
    c = reader.t.context.c
    return int(reader.mlmd.execute(select(func.count()).where(c.type_id.in_(reader.run_type_ids or [-1]))).scalar() or 0)


def v1_run_contexts(inv: SourceInventory) -> int:
    """KFP v1 (`KfpRun`) and other non-v2 run contexts."""
    return sum(n for name, n in inv.contexts_by_type.items() if name in ("KfpRun", "pipeline_run"))


@dataclass
class KfpInventory:
    """What the KFP database holds that the plan reports on."""

    runs: int = 0
    runs_without_namespace: int = 0
    old_tasks_cache_rows: int | None = None
    old_tasks_node_rows: int | None = None


def take_kfp_inventory(conn: Connection) -> KfpInventory:
    """Run counts (for multi-user detection) and the old `tasks` table's two populations."""
    from sqlalchemy import Column, MetaData, String, Table

    inv = KfpInventory()
    names = set(inspect(conn).get_table_names())
    md = MetaData()
    if "run_details" in names:
        rd = Table("run_details", md, Column("Namespace", String))
        row = conn.execute(select(func.count(), func.sum(case((rd.c.Namespace == "", 1), else_=0)))).one()
        inv.runs, inv.runs_without_namespace = int(row[0] or 0), int(row[1] or 0)
    if "tasks" in names:
        columns = {col["name"] for col in inspect(conn).get_columns("tasks")}
        if "MLMDExecutionID" in columns:
            tasks = Table("tasks", md, Column("MLMDExecutionID", String))
            row = conn.execute(select(func.sum(case((tasks.c.MLMDExecutionID != "", 1), else_=0)),
                                      func.sum(case((tasks.c.MLMDExecutionID == "", 1), else_=0)))).one()
            inv.old_tasks_cache_rows, inv.old_tasks_node_rows = int(row[0] or 0), int(row[1] or 0)
    return inv

