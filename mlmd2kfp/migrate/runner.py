"""`migrate`: refusals → lock → schema phase → data pass → run-less ledger → totals → deferred indexes →
cutover (mapping.md §1, §2, §7, W14); each phase in its own module, this one only orders them.

Safe to kill at any moment and rerun: every batch commits with its checkpoint; a rerun re-reads
only runs whose change marks moved ("true up") and resumes an interrupted pass after its last batch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, inspect, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from .. import __version__
from ..errors import InterruptedByOperator, MigrationFailedError, StoppedAtOnce, ToolkitError, unexpected_error_line
from ..faults import fault_point
from ..source.inventory import contradicting_runs, take_kfp_inventory
from ..source.reader import MlmdReader
from ..source.schema import open_mlmd
from ..target.legacy import old_tasks_digest, old_tasks_location, old_tasks_present
from ..target.schema import require_run_details
from .context import MigrationContext, migration_context
from .datapass import data_pass
from .lock import MigrationLock
from .options import MigrateOptions, MigrateReport, Progress, TableStats
from .plan import detect_mode, refuse_contradicting_mode
from .producer import previous_marks, refuse_claimed
from .runless import write_runless_ledger
from .signals import StopRequest
from .staging import (PRE_MIGRATION, STAGING, build_deferred_indexes, check_existing_targets, created_tables_json,
                      cutover, old_tasks_counts, prepare_schema, privilege_error)
from .state import (MAPPING_VERSION, RUNS, MigrationState, Phase, Status, check_new_source, check_resume,
                    ensure_tool_tables, forget_marks, holder, insert_state, load_state, load_states, new_state,
                    options_fingerprint, refuse_cleaned_up, tool_created_tables, update_state, upgrade_tool_tables)
from .writer import TargetTables, count_rows

__all__ = ["MigrateOptions", "MigrateReport", "MigrationContext", "TableStats", "migrate", "run"]


def migrate(mlmd: str | Engine, kfp: str | Engine, options: MigrateOptions, *, on_progress: Progress | None = None,
            on_event: Callable[[str], None] | None = None) -> MigrateReport:
    """Run (or resume, or true up) the migration on URLs or engines (`run` on a `migration_context`).

    Raises:
        LockHeldError: another migrator runs. ResumeError: options differ from the recorded migration.
        TargetSchemaError / PrivilegeError: before any data is written.
        MigrationFailedError: a batch failed for good (committed batches are kept).
        InterruptedByOperator: Ctrl-C / SIGTERM; the state is resumable.
    """
    with migration_context(mlmd, kfp, options, on_event=on_event, on_progress=on_progress) as ctx:
        return run(ctx)


@dataclass
class PassStart:
    """Where a pass starts: the source's state row as the pass begins, and whether the migration had cut over
    before it."""

    state: MigrationState
    done_before: bool


def run(ctx: MigrationContext) -> MigrateReport:
    """The phases in their order, under the lock; raises as `migrate` says."""
    started = time.monotonic()
    try:
        with MigrationLock(ctx.kfp, source_name=ctx.source_name) as ctx.lock, StopRequest(lambda s: ctx.say(
                f"{s}: finishing the current batch, then stopping (press Ctrl-C again to abort now)")) as ctx.stop:
            _refusals(ctx)
            start = _start(ctx)
            _load(ctx, start)
            _finish(ctx, start)
    except StoppedAtOnce as stopped:  # the second Ctrl-C, at any point: what was being written rolled back
        line = (f"stopped at once by a second {stopped.signal_name}: what was being written was rolled back, what "
                "was committed before is kept; rerun `mlmd2kfp migrate` with the same options to resume")
        _record_interrupt(ctx.kfp, ctx.source_name, line)
        raise InterruptedByOperator(line) from None
    finally:
        ctx.report.seconds["total"] = round(time.monotonic() - started, 3)
    return ctx.report


def _refusals(ctx: MigrationContext) -> None:
    """Everything that can refuse the job, checked before the first write; decides the install mode."""
    with ctx.mlmd.connect() as conn:
        open_mlmd(conn)
    with ctx.kfp.connect() as conn:
        require_run_details(set(inspect(conn).get_table_names()))
        inv = take_kfp_inventory(conn, old_tasks=False)
    with ctx.kfp.connect() as conn:
        tool_created = tool_created_tables(conn)
    ctx.report.schema_warnings = check_existing_targets(ctx.kfp, tool_created)[4]
    for warning in ctx.report.schema_warnings:  # accepted extras (mapping.md S4): said once, before any write
        ctx.say(f"warning: {warning}")
    with ctx.kfp.begin() as conn:  # tool tables of an older release, before they are read
        upgrade_tool_tables(conn)
        states = load_states(conn)
    refuse_cleaned_up(states, None, "migrate", "KFP owns its runs now, and the tool's ledger and the old "
                      "`tasks` table are gone (any --source-name)")
    if ctx.source_name not in [s.source_name for s in states]:
        check_new_source(ctx.source_name, [s.source_name for s in states])
    _refuse_runs_of_other_sources(ctx)
    options = ctx.options
    ctx.multi, _ = detect_mode(inv.runs, inv.runs_without_namespace, options.multi_user)
    if options.multi_user is not None and not options.force_mode:
        with ctx.kfp.connect() as conn:
            refuse_contradicting_mode(*contradicting_runs(conn, ctx.multi), ctx.multi)
    ctx.report.mode = "multi-user" if ctx.multi else "single-user"


def _load(ctx: MigrationContext, start: PassStart) -> None:
    """The data pass, the run-less ledger, the totals and the deferred indexes; any failure ends as `failed`
    with its line in the state."""
    t0 = time.monotonic()
    try:
        with ctx.kfp.connect() as conn:  # the tasks' table, and the old `tasks` wherever it is now
            ctx.targets = TargetTables(ctx.report.staged_in, old_tasks_location(conn))
        data_pass(ctx, start.state.last_context_id)
        ctx.lock.check()
        write_runless_ledger(ctx)
        _totals(ctx, start)
        ctx.report.seconds["data"] = round(time.monotonic() - t0, 3)
        _build_indexes(ctx)
    except (InterruptedByOperator, MigrationFailedError):
        raise  # recorded where they happen
    except Exception as exc:  # anything else still ends as `failed` with its line in the state
        line = unexpected_error_line(exc) if not isinstance(exc, ToolkitError) else str(exc)
        _record_failure(ctx.kfp, ctx.source_name, line)
        raise MigrationFailedError(line) from exc


def _finish(ctx: MigrationContext, start: PassStart) -> None:
    """The cutover, or the `staged` phase when the pass holds it back."""
    options, report = ctx.options, ctx.report
    cut = _cuts_over(ctx, start)
    if not cut and not options.stage_only:
        ctx.say("this pass covered only the selected runs (--namespace/--run), so it stops before the "
                "cutover; run `mlmd2kfp migrate` without them to migrate every run and cut over")
    if cut:
        t0 = time.monotonic()
        ctx.lock.check()
        _cutover(ctx)
        report.seconds["cutover"] = round(time.monotonic() - t0, 3)
    else:
        with ctx.kfp.begin() as conn:
            update_state(conn, ctx.source_name, phase=Phase.STAGED, status=Status.DONE, finished_at=int(time.time()))
        report.phase = "staged"


def _cuts_over(ctx: MigrationContext, start: PassStart) -> bool:
    """Whether this pass ends with the cutover. After a cutover the tasks live in `tasks` already:
    --stage-only has nothing left to hold back. A pass over some runs only (--namespace/--run) never cuts
    over: the others would be missing."""
    options, report = ctx.options, ctx.report
    partial = bool(options.namespaces or options.run_ids)
    if partial and not start.done_before and report.staged_in != "tasks":
        return False
    return not options.stage_only or report.staged_in == "tasks"


def _refuse_runs_of_other_sources(ctx: MigrationContext) -> None:
    """Before anything is written (the state row of a new source included): this MLMD database's first runs
    were not migrated from another source already, the sign of a store rerun under another `--source-name`.
    (The reader checks every page the same way.) Runs after `upgrade_tool_tables`.

    Raises:
        ResumeError: a run of this store belongs to another source.
    """
    targets = TargetTables("tasks", None)
    with ctx.kfp.connect() as kfp:
        if RUNS.name not in inspect(kfp).get_table_names() or kfp.execute(
                select(targets.runs.c.run_uuid).where(targets.runs.c.source_name != ctx.source_name)
                .limit(1)).first() is None:
            return
        with ctx.mlmd.connect() as mlmd:
            page = next(MlmdReader(mlmd, None, page_runs=200).pages(0, ctx.options.run_ids or None), [])
        refuse_claimed(page, previous_marks(kfp, targets, [name for _, name in page]), ctx.source_name)


def _start(ctx: MigrationContext) -> PassStart:
    """The tool's tables and the source's state row, the resume checks, the schema phase, and the state row
    updated for this pass."""
    state, done_before = _state_row(ctx)
    created = _schema_phase(ctx, done_before)
    return PassStart(_begin_pass(ctx, state, created), done_before)


def _state_row(ctx: MigrationContext) -> tuple[MigrationState, bool]:
    """The source's state row (written first for a new source: tables created below are recorded as this
    tool's before they exist), checked for a resume; and whether the migration had cut over."""
    try:
        with ctx.kfp.begin() as conn:
            ensure_tool_tables(conn)
    except DBAPIError as exc:
        raise privilege_error(exc, "create the tool's own tables (`mlmd2kfp_state`, …)") from None
    with ctx.kfp.begin() as conn:
        state = load_state(conn, ctx.source_name)
        if state is not None:
            check_resume(state, ctx.multi, partial=bool(ctx.options.namespaces or ctx.options.run_ids))
    done_before = state is not None and state.phase in (Phase.DONE, Phase.CUTOVER)
    if state is None:
        with ctx.kfp.begin() as conn:
            insert_state(conn, new_state(ctx.source_name, ctx.multi, STAGING, __version__))
        with ctx.kfp.begin() as conn:
            state = load_state(conn, ctx.source_name)
    assert state is not None
    return state, done_before


def _schema_phase(ctx: MigrationContext, done_before: bool) -> list[str]:
    """Create the target tables that are missing (each recorded in the state before it is made); returns the
    tables created (the table the tasks go to is `report.staged_in`)."""
    def record_created(name: str) -> None:
        with ctx.kfp.begin() as conn:
            current = load_state(conn, ctx.source_name)
            update_state(conn, ctx.source_name,
                         created_tables=created_tables_json(current.created_tables if current else None, [name]))

    with ctx.kfp.connect() as conn:
        tool_created = tool_created_tables(conn)
    staging, created = prepare_schema(ctx.kfp, record_created, tool_created)
    if done_before and staging != "tasks":
        raise ToolkitError("the state says the cutover happened, but `tasks` is not in the new form; "
                           "run `mlmd2kfp status` and check the database")
    ctx.report.staged_in = staging
    ctx.report.created_tables = created
    if created:
        ctx.say(f"created {', '.join(f'`{c}`' for c in created)}")
    return created


def _begin_pass(ctx: MigrationContext, state: MigrationState, created: list[str]) -> MigrationState:
    """The state row for this pass: a resumed one keeps its checkpoint and pass number, any other starts
    from the first run (a new mapping version forgets the recorded marks: every run is rewritten)."""
    source = ctx.source_name
    with ctx.kfp.begin() as conn:
        current = load_state(conn, source)
        fingerprint = options_fingerprint(source, ctx.multi, ctx.options.namespaces, ctx.options.run_ids)
        resume = state.phase == Phase.DATA and state.status in (Status.RUNNING, Status.INTERRUPTED, Status.FAILED)
        rewriting = state.mapping_version != MAPPING_VERSION
        if rewriting:  # every run is rewritten under the ids it has (docs/mapping.md M26); `_totals` records
            # the new version once the whole pass is in, so a pass killed before starts the rewrite again
            runs = forget_marks(conn, source)
            ctx.say(f"this migration was written with mapping version {state.mapping_version}; mapping version "
                    f"{MAPPING_VERSION} rewrites each of its {runs} runs in this pass (under the ids this version gives them)")
            resume = False
        if resume and state.options_fingerprint != fingerprint and state.last_context_id:
            # the checkpoint belongs to a pass over another selection of runs: resuming it would skip runs
            ctx.say("the interrupted pass covered another selection of runs (--namespace/--run); this pass starts "
                    "again from the first run (runs already migrated and unchanged are passed over)")
            resume = False
        if state.tool_version != __version__ and not rewriting:
            ctx.say(f"this migration was last run by mlmd2kfp {state.tool_version}; mlmd2kfp {__version__} "
                    "continues it (same mapping version, so the rows are the same)")
        update_state(conn, source, phase=Phase.DATA, status=Status.RUNNING, staging_table=ctx.report.staged_in,
                     tool_version=__version__, holder=holder(), last_error=None, options_fingerprint=fingerprint,
                     created_tables=created_tables_json(current.created_tables if current else None, created),
                     **_invalidated(current, state.pass_number if resume else state.pass_number + 1),
                     multi_user=int(ctx.multi),  # a rolled-back migration may start again in another mode
                     pass_number=state.pass_number if resume else state.pass_number + 1,
                     last_context_id=state.last_context_id if resume else 0)
        if resume and state.last_context_id:
            ctx.say(f"resuming the interrupted pass after run context {state.last_context_id}")
        begun = load_state(conn, source)
    assert begun is not None
    return begun


def _invalidated(current: MigrationState | None, pass_number: int) -> dict[str, Any]:
    """The state's verify columns when a verify was recorded: it no longer describes this pass."""
    if current is None or current.verify_at is None:
        return {}
    return {"verify_passed": None, "verify_result": json.dumps({"invalidated": (
        f"`mlmd2kfp migrate` ran again (pass {pass_number}) after the last verify")})}


def _totals(ctx: MigrationContext, start: PassStart) -> None:
    """This source's rows per target table (and the old table's populations) into the report and the state."""
    fault_point("totals")
    targets, source_name, report = ctx.targets, ctx.source_name, ctx.report
    runs = targets.runs.c
    with ctx.kfp.begin() as conn:
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
        if targets.old_tasks_name and not _digests_old_tasks(ctx, start, conn):  # else the cutover's scan counts them
            report.old_tasks = old_tasks_counts(conn, targets.old_tasks_name)


def _build_indexes(ctx: MigrationContext) -> None:
    """The secondary indexes the schema phase left out of the tables it created, now that their rows are
    in (W14): before the cutover, the staged phase and any schema check."""
    t0 = time.monotonic()
    ctx.lock.check()
    with ctx.kfp.connect() as conn:
        tool_created = tool_created_tables(conn)
    built = build_deferred_indexes(ctx.kfp, tool_created)
    if built:
        ctx.say(f"built {len(built)} secondary index(es) after the rows: {', '.join(built)}")
    ctx.report.seconds["indexes"] = round(time.monotonic() - t0, 3)


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


def _digests_old_tasks(ctx: MigrationContext, start: PassStart, conn: Connection) -> bool:
    """This pass cuts over (`_cuts_over`) and moves the old `tasks` aside, whose digest the cutover takes (and
    with it the counts `_totals` would read the table once more for)."""
    return _cuts_over(ctx, start) and ctx.targets.old_tasks_name == "tasks" and old_tasks_present(conn)


def _cutover(ctx: MigrationContext) -> None:
    engine, source_name, report = ctx.kfp, ctx.source_name, ctx.report
    with engine.connect() as conn:
        state = load_state(conn, source_name)
    assert state is not None
    if state.staging_table != "tasks":  # a rerun after the cutover has nothing to swap
        ctx.say("cutover: adding `fk_run_details_tasks` and swapping the tasks tables (the old API server must be "
                "stopped)")
    result = cutover(engine, state.staging_table)
    fault_point("after-cutover")
    moved = bool(result["moved_old_tasks"]) or bool(state.moved_old_tasks)
    copy: dict[str, Any] = {}
    with engine.connect() as conn:  # what rollback will restore, recorded once per move (issue #27 item 3)
        recorded = any(s.old_tasks_digest for s in load_states(conn))  # whatever the phase of its row
        if PRE_MIGRATION in inspect(conn).get_table_names() and (result["moved_old_tasks"] or not recorded):
            counts: dict[str, int | None] = {}
            rows, digest = old_tasks_digest(conn, PRE_MIGRATION, counts=counts)
            copy = {"old_tasks_rows": rows, "old_tasks_digest": digest}
            report.old_tasks = report.old_tasks or counts
        elif not report.old_tasks and ctx.targets.old_tasks_name:
            report.old_tasks = old_tasks_counts(conn, old_tasks_location(conn) or PRE_MIGRATION)
    with engine.begin() as conn:
        update_state(conn, source_name, phase=Phase.DONE, status=Status.DONE, staging_table="tasks",
                     moved_old_tasks=int(moved), finished_at=int(time.time()), **copy)
    report.cutover, report.moved_old_tasks, report.phase, report.staged_in = True, moved, "done", "tasks"
