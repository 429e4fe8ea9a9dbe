"""`migrate`: refusals → lock → schema phase → data pass → run-less ledger → totals → deferred indexes →
cutover (mapping.md §1, §2, §7, W14); each phase in its own module, this one only orders them.

Safe to kill at any moment and rerun: every batch commits with its checkpoint; a rerun re-reads
only runs whose change marks moved ("true up") and resumes an interrupted pass after its last batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import case, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from .. import __version__
from ..console import mask_url
from ..db import make_engine
from ..errors import InterruptedByOperator, MigrationFailedError, StoppedAtOnce, ToolkitError, unexpected_error_line
from ..faults import fault_point
from ..source.inventory import contradicting_runs, take_kfp_inventory
from ..source.reader import MlmdReader
from ..source.schema import open_mlmd
from ..target.legacy import old_tasks_digest
from ..target.schema import require_run_details
from .datapass import data_pass
from .lock import MigrationLock
from .options import MigrateOptions, MigrateReport, Progress, TableStats
from .plan import detect_mode, refuse_contradicting_mode
from .producer import previous_marks, refuse_claimed
from .runless import write_runless_ledger
from .signals import StopRequest
from .staging import (PRE_MIGRATION, STAGING, build_deferred_indexes, check_existing_targets, created_tables_json,
                      cutover, old_tasks_counts, old_tasks_present, prepare_schema, privilege_error)
from .state import (MAPPING_VERSION, RUNS, Phase, Status, check_new_source, check_resume, ensure_tool_tables, forget_marks, holder,
                    insert_state, load_state, load_states, new_state, options_fingerprint, refuse_cleaned_up,
                    tool_created_tables, update_state, upgrade_tool_tables)
from .writer import TargetTables, count_rows

__all__ = ["MigrateOptions", "MigrateReport", "TableStats", "migrate"]


def migrate(mlmd_url: str, kfp_url: str, options: MigrateOptions, *, on_progress: Progress | None = None,
            on_event: Callable[[str], None] | None = None) -> MigrateReport:
    """Run (or resume, or true up) the migration.

    Raises:
        LockHeldError: another migrator runs. ResumeError: options differ from the recorded migration.
        TargetSchemaError / PrivilegeError: before any data is written.
        MigrationFailedError: a batch failed for good (committed batches are kept).
        InterruptedByOperator: Ctrl-C / SIGTERM; the state is resumable.
    """
    say = on_event or (lambda _m: None)
    report = MigrateReport(mask_url(mlmd_url), mask_url(kfp_url))
    kfp_engine = make_engine(kfp_url, "KFP", create_sqlite=False)
    mlmd_engine = make_engine(mlmd_url, "MLMD", create_sqlite=False)
    started = time.monotonic()
    try:
        with MigrationLock(kfp_engine, source_name=options.source_name) as lock, StopRequest(lambda s: say(
                f"{s}: finishing the current batch, then stopping (press Ctrl-C again to abort now)")) as stop:
            # Everything that can refuse the job is checked before the first write.
            with mlmd_engine.connect() as conn:
                open_mlmd(conn)
            with kfp_engine.connect() as conn:
                require_run_details(set(inspect(conn).get_table_names()))
                inv = take_kfp_inventory(conn)
            with kfp_engine.connect() as conn:
                tool_created = tool_created_tables(conn)
            report.schema_warnings = check_existing_targets(kfp_engine, tool_created)[4]
            for warning in report.schema_warnings:  # accepted extras (mapping.md S4): said once, before any write
                say(f"warning: {warning}")
            with kfp_engine.begin() as conn:  # tool tables of an older release, before they are read
                upgrade_tool_tables(conn)
                states = load_states(conn)
                recorded = [s.source_name for s in states]
            refuse_cleaned_up(states, None, "migrate", "KFP owns its runs now, and the tool's ledger and the old "
                              "`tasks` table are gone (any --source-name)")
            if options.source_name not in recorded:
                check_new_source(options.source_name, recorded)
            _refuse_runs_of_other_sources(mlmd_engine, kfp_engine, options)
            multi, _ = detect_mode(inv.runs, inv.runs_without_namespace, options.multi_user)
            if options.multi_user is not None and not options.force_mode:
                with kfp_engine.connect() as conn:
                    refuse_contradicting_mode(*contradicting_runs(conn, multi), multi)
            report.mode = "multi-user" if multi else "single-user"
            state = _start(kfp_engine, options, multi, report, say)
            t0 = time.monotonic()
            try:
                targets = _targets(kfp_engine, state["staging_table"])
                data_pass(kfp_engine, mlmd_engine, options, multi, targets, int(state["last_context_id"]), report,
                          stop, on_progress, say, (mlmd_url, kfp_url), lock)
                lock.check()
                with mlmd_engine.connect() as mlmd:
                    write_runless_ledger(kfp_engine, MlmdReader(mlmd, None), targets, report, options.source_name)
                _totals(kfp_engine, targets, options.source_name, report)
                report.seconds["data"] = round(time.monotonic() - t0, 3)
                _build_indexes(kfp_engine, report, say, lock)
            except (InterruptedByOperator, MigrationFailedError):
                raise  # recorded where they happen
            except Exception as exc:  # anything else still ends as `failed` with its line in the state
                line = unexpected_error_line(exc) if not isinstance(exc, ToolkitError) else str(exc)
                _record_failure(kfp_engine, options.source_name, line)
                raise MigrationFailedError(line) from exc
            # After a cutover the tasks live in `tasks` already: --stage-only has nothing left to hold back.
            # A pass over some runs only (--namespace/--run) never cuts over: the others would be missing.
            partial = bool(options.namespaces or options.run_ids)
            if partial and not state["_done_before"] and report.staged_in != "tasks":
                cut = False
                if not options.stage_only:
                    say("this pass covered only the selected runs (--namespace/--run), so it stops before the "
                        "cutover; run `mlmd2kfp migrate` without them to migrate every run and cut over")
            else:
                cut = not options.stage_only or report.staged_in == "tasks"
            if cut:
                t0 = time.monotonic()
                lock.check()
                _cutover(kfp_engine, options.source_name, report, say)
                report.seconds["cutover"] = round(time.monotonic() - t0, 3)
            else:
                with kfp_engine.begin() as conn:
                    update_state(conn, options.source_name, phase=Phase.STAGED, status=Status.DONE,
                                 finished_at=int(time.time()))
                report.phase = "staged"
    except StoppedAtOnce as stopped:  # the second Ctrl-C, at any point: what was being written rolled back
        line = (f"stopped at once by a second {stopped.signal_name}: what was being written was rolled back, what "
                "was committed before is kept; rerun `mlmd2kfp migrate` with the same options to resume")
        _record_interrupt(kfp_engine, options.source_name, line)
        raise InterruptedByOperator(line) from None
    finally:
        report.seconds["total"] = round(time.monotonic() - started, 3)
        mlmd_engine.dispose()
        kfp_engine.dispose()
    return report


def _refuse_runs_of_other_sources(mlmd_engine: Engine, kfp_engine: Engine, options: MigrateOptions) -> None:
    """Before anything is written (the state row of a new source included): this MLMD database's first runs
    were not migrated from another source already, the sign of a store rerun under another `--source-name`.
    (The reader checks every page the same way.) Runs after `upgrade_tool_tables`.

    Raises:
        ResumeError: a run of this store belongs to another source.
    """
    targets = TargetTables("tasks", None)
    with kfp_engine.connect() as kfp:
        if RUNS.name not in inspect(kfp).get_table_names() or kfp.execute(
                select(targets.runs.c.run_uuid).where(targets.runs.c.source_name != options.source_name)
                .limit(1)).first() is None:
            return
        with mlmd_engine.connect() as mlmd:
            page = next(MlmdReader(mlmd, None, page_runs=200).pages(0, options.run_ids or None), [])
        refuse_claimed(page, previous_marks(kfp, targets, [name for _, name in page]), options.source_name)


def _start(engine: Engine, options: MigrateOptions, multi: bool, report: MigrateReport,
           say: Callable[[str], None]) -> dict[str, Any]:
    """Tool tables, resume checks, schema phase; returns the state row's values."""
    try:
        with engine.begin() as conn:
            ensure_tool_tables(conn)
    except DBAPIError as exc:
        raise privilege_error(exc, "create the tool's own tables (`mlmd2kfp_state`, …)") from None
    source = options.source_name
    with engine.begin() as conn:
        state = load_state(conn, source)
        if state is not None:
            check_resume(state, multi, partial=bool(options.namespaces or options.run_ids))
    done_before = state is not None and state.phase in (Phase.DONE, Phase.CUTOVER)
    if state is None:  # the state row first: tables created below are recorded as this tool's before they exist
        with engine.begin() as conn:
            insert_state(conn, new_state(source, multi, STAGING, __version__))
        with engine.begin() as conn:
            state = load_state(conn, source)
    assert state is not None

    def record_created(name: str) -> None:
        with engine.begin() as conn:
            current = load_state(conn, source)
            update_state(conn, source,
                         created_tables=created_tables_json(current.created_tables if current else None, [name]))

    with engine.connect() as conn:
        tool_created = tool_created_tables(conn)
    staging, created = prepare_schema(engine, record_created, tool_created)
    if done_before and staging != "tasks":
        raise ToolkitError("the state says the cutover happened, but `tasks` is not in the new form; "
                           "run `mlmd2kfp status` and check the database")
    report.staged_in = staging
    report.created_tables = created
    if created:
        say(f"created {', '.join(f'`{c}`' for c in created)}")
    with engine.begin() as conn:
        current = load_state(conn, source)
        fingerprint = options_fingerprint(source, multi, options.namespaces, options.run_ids)
        resume = state.phase == Phase.DATA and state.status in (Status.RUNNING, Status.INTERRUPTED, Status.FAILED)
        rewriting = state.mapping_version != MAPPING_VERSION
        if rewriting:  # every run is rewritten under the ids it has (docs/mapping.md M26); `_totals` records
            # the new version once the whole pass is in, so a pass killed before starts the rewrite again
            runs = forget_marks(conn, source)
            say(f"this migration was written with mapping version {state.mapping_version}; mapping version "
                f"{MAPPING_VERSION} rewrites each of its {runs} runs in this pass (their ids stay the same)")
            resume = False
        if resume and state.options_fingerprint != fingerprint and state.last_context_id:
            # the checkpoint belongs to a pass over another selection of runs: resuming it would skip runs
            say("the interrupted pass covered another selection of runs (--namespace/--run); this pass starts "
                "again from the first run (runs already migrated and unchanged are passed over)")
            resume = False
        invalidated = {}
        if current is not None and current.verify_at is not None:  # the last verify no longer describes this pass
            invalidated = {"verify_passed": None, "verify_result": json.dumps({"invalidated": (
                f"`mlmd2kfp migrate` ran again (pass {state.pass_number if resume else state.pass_number + 1}) "
                "after the last verify")})}
        if state.tool_version != __version__ and not rewriting:
            say(f"this migration was last run by mlmd2kfp {state.tool_version}; mlmd2kfp {__version__} continues "
                "it (same mapping version, so the rows are the same)")
        update_state(conn, source, phase=Phase.DATA, status=Status.RUNNING, staging_table=staging, tool_version=__version__,
                     created_tables=created_tables_json(current.created_tables if current else None, created),
                     holder=holder(), last_error=None, options_fingerprint=fingerprint, **invalidated,
                     multi_user=int(multi),  # a rolled-back migration may start again in another mode
                     pass_number=state.pass_number if resume else state.pass_number + 1,
                     last_context_id=state.last_context_id if resume else 0)
        if resume and state.last_context_id:
            say(f"resuming the interrupted pass after run context {state.last_context_id}")
        values = dict(load_state(conn, source).values)  # type: ignore[union-attr]
    values["_done_before"] = done_before
    return values


def _targets(engine: Engine, tasks_table: str) -> TargetTables:
    """The target tables, with where the tasks go and the old `tasks` table (before or after its move)."""
    with engine.connect() as probe:
        old_name = "tasks" if old_tasks_present(probe) else (
            PRE_MIGRATION if PRE_MIGRATION in inspect(probe).get_table_names() else None)
    return TargetTables(tasks_table, old_name)


def _totals(engine: Engine, targets: TargetTables, source_name: str, report: MigrateReport) -> None:
    """This source's rows per target table (and the old table's populations) into the report and the state."""
    fault_point("totals")
    runs = targets.runs.c
    with engine.begin() as conn:
        report.totals = count_rows(conn, targets, source_name)
        # the migration's runs, not a sum over passes (a true-up pass rewrites runs counted before)
        migrated, skipped = conn.execute(select(
            func.coalesce(func.sum(case((runs.skipped == "", 1), else_=0)), 0),
            func.coalesce(func.sum(case((runs.skipped != "", 1), else_=0)), 0)).where(
                runs.source_name == source_name)).one()
        # every run of this pass's source is now written by this mapping version (an older version's
        # migration is rewritten by whole passes only: `check_resume`)
        update_state(conn, source_name, tasks=report.totals["tasks"], artifacts=report.totals["artifacts"],
                     links=report.totals["artifact_tasks"], runs_migrated=int(migrated), runs_skipped=int(skipped),
                     status=Status.RUNNING, mapping_version=MAPPING_VERSION)
        if targets.old_tasks_name:
            report.old_tasks = old_tasks_counts(conn, targets.old_tasks_name)


def _build_indexes(engine: Engine, report: MigrateReport, say: Callable[[str], None], lock: MigrationLock) -> None:
    """The secondary indexes the schema phase left out of the tables it created, now that their rows are
    in (W14): before the cutover, the staged phase and any schema check."""
    t0 = time.monotonic()
    lock.check()
    with engine.connect() as conn:
        tool_created = tool_created_tables(conn)
    built = build_deferred_indexes(engine, tool_created)
    if built:
        say(f"built {len(built)} secondary index(es) after the rows: {', '.join(built)}")
    report.seconds["indexes"] = round(time.monotonic() - t0, 3)


def _record_interrupt(engine: Engine, source_name: str, line: str) -> None:
    """`interrupted` with the line, when this process's pass is the one the state says is running."""
    try:
        with engine.begin() as conn:
            state = load_state(conn, source_name)
            if state is not None and state.status == Status.RUNNING and state.holder == holder():
                update_state(conn, source_name, status=Status.INTERRUPTED, last_error=line)
    except Exception:  # the database itself is gone: the line still reaches the operator
        pass


def _record_failure(engine: Engine, source_name: str, line: str) -> None:
    try:
        with engine.begin() as conn:
            update_state(conn, source_name, status=Status.FAILED, last_error=line[:2000])
    except Exception:  # the database itself is gone: the error line still reaches the operator
        pass


def _cutover(engine: Engine, source_name: str, report: MigrateReport, say: Callable[[str], None]) -> None:
    with engine.connect() as conn:
        state = load_state(conn, source_name)
    assert state is not None
    if state.staging_table != "tasks":  # a rerun after the cutover has nothing to swap
        say("cutover: adding `fk_run_details_tasks` and swapping the tasks tables (the old API server must be stopped)")
    result = cutover(engine, state.staging_table)
    fault_point("after-cutover")
    moved = bool(result["moved_old_tasks"]) or bool(state.moved_old_tasks)
    copy: dict[str, Any] = {}
    with engine.connect() as conn:  # what rollback will restore, recorded once per move (issue #27 item 3)
        recorded = any(s.old_tasks_digest for s in load_states(conn))  # whatever the phase of its row
        if PRE_MIGRATION in inspect(conn).get_table_names() and (result["moved_old_tasks"] or not recorded):
            rows, digest = old_tasks_digest(conn, PRE_MIGRATION)
            copy = {"old_tasks_rows": rows, "old_tasks_digest": digest}
    with engine.begin() as conn:
        update_state(conn, source_name, phase=Phase.DONE, status=Status.DONE, staging_table="tasks", moved_old_tasks=int(moved),
                     finished_at=int(time.time()), **copy)
    report.cutover, report.moved_old_tasks, report.phase, report.staged_in = True, moved, "done", "tasks"
