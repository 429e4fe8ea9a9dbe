"""`status`, `rollback` and `cleanup`: reading and undoing what `migrate` recorded."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, exists, func, inspect, select, true, update
from sqlalchemy.engine import Connection, Engine

from ..db import label, opened
from ..dialects import dialect_for, rename_statements
from ..errors import ToolkitError
from .lock import MigrationLock
from ..faults import fault_point
from ..target.legacy import old_tasks_digest, old_tasks_present, tasks_location
from .staging import PRE_MIGRATION, STAGING
from .gate import gate
from .state import (CLEANED_UP, KEPT_RUNS, LEDGER, RUNS, STATE, TOOL_TABLES, MigrationState, Phase, Status, core_table,
                    forget_old_tasks_copy, forget_verified, load_states, refuse_cleaned_up, runless_run_id, source_label,
                    tool_created_tables, update_state, upgrade_tool_tables)
from ..batching import chunks
from ..target.digest import tool_written
from .writer import TargetTables, runs_changed_by_kfp


@dataclass
class StatusReport:
    """What the state table says (data only): one state row per MLMD source (`--source-name`)."""

    kfp_url: str
    states: list[MigrationState] = field(default_factory=list)
    runs: Counter[str] = field(default_factory=Counter)
    """Runs by outcome (`migrated`, `skipped: <reason>`), prefixed `<source>: ` when there are several."""
    ledger: Counter[str] = field(default_factory=Counter)
    tables: list[str] = field(default_factory=list)

    @property
    def state(self) -> MigrationState | None:
        """The state row when one source is recorded (None before any migration, or with several)."""
        return self.states[0] if len(self.states) == 1 else None

    @property
    def gate(self) -> tuple[bool, str]:
        """The startup gate: (passed, one line saying why)."""
        return gate(self.states)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        passed, why = self.gate
        sources = [_parsed(s.values) for s in self.states]
        return {"kfp_url": self.kfp_url, "state": sources[0] if len(sources) == 1 else None, "sources": sources,
                "runs": dict(self.runs), "ledger": dict(self.ledger), "tables": self.tables,
                "gate": {"passed": passed, "reason": why}}


def _parsed(state: dict[str, Any]) -> dict[str, Any]:
    """A state row with its JSON text columns (`created_tables`, `verify_result`) as JSON values, not strings
    holding JSON (issue #27 item 7)."""
    out = dict(state)
    for column in ("created_tables", "verify_result"):
        if isinstance(out.get(column), str):
            try:
                out[column] = json.loads(out[column])
            except ValueError:
                pass
    return out


def read_status(kfp_url: str | Engine) -> StatusReport:
    """Read every source's state row, run counts by outcome and ledger counts by reason."""
    with opened(kfp_url, "KFP") as engine:
        with engine.connect() as conn:
            states = load_states(conn)
            report = StatusReport(label(kfp_url), states)
            names = set(inspect(conn).get_table_names())
            report.tables = sorted(n for n in names if n in ("tasks", "artifacts", "artifact_tasks", STAGING,
                                                             PRE_MIGRATION) or n.startswith("mlmd2kfp_"))
            if states and RUNS.name in names and LEDGER.name in names:  # `cleanup` leaves the state rows only
                runs, ledger = core_table(RUNS), core_table(LEDGER)
                several = len(states) > 1
                # a runs table an older release wrote has no source column (the next migrate adds it)
                by = [runs.c.source_name] if "source_name" in {
                    c["name"] for c in inspect(conn).get_columns(RUNS.name)} else []
                for *named, skipped, n in conn.execute(select(*by, runs.c.skipped, func.count())
                                                       .group_by(*by, runs.c.skipped)):
                    source = named[0] if named else ""
                    outcome = "migrated" if not skipped else f"skipped ({skipped})"
                    report.runs[f"{source or '(default)'}: {outcome}" if several else outcome] += n
                for reason, n in conn.execute(select(ledger.c.reason, func.count()).group_by(ledger.c.reason)):
                    report.ledger[reason] += n
    return report


@dataclass
class RollbackReport:
    """What `rollback` removed and restored."""

    deleted: dict[str, int] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    restored_old_tasks: bool = False
    kept_live_rows: dict[str, int] = field(default_factory=dict)
    kept_runs: list[str] = field(default_factory=list)
    """Runs KFP wrote into after the cutover: every row of them stays (nothing KFP wrote is lost)."""
    notes: list[str] = field(default_factory=list)
    already_rolled_back: bool = False
    """Every chosen source was rolled back before this call."""

    @property
    def changed(self) -> bool:
        """Whether this rollback removed, restored or recorded anything."""
        return bool(not self.already_rolled_back or any(self.deleted.values()) or self.dropped
                    or self.restored_old_tasks or self.kept_runs)


def _old_tasks_copy_problem(conn: Connection, states: list[MigrationState]) -> str | None:
    """What is wrong with `tasks_pre_migration` against the rows and digest the cutover recorded (issue #27
    item 3), or None (nothing recorded, the copy whole, or already moved back by a rollback)."""
    recorded = next((s for s in states if s.old_tasks_digest), None)  # the table's, whichever source's row holds it
    if recorded is None:
        return None
    if PRE_MIGRATION not in inspect(conn).get_table_names():
        return None if old_tasks_present(conn) else f"`{PRE_MIGRATION}`, the old `tasks` the cutover moved aside, is gone"
    rows, digest = old_tasks_digest(conn, PRE_MIGRATION, recorded.old_tasks_digest)
    if rows != recorded.old_tasks_rows:
        return f"`{PRE_MIGRATION}` holds {rows} row(s) where the cutover moved {recorded.old_tasks_rows} aside"
    if digest != recorded.old_tasks_digest:
        return f"`{PRE_MIGRATION}` holds the {rows} row(s) the cutover moved aside, but they changed since"
    return None


def rollback(kfp_url: str | Engine, source_name: str | None = None,
             force_without_old_tasks: bool = False) -> RollbackReport:
    """Delete exactly the rows this tool wrote for one MLMD source; once no other source's migration is
    left, also drop the target tables it created (when empty) and restore the old `tasks` table.

    `source_name` picks the source (`--source-name`); None means the only one not rolled back (or, when
    every one is, all of them: finishing what earlier rollbacks kept in place).

    Raises:
        ToolkitError: no migration is recorded; several are and `source_name` does not say which.
        LockHeldError: a migrator is running.
    """
    report = RollbackReport()
    with opened(kfp_url, "KFP") as engine, MigrationLock(engine, "migration or rollback"):
        scope = _scope(engine, _checked_states(engine, source_name, force_without_old_tasks, report), source_name)
        report.already_rolled_back = all(s.phase == Phase.ROLLED_BACK for s in scope.chosen)
        with engine.begin() as conn:  # data first, in one transaction
            _delete_rows(conn, scope, report)
        fault_point("rollback-data")
        if scope.last:
            _restore_tables(engine, scope.names, scope.created, scope.t.tasks_name, report)
        else:
            report.notes.append(
                "the target tables and the old `tasks` stay as they are: the migration of "
                + ", ".join(source_label(n) for n in sorted(scope.staying)) + " is still in them (rolling back "
                "the last source restores the old `tasks`)")
        with engine.begin() as conn:
            _record_rolled_back(conn, scope, report)
    return report


@dataclass
class _Scope:
    """What one rollback undoes, decided before anything is deleted."""

    states: list[MigrationState]
    chosen: list[MigrationState]
    """The state rows of the sources rolled back."""
    staying: set[str]
    """The sources whose migrated rows stay (a rolled-back source keeps the runs KFP wrote into)."""
    names: set[str]
    """The tables present."""
    created: set[str]
    """The tables the tool created."""
    t: TargetTables
    kept: set[str] = field(default_factory=set)
    """Runs kept whole: KFP wrote into them or changed them (found by `_kept_runs`)."""

    @property
    def sources(self) -> list[str]:
        return sorted({s.source_name for s in self.chosen})

    @property
    def last(self) -> bool:
        """No other source's migration is left: the tables and the old `tasks` are undone too."""
        return not self.staying

    def mine(self) -> list[Any]:
        """Which runs' records go: the chosen sources' (with `last`: every source's), but the kept runs."""
        runs = self.t.runs
        where = [runs.c.source_name.in_(self.sources)] if not self.last else []
        if self.kept:
            where.append(runs.c.run_uuid.not_in(sorted(self.kept)))
        return where

    def rows_of(self, table: Any) -> Any:
        """The rows of `table` that go: the tool's rows of the runs that go."""
        if self.last and not self.kept:
            return tool_written(table)
        gone = select(self.t.runs.c.run_uuid).where(*self.mine())
        return and_(tool_written(table), table.c.RunUUID.in_(gone) if not self.last else
                    table.c.RunUUID.not_in(sorted(self.kept)))


def _checked_states(engine: Engine, source_name: str | None, force_without_old_tasks: bool,
                    report: RollbackReport) -> list[MigrationState]:
    """The state rows, once the rollback may go ahead: not cleaned up, and the old `tasks` copy whole (issue
    #27 item 3) or its loss accepted (`force_without_old_tasks`).

    Raises:
        ToolkitError: cleaned up, or the copy is gone or changed (without `force_without_old_tasks`).
    """
    with engine.begin() as conn:
        upgrade_tool_tables(conn)
    with engine.connect() as conn:
        states = load_states(conn)
    refuse_cleaned_up(states, source_name, "rollback", f"the old `tasks` it would restore (`{PRE_MIGRATION}`) "
                      "was dropped, and KFP owns the migrated runs")
    with engine.begin() as conn:
        if PRE_MIGRATION not in inspect(conn).get_table_names() and old_tasks_present(conn):
            # an earlier rollback moved the old `tasks` back and was stopped before it said so
            forget_old_tasks_copy(conn)
            states = load_states(conn)
        damaged = _old_tasks_copy_problem(conn, states)
    if damaged and not force_without_old_tasks:
        raise ToolkitError(f"rollback refused: {damaged}, so the old KFP would start without its tasks; nothing "
                           "was changed. Restore that table from the backup, or pass --force-without-old-tasks "
                           "to roll back without it")
    if damaged:
        report.notes.append(f"{damaged}; rolled back without it (--force-without-old-tasks)")
    return states


def _scope(engine: Engine, states: list[MigrationState], source_name: str | None) -> _Scope:
    chosen = _choose(states, source_name)
    sources = sorted({s.source_name for s in chosen})
    runs_t = core_table(RUNS)
    with engine.connect() as conn:
        created = tool_created_tables(conn)
        names = set(inspect(conn).get_table_names())
        # the database says where the migrated tasks are, not the state (`tasks_location`)
        tasks_name = tasks_location(conn)
        staying = {s.source_name for s in states if s.source_name not in sources and s.phase != Phase.ROLLED_BACK}
        if RUNS.name in names:
            staying |= {r[0] for r in conn.execute(select(runs_t.c.source_name).distinct()
                                                   .where(runs_t.c.source_name.not_in(sources)))}
    return _Scope(states, chosen, staying, names, created, TargetTables(tasks_name, None))


def _delete_rows(conn: Connection, scope: _Scope, report: RollbackReport) -> None:
    """The rows the tool wrote for the runs that go, their records and ledger; the kept runs' stay whole."""
    t, names = scope.t, scope.names
    scope.kept = _kept_runs(conn, scope, report)
    theirs: set[str] = set()  # the artifacts the runs that go used (with `last`: not needed)
    if not scope.last and RUNS.name in names:
        for r in conn.execute(select(t.runs.c.artifact_ids).where(*scope.mine())):
            theirs.update(json.loads(r.artifact_ids or "[]"))
    if "artifact_tasks" in names:
        report.deleted["artifact_tasks"] = conn.execute(delete(t.links).where(scope.rows_of(t.links))).rowcount or 0
    if t.tasks.name in names:
        conn.execute(update(t.tasks).where(scope.rows_of(t.tasks)).values(ParentTaskUUID=None))
        report.deleted["tasks"] = conn.execute(delete(t.tasks).where(scope.rows_of(t.tasks))).rowcount or 0
    if "artifacts" in names:
        unused = ~exists().where(t.links.c.ArtifactID == t.artifacts.c.UUID) if "artifact_tasks" in names else true()
        if scope.last:
            report.deleted["artifacts"] = conn.execute(
                delete(t.artifacts).where(and_(tool_written(t.artifacts), unused))).rowcount or 0
        else:  # only artifacts this source's runs used: another source's stay, used or not
            report.deleted["artifacts"] = _delete_unused(conn, t, unused, theirs)
    for name, table in (("tasks", t.tasks), ("artifacts", t.artifacts), ("artifact_tasks", t.links)):
        if table.name in names:
            left = int(conn.execute(select(func.count()).select_from(table).where(~tool_written(table))).scalar() or 0)
            if left:
                report.kept_live_rows[name] = left
    if RUNS.name in names:
        _delete_records(conn, scope)


def _kept_runs(conn: Connection, scope: _Scope, report: RollbackReport) -> set[str]:
    """Runs KFP wrote into (a task or link of its own, e.g. a retry of a migrated run) or whose migrated rows
    it changed keep every row: deleting the migrated parents would cascade into KFP's rows through the
    foreign keys. Said in a note with what to do next."""
    t, names = scope.t, scope.names
    kept = _runs_written_by_kfp(conn, t, names)
    if RUNS.name in names and t.tasks.name in names and "artifact_tasks" in names:
        kept |= runs_changed_by_kfp(conn, t)
    if not scope.last:
        kept = _of_sources(conn, t.runs, kept, scope.sources)
    if kept:
        report.kept_runs = sorted(kept)
        sources = scope.sources
        again = "mlmd2kfp rollback --yes" + (f" --source-name {sources[0]}" if sources != [""] else "")
        report.notes.append(
            f"{len(kept)} run(s) hold rows KFP wrote itself under migrated rows (for example run "
            f"{report.kept_runs[0]}); their migrated rows were kept too, so nothing KFP wrote was "
            "deleted. The old `tasks` stays aside until they are gone: delete those runs in the new "
            f"KFP, then rerun `{again}` (docs/runbook.md §4)")
    return kept


def _delete_records(conn: Connection, scope: _Scope) -> None:
    """The run records and ledger of the runs that go (kept runs keep theirs: their rows are still here)."""
    runs_t, ledger_t = scope.t.runs, scope.t.ledger
    if not scope.last:
        gone = select(runs_t.c.run_uuid).where(*scope.mine())
        runless = [runless_run_id(s) for s in scope.sources]
        conn.execute(delete(ledger_t).where(ledger_t.c.run_uuid.in_(gone) | ledger_t.c.run_uuid.in_(runless)))
    elif scope.kept:
        conn.execute(delete(ledger_t).where(ledger_t.c.run_uuid.not_in(sorted(scope.kept))))
    else:
        conn.execute(delete(ledger_t))
    conn.execute(delete(runs_t).where(*scope.mine()))


def _record_rolled_back(conn: Connection, scope: _Scope, report: RollbackReport) -> None:
    """Each chosen source's row says `rolled_back` (with `kept_runs` while KFP's runs hold rows of it)."""
    for s in scope.chosen:
        mine_kept = _of_sources(conn, scope.t.runs, scope.kept, [s.source_name])
        update_state(conn, s.source_name, phase=Phase.ROLLED_BACK, status=KEPT_RUNS if mine_kept else Status.DONE,
                     finished_at=int(time.time()),
                     verify_passed=None, verify_result=None, pass_number=0, last_context_id=0,
                     # runs kept stay KFP's: the gate had opened on them (docs/mapping.md W15)
                     **({} if mine_kept else {"gate_opened_at": None}),
                     runs_migrated=0, runs_skipped=0, tasks=0, artifacts=0, links=0, verify_chain=None)
        forget_verified(conn, s.source_name)  # what verify proved of rows that are gone now
    if scope.last:
        _record_left_in_place(conn, scope.states, scope.created, scope.t.tasks_name, report)


def _choose(states: list[MigrationState], source_name: str | None) -> list[MigrationState]:
    """The state rows a rollback undoes."""
    if not states:
        raise ToolkitError("no migration is recorded in this KFP database; nothing to roll back")
    if source_name is not None:
        chosen = [s for s in states if s.source_name == source_name]
        if not chosen:
            listed = ", ".join(source_label(s.source_name) for s in states)
            raise ToolkitError(f"no migration of {source_label(source_name)} is recorded in this KFP database "
                               f"(recorded: {listed}); nothing was changed")
        return chosen
    live = [s for s in states if s.phase != Phase.ROLLED_BACK]
    if len(live) > 1:
        raise ToolkitError(
            f"this KFP database holds the migrations of {len(live)} MLMD sources ("
            + ", ".join(f"`{s.source_name}`" for s in live) + "); nothing was changed. Pass --source-name to say "
            "which to roll back (`--source-name ''` for the default); the last one also restores the old `tasks`")
    return live or states  # all rolled back already: finish what the earlier rollbacks kept in place


def _delete_unused(conn: Connection, t: TargetTables, unused: Any, artifact_ids: set[str]) -> int:
    deleted = 0
    for chunk in chunks(sorted(artifact_ids)):
        deleted += conn.execute(delete(t.artifacts).where(
            and_(tool_written(t.artifacts), t.artifacts.c.UUID.in_(chunk), unused))).rowcount or 0
    return deleted


def _of_sources(conn: Connection, runs_t: Any, run_ids: set[str], sources: list[str]) -> set[str]:
    out: set[str] = set()
    for chunk in chunks(sorted(run_ids)):
        out |= {r[0] for r in conn.execute(select(runs_t.c.run_uuid).where(
            runs_t.c.run_uuid.in_(chunk), runs_t.c.source_name.in_(sources)))}
    return out


def _record_left_in_place(conn: Connection, states: list[MigrationState], created: set[str], tasks_name: str,
                          report: RollbackReport) -> None:
    """What is still in place stays recorded in every source's row (tables kept for KFP's rows, the old
    `tasks` not moved back), so a later rollback, once those runs are gone, finishes the job."""
    left = set(inspect(conn).get_table_names())
    # the tool's tables still here: its tasks table under the name it has now (the staging table is
    # `tasks` after the cutover), never the old `tasks` moved back in its place
    mine = (created - {STAGING}) | ({tasks_name} if STAGING in created or "tasks" in created else set())
    still_created = {n for n in mine if n in left and n not in report.dropped}
    if report.restored_old_tasks:
        still_created.discard("tasks")
    moved = any(s.moved_old_tasks for s in states) and PRE_MIGRATION in left
    for s in states:
        update_state(conn, s.source_name, staging_table=tasks_name if tasks_name in still_created else STAGING,
                     moved_old_tasks=int(moved),
                     created_tables=json.dumps(sorted(created)) if still_created else "[]")


def _runs_written_by_kfp(conn: Connection, t: TargetTables, names: set[str]) -> set[str]:
    """Runs holding a task or link whose id is not the tool's (KFP wrote it), plus the runs of migrated
    tasks such rows hang under."""
    if t.tasks.name not in names:
        return set()
    kept = {r[0] for r in conn.execute(select(t.tasks.c.RunUUID).where(~tool_written(t.tasks)).distinct())}
    if "artifact_tasks" in names:
        kept |= {r[0] for r in conn.execute(select(t.links.c.RunUUID).where(~tool_written(t.links)).distinct())}
    parent = t.tasks.alias("parent")
    child = t.tasks.alias("child")
    kept |= {r[0] for r in conn.execute(
        select(parent.c.RunUUID).join(child, child.c.ParentTaskUUID == parent.c.UUID)
        .where(and_(~tool_written(child), tool_written(parent))).distinct())}
    mine = {r[0] for r in conn.execute(select(t.tasks.c.RunUUID).where(tool_written(t.tasks)).distinct())}
    return kept & mine


def _restore_tables(engine: Any, names: set[str], created: set[str], tasks_name: str,
                    report: RollbackReport) -> None:
    """Drop the target tables the tool created once they are empty (KFP's rows and the kept runs' own
    stay) and move the old `tasks` back."""
    with engine.begin() as conn:
        d = dialect_for(conn)
        q = d.q
        tasks_created = STAGING in created or "tasks" in created
        # artifact_tasks first: it references the other two, which go only once it is gone
        candidates = [name for name, mine in (("artifact_tasks", "artifact_tasks" in created),
                                              (tasks_name, tasks_created), ("artifacts", "artifacts" in created))
                      if mine and name in names]
        links_gone = "artifact_tasks" not in names
        for name in candidates:
            if name != "artifact_tasks" and not links_gone:
                break
            if conn.exec_driver_sql(f"SELECT COUNT(*) FROM {q(name)}").scalar():
                continue  # rows are left in it (KFP's, or a kept run's): the table stays
            conn.exec_driver_sql(f"DROP TABLE {q(name)}")
            report.dropped.append(name)
            links_gone = links_gone or name == "artifact_tasks"
            fault_point("rollback-drop")
        if PRE_MIGRATION in names:
            if "tasks" in names and "tasks" not in report.dropped:
                report.notes.append(f"`tasks` still holds rows KFP wrote itself, so `{PRE_MIGRATION}` was not "
                                    "moved back; both tables are kept")
            else:
                for stmt in rename_statements(d, [(PRE_MIGRATION, "tasks")]):
                    conn.exec_driver_sql(stmt)
                forget_old_tasks_copy(conn)
                report.restored_old_tasks = True
                fault_point("rollback-restore")


def _drop_tables(engine: Any, candidates: list[str]) -> list[str]:
    """Drop those of `candidates` that exist, in their order; returns the names dropped."""
    dropped = []
    with engine.begin() as conn:
        d = dialect_for(conn)
        names = set(inspect(conn).get_table_names())
        for name in candidates:
            if name in names:
                conn.exec_driver_sql(f"DROP TABLE {d.q(name)}")
                dropped.append(name)
    return dropped


def cleanup(kfp_url: str | Engine) -> list[str]:
    """Drop `tasks_pre_migration` and the tool's tables but the state rows, which record the cleanup for the
    startup gate (it stays open: issue #27); refused unless the gate is open. Returns the tables dropped (none
    when the migration was cleaned up before).

    Raises:
        ToolkitError: the gate is closed.
    """
    with opened(kfp_url, "KFP") as engine, MigrationLock(engine, "migration or cleanup"):
        with engine.connect() as conn:
            states = load_states(conn)
        if states and all(s.phase == Phase.ROLLED_BACK and s.status != KEPT_RUNS for s in states):
            with engine.connect() as conn:
                left = sorted(set(inspect(conn).get_table_names()) & ({PRE_MIGRATION, STAGING}
                                                                     | tool_created_tables(conn)))
            if left:  # a rollback that kept KFP's rows left these: the state is what finishes it
                raise ToolkitError(f"cleanup refused: the migration was rolled back, but {', '.join(f'`{n}`' for n in left)} "
                                   "are still in place (KFP's own rows kept them); delete those rows, run `mlmd2kfp "
                                   "rollback --yes` again, then cleanup")
            # every source undone: the tool's tables are all that is left
            return _drop_tables(engine, [t.name for t in reversed(TOOL_TABLES)])
        passed, why = gate(states)
        if not passed:
            raise ToolkitError(f"cleanup refused: {why}. Cleanup drops `{PRE_MIGRATION}` and the tool's "
                               "tables, which rollback needs")
        live = [s for s in states if s.phase != Phase.ROLLED_BACK]
        with engine.begin() as conn:  # the cleanup first: the gate stays open on it, a rerun finishes the drops
            for s in live:
                if s.phase != CLEANED_UP:
                    update_state(conn, s.source_name, phase=CLEANED_UP, status=Status.DONE, holder=None)
            forget_old_tasks_copy(conn)
        return _drop_tables(engine, [PRE_MIGRATION, *(t.name for t in reversed(TOOL_TABLES) if t is not STATE)])

