"""Writing one batch of whole runs, with its checkpoint, in one transaction (mapping.md §2).

Per run: its previously migrated `artifact_tasks` and `tasks` rows are deleted and the new ones
inserted with multi-row statements; artifacts (shared between runs) are upserted by primary key and
deleted when no link uses them any more; the ledger, the run's change marks and the state row's
progress are written in the same transaction.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import MetaData, Table, and_, delete, exists, func, select, update
from sqlalchemy.engine import Connection

from ..batching import chunks
from ..dialects import copies_from_stdin, dialect_for, upsert
from ..mappers.keys import is_migrated_id
from ..records import LedgerEntry, RunRows
from ..target.digest import read_run_marks, rows_changed, rows_digest, tool_written
from ..target.run_sums import WRITTEN_PARTS, run_sums
from ..target.schema import ARTIFACT_TASKS, ARTIFACTS, TASKS
from ..faults import fault_point
from .state import LEDGER, RUNS, core_table, gate_opened, update_state

HAS_LIVE_ROWS = "has-live-rows"
"""Ledger reason of a run holding rows KFP wrote itself (version-4 ids): never rewritten (mapping.md §2)."""
KFP_OWNED = "kfp-owned"
"""Ledger reason of a run whose migrated rows KFP changed after the tool wrote them: KFP's, never rewritten
(docs/mapping.md W15)."""
EMPTY_DIGEST = rows_digest([], [])


@dataclass
class TargetTables:
    """Core tables of the target, with the physical name tasks are staged in."""

    tasks_name: str
    old_tasks_name: str | None
    """The pre-MLMD-removal table (`tasks` before cutover, `tasks_pre_migration` after), if present."""
    md: MetaData = field(default_factory=MetaData)

    def __post_init__(self) -> None:
        self.artifacts = core_table(ARTIFACTS, md=self.md)
        self.tasks = core_table(TASKS, self.tasks_name, md=self.md)
        self.links = core_table(ARTIFACT_TASKS, md=self.md)
        self.runs = core_table(RUNS, md=self.md)
        self.ledger = core_table(LEDGER, md=self.md)


@dataclass
class RunWork:
    """One mapped run waiting to be written."""

    context_id: int
    run_id: str
    marks: str
    rows: RunRows

    @property
    def size(self) -> int:
        """Rows this run writes (for batch sizing)."""
        return len(self.rows.tasks) + len(self.rows.links) + len(self.rows.artifacts) + 1


@dataclass
class BatchResult:
    """What one committed batch did."""

    runs: int = 0
    runs_skipped: Counter[str] = field(default_factory=Counter)
    runs_repaired: int = 0
    """Runs whose rows differed from what the tool wrote before the new KFP could have changed them: rewritten."""
    tasks: int = 0
    links: int = 0
    artifacts_upserted: int = 0
    deleted_tasks: int = 0
    deleted_links: int = 0
    deleted_artifacts: int = 0
    ledger: Counter[str] = field(default_factory=Counter)
    ledger_by_entity: Counter[tuple[str, str]] = field(default_factory=Counter)


def insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert plain rows in the caller's transaction: `COPY … FROM STDIN` on PostgreSQL (psycopg 3), the
    driver's executemany of one plain INSERT elsewhere (mysqlclient and PyMySQL send it as multi-row
    INSERTs). Values are passed as they are: the target's columns have no client-side conversions, so
    SQLAlchemy's per-row parameter processing is skipped (mapping.md W10)."""
    if not rows:
        return
    columns = list(rows[0])
    prep = conn.dialect.identifier_preparer
    names = ", ".join(prep.quote(c) for c in columns)
    if copies_from_stdin(conn):
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            with cursor.copy(f"COPY {prep.format_table(table)} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        return
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO {prep.format_table(table)} ({names}) VALUES ({', '.join([marker] * len(columns))})",
                         [tuple([row[c] for c in columns]) for row in rows])


def ledger_id(entry: LedgerEntry) -> str:
    """Primary key of a ledger row."""
    import hashlib

    return hashlib.sha256(f"{entry.run_id}|{entry.entity}|{entry.mlmd_id}|{entry.reason}".encode()).hexdigest()[:64]


def ledger_rows(entries: list[LedgerEntry]) -> list[dict[str, Any]]:
    """Ledger entries as rows, duplicates (same run, row and reason) collapsed."""
    rows: dict[str, dict[str, Any]] = {}
    for e in entries:
        rows.setdefault(ledger_id(e), {"id": ledger_id(e), "run_uuid": e.run_id, "entity": e.entity,
                                       "mlmd_id": e.mlmd_id, "reason": e.reason,
                                       # a detail quotes MLMD text, which may hold a NUL PostgreSQL cannot store
                                       "detail": e.detail.replace("\x00", "\\x00")[:2000]})
    return list(rows.values())


@dataclass
class _BatchPlan:
    """What `write_batch` decided about its runs before writing: which it rewrites and which it keeps."""

    work: list[RunWork]
    previous: dict[str, Any]
    """The runs' records from earlier passes (artifact ids, digest, run_details mark), by run id."""
    live: set[str]
    """Runs holding rows KFP wrote itself (`has-live-rows`)."""
    owned: set[str]
    """Runs whose migrated rows KFP changed (`kfp-owned`, docs/mapping.md W15)."""
    marks_now: dict[str, str]
    kept: set[str] = field(init=False)
    """Runs not rewritten: `live` and `owned`."""
    writable: list[RunWork] = field(init=False)
    """The runs rewritten, in batch order."""

    def __post_init__(self) -> None:
        self.kept = self.live | self.owned
        self.writable = [w for w in self.work if w.run_id not in self.kept]

    def was(self, run_id: str, column: str) -> Any:
        """A column of the run's earlier record (None for a run written for the first time)."""
        return getattr(self.previous[run_id], column) if run_id in self.previous else None

    def kept_reason(self, run_id: str) -> str:
        return KFP_OWNED if run_id in self.owned else HAS_LIVE_ROWS if run_id in self.live else ""


def write_batch(conn: Connection, t: TargetTables, work: list[RunWork], resume_after: int,
                source_name: str = "") -> BatchResult:
    """Write `work` of the MLMD source `source_name` and advance its checkpoint to `resume_after`, all in
    the caller's transaction.

    The reader refused runs of other sources before it read them (`producer.refuse_claimed`).
    """
    result = BatchResult()
    plan, repaired = _plan_batch(conn, t, work, source_name)
    writable = plan.writable
    result.runs_repaired = len(repaired & {w.run_id for w in writable})
    _delete_previous_rows(conn, t, [w.run_id for w in writable], result)  # 1
    _upsert_artifacts(conn, t, writable, result)  # 2
    task_rows, link_rows = _insert_tasks_and_links(conn, t, writable, result)  # 3, 4
    fault_point("mid-batch", conn)
    _delete_unused_artifacts(conn, t, plan, result)  # 5
    _write_ledger(conn, t, plan, result)  # 6
    sums = run_sums(conn, t.tasks.name, [w.run_id for w in writable], WRITTEN_PARTS) or {}
    _write_run_records(conn, t, plan, (_written_digests(task_rows, link_rows), sums), source_name, result)
    _checkpoint(conn, source_name, len(work), resume_after, result)  # 7
    return result


def _plan_batch(conn: Connection, t: TargetTables, work: list[RunWork], source_name: str
                ) -> tuple[_BatchPlan, set[str]]:
    """The runs' earlier records and which of them KFP owns now; and the damaged ones this batch repairs."""
    run_ids = [w.run_id for w in work]
    live = _runs_with_live_rows(conn, t, run_ids)
    previous: dict[str, Any] = {}
    for chunk in chunks(run_ids):
        for r in conn.execute(select(t.runs.c.run_uuid, t.runs.c.artifact_ids, t.runs.c.digest, t.runs.c.run_mark,
                                     t.runs.c.sums).where(t.runs.c.run_uuid.in_(chunk))):
            previous[r.run_uuid] = r
    owned, repaired, marks_now = _changed_since_written(conn, t, run_ids, previous, live,
                                                        source_name in gate_opened(conn))
    return _BatchPlan(work, previous, live, owned, marks_now), repaired


def _delete_previous_rows(conn: Connection, t: TargetTables, run_ids: list[str], result: BatchResult) -> None:
    """1. The runs' rows of an earlier pass; children of the self-FK detached first (no deep cascades on MySQL)."""
    for chunk in chunks(run_ids):
        result.deleted_links += conn.execute(delete(t.links).where(t.links.c.RunUUID.in_(chunk))).rowcount or 0
        conn.execute(update(t.tasks).where(t.tasks.c.RunUUID.in_(chunk)).values(ParentTaskUUID=None))
        result.deleted_tasks += conn.execute(delete(t.tasks).where(t.tasks.c.RunUUID.in_(chunk))).rowcount or 0


def _upsert_artifacts(conn: Connection, t: TargetTables, writable: list[RunWork], result: BatchResult) -> None:
    """2. Artifacts (parents of links), upserted by primary key: a run shares them with others."""
    artifacts: dict[str, dict[str, Any]] = {}
    for w in writable:
        for a in w.rows.artifacts:
            artifacts.setdefault(a.uuid, {
                "UUID": a.uuid, "Namespace": a.namespace, "Type": a.type, "URI": a.uri, "URIHash": a.uri_hash,
                "Name": a.name, "Description": a.description, "CreatedAtInSec": a.created_at,
                "LastUpdateInSec": a.last_update, "Metadata": a.metadata, "NumberValue": a.number_value,
                "IdentityKey": a.identity_key})
    if artifacts:
        columns = [c for c in next(iter(artifacts.values())) if c != "UUID"]
        conn.execute(upsert(dialect_for(conn), t.artifacts, "UUID", columns), list(artifacts.values()))
        result.artifacts_upserted = len(artifacts)


def _insert_tasks_and_links(conn: Connection, t: TargetTables, writable: list[RunWork], result: BatchResult
                            ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """3. Tasks, parents before children (the mapper emits them in that order); 4. their links."""
    task_rows = [{
        "UUID": x.uuid, "Namespace": x.namespace, "RunUUID": x.run_uuid, "pods": x.pods,
        "CreatedAtInSec": x.created_at, "StartedInSec": x.started_at, "FinishedInSec": x.finished_at,
        "Fingerprint": x.fingerprint, "Name": x.name, "DisplayName": x.display_name,
        "ParentTaskUUID": x.parent_task_uuid, "State": x.state, "StatusMetadata": x.status_metadata,
        "StateHistory": x.state_history, "InputParameters": x.input_parameters,
        "OutputParameters": x.output_parameters, "Type": x.type, "TypeAttrs": x.type_attrs,
        "ScopePath": x.scope_path, "LogicalKey": x.logical_key or None,
    } for w in writable for x in w.rows.tasks]
    if task_rows:
        insert_rows(conn, t.tasks, task_rows)
    link_rows = [{
        "UUID": lk.uuid, "ArtifactID": lk.artifact_id, "TaskID": lk.task_id, "Type": lk.type,
        "Iteration": lk.iteration, "RunUUID": lk.run_uuid, "Producer": lk.producer, "ArtifactKey": lk.artifact_key,
    } for w in writable for lk in w.rows.links]
    if link_rows:
        insert_rows(conn, t.links, link_rows)
    result.tasks, result.links = len(task_rows), len(link_rows)
    return task_rows, link_rows


def _delete_unused_artifacts(conn: Connection, t: TargetTables, plan: _BatchPlan, result: BatchResult) -> None:
    """5. Artifacts the rewritten runs used before and no link uses any more (this tool's rows only)."""
    writable = plan.writable
    new_refs = {a.uuid for w in writable for a in w.rows.artifacts}
    stale = sorted({a for w in writable for a in json.loads(plan.was(w.run_id, "artifact_ids") or "[]")} - new_refs)
    for chunk in chunks(stale):
        unused = ~exists().where(t.links.c.ArtifactID == t.artifacts.c.UUID)
        result.deleted_artifacts += conn.execute(
            delete(t.artifacts).where(and_(t.artifacts.c.UUID.in_(chunk), unused))).rowcount or 0


def _write_ledger(conn: Connection, t: TargetTables, plan: _BatchPlan, result: BatchResult) -> None:
    """6. The ledger of the rewritten runs, replaced; a kept run keeps the ledger of the rows it keeps, and
    says why it was kept."""
    for chunk in chunks([w.run_id for w in plan.work]):  # the run records go first (written in `_write_run_records`)
        conn.execute(delete(t.runs).where(t.runs.c.run_uuid.in_(chunk)))
    writable_ids = [w.run_id for w in plan.writable]
    entries = [e for w in plan.writable for e in w.rows.ledger]
    entries += [LedgerEntry(w.run_id, "run", w.context_id, KFP_OWNED,
                            "KFP changed the rows the tool wrote for this run (a retry, …); it is KFP's now and never "
                            "rewritten") if w.run_id in plan.owned else
                LedgerEntry(w.run_id, "run", w.context_id, HAS_LIVE_ROWS,
                            "tasks or links written by KFP itself exist for this run; it is never rewritten")
                for w in plan.work if w.run_id in plan.kept]
    for chunk in chunks(writable_ids):
        conn.execute(delete(t.ledger).where(t.ledger.c.run_uuid.in_(chunk)))
    for chunk in chunks(sorted(plan.kept)):
        conn.execute(delete(t.ledger).where(and_(t.ledger.c.run_uuid.in_(chunk),
                                                 t.ledger.c.reason.in_((HAS_LIVE_ROWS, KFP_OWNED)))))
    rows = ledger_rows(entries)
    if rows:
        insert_rows(conn, t.ledger, rows)
    for e in entries:
        result.ledger[e.reason] += 1
        result.ledger_by_entity[(e.entity, e.reason)] += 1


def _write_run_records(conn: Connection, t: TargetTables, plan: _BatchPlan, written: tuple[dict[str, str], dict[str, str]],
                       source_name: str, result: BatchResult) -> None:
    """6. Each run's record (the earlier one deleted by `_write_ledger`): change marks, outcome, artifacts, and
    what was written, as digests and as the database's sums (a kept run keeps the record of what the tool
    wrote: the next pass compares against it)."""
    now, kept = int(time.time()), plan.kept
    digests, sums = written
    insert_rows(conn, t.runs, [{
        "run_uuid": w.run_id, "context_id": w.context_id, "marks": w.marks, "namespace": w.rows.namespace or "",
        "skipped": plan.kept_reason(w.run_id) or w.rows.skipped or "",
        "tasks": len(w.rows.tasks), "links": len(w.rows.links),
        "artifact_ids": json.dumps(sorted({a.uuid for a in w.rows.artifacts})) if w.run_id not in kept
        else (plan.was(w.run_id, "artifact_ids") or "[]"),
        "mlmd_artifact_ids": json.dumps(sorted({a.mlmd_artifact_id for a in w.rows.artifacts})),
        "migrated_at": now, "source_name": source_name,
        "digest": digests.get(w.run_id, EMPTY_DIGEST) if w.run_id not in kept else plan.was(w.run_id, "digest"),
        "run_mark": plan.marks_now.get(w.run_id, "") if w.run_id not in kept else plan.was(w.run_id, "run_mark"),
        "sums": sums.get(w.run_id) if w.run_id not in kept else plan.was(w.run_id, "sums"),
    } for w in plan.work])
    result.runs = len(plan.work)
    for w in plan.work:
        reason = plan.kept_reason(w.run_id) or w.rows.skipped
        if reason:
            result.runs_skipped[reason] += 1


def _checkpoint(conn: Connection, source_name: str, runs: int, resume_after: int, result: BatchResult) -> None:
    """7. The checkpoint, in the batch's transaction; the rows now, net of the rows rewritten, so that `status`
    during a pass shows them (`_totals` recounts at the end)."""
    skipped = sum(result.runs_skipped.values())
    fault_point("before-checkpoint", conn)
    update_state(conn, source_name, {"runs_migrated": runs - skipped, "runs_skipped": skipped,
                                     "tasks": result.tasks - result.deleted_tasks,
                                     "links": result.links - result.deleted_links}, last_context_id=resume_after)


def _written_digests(task_rows: list[dict[str, Any]], link_rows: list[dict[str, Any]]) -> dict[str, str]:
    """`rows_digest` of each run's rows about to be written."""
    tasks: dict[str, list[dict[str, Any]]] = {}
    links: dict[str, list[dict[str, Any]]] = {}
    for row in task_rows:
        tasks.setdefault(row["RunUUID"], []).append(row)
    for row in link_rows:
        links.setdefault(row["RunUUID"], []).append(row)
    return {run: rows_digest(tasks.get(run, []), links.get(run, [])) for run in set(tasks) | set(links)}


def _changed_since_written(conn: Connection, t: TargetTables, run_ids: list[str], previous: dict[str, Any],
                           live: set[str], opened: bool) -> tuple[set[str], set[str], dict[str, str]]:
    """Of the runs written before with a recorded digest, those whose rows differ from it now, split into
    KFP's (the gate opened on them once, KFP wrote rows of its own into the run, or `run_details` moved since)
    and damaged (repaired by rewriting them); and every run's `run_details` mark now (docs/mapping.md W15).
    Before the cutover (tasks staged beside the old `tasks`) no KFP can write into them: a change is damage."""
    marks_now = read_run_marks(conn, run_ids)
    changed = rows_changed(conn, t.tasks.name, {r: (row.digest, row.sums) for r, row in previous.items()})
    if not changed:
        return set(), set(), marks_now
    # a run whose `run_details` row is gone was deleted (by the old server, or by KFP): nobody's, its rows go
    owned = {r for r in changed if marks_now.get(r, "") and t.tasks.name == "tasks" and (
        opened or r in live or marks_now.get(r, "") != (previous[r].run_mark or ""))}
    return owned, {r for r in changed - owned if marks_now.get(r, "")}, marks_now


def runs_changed_by_kfp(conn: Connection, t: TargetTables) -> set[str]:
    """Every migrated run whose rows KFP changed after the tool wrote them (the rule of `write_batch`, over all
    runs with a recorded digest): `rollback` keeps them as it keeps runs KFP wrote rows into."""
    opened = gate_opened(conn)
    previous: dict[str, Any] = {}
    for r in conn.execute(select(t.runs.c.run_uuid, t.runs.c.digest, t.runs.c.run_mark, t.runs.c.source_name,
                                 t.runs.c.sums).where(t.runs.c.digest.is_not(None))):
        previous[r.run_uuid] = r
    owned: set[str] = set()
    ids = sorted(previous)
    for chunk in chunks(ids, 2000):
        for source in {previous[r].source_name for r in chunk}:
            part = {r: previous[r] for r in chunk if previous[r].source_name == source}
            owned |= _changed_since_written(conn, t, list(part), part, set(), source in opened)[0]
    return owned


def _runs_with_live_rows(conn: Connection, t: TargetTables, run_ids: list[str]) -> set[str]:
    """Runs that hold a task or link KFP wrote itself (UUIDv4): never rewritten (mapping.md §2)."""
    live: set[str] = set()
    for chunk in chunks(run_ids):
        for table in (t.tasks, t.links):
            for r in conn.execute(select(table.c.RunUUID, table.c.UUID).where(table.c.RunUUID.in_(chunk))):
                if not is_migrated_id(r.UUID):
                    live.add(r.RunUUID)
    return live


def count_rows(conn: Connection, t: TargetTables, source_name: str = "") -> dict[str, int]:
    """Rows of this tool (`tool_written`) per target table, of `source_name`'s runs where other sources
    migrated into the same database too (artifacts: those its runs' links use)."""
    others = conn.execute(select(t.runs.c.run_uuid).where(t.runs.c.source_name != source_name).limit(1)).first()
    out = {}
    if others is None:
        for name, table in (("tasks", t.tasks), ("artifacts", t.artifacts), ("artifact_tasks", t.links)):
            out[name] = int(conn.execute(select(func.count()).select_from(table).where(tool_written(table))).scalar() or 0)
        return out
    runs = select(t.runs.c.run_uuid).where(t.runs.c.source_name == source_name)
    out["tasks"] = int(conn.execute(select(func.count()).select_from(t.tasks).where(
        tool_written(t.tasks), t.tasks.c.RunUUID.in_(runs))).scalar() or 0)
    out["artifact_tasks"] = int(conn.execute(select(func.count()).select_from(t.links).where(
        tool_written(t.links), t.links.c.RunUUID.in_(runs))).scalar() or 0)
    out["artifacts"] = int(conn.execute(select(func.count(func.distinct(t.links.c.ArtifactID))).where(
        tool_written(t.links), t.links.c.RunUUID.in_(runs))).scalar() or 0)
    return out
