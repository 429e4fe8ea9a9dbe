"""`migrate`: lock → schema phase → data pass (batches of whole runs) → cutover (mapping.md §1, §2, §7).

Safe to kill at any moment and rerun: every batch commits with its checkpoint; a rerun re-reads
only runs whose change marks moved ("true up") and resumes an interrupted pass after its last batch.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from .. import __version__
from ..background import PROCESS_MIN_RUNS, ChildIterator, End
from ..bitmap import Bitmap
from ..console import mask_url
from ..db import in_memory, make_engine
from ..dialects import is_transient
from ..errors import InterruptedByOperator, MigrationFailedError, ToolkitError, unexpected_error_line
from ..records import LedgerEntry
from ..source.inventory import (count_run_contexts, dangling_events, runless_executions, runless_reason,
                                take_kfp_inventory)
from ..source.reader import MlmdReader
from ..source.schema import open_mlmd
from ..target.schema import require_run_details
from .faults import fault_point
from .lock import MigrationLock
from .plan import detect_mode, is_v2_artifact_type
from .producer import ThreadProducer, Total, previous_marks, process_producer, refuse_claimed
from .signals import StopRequest
from .staging import (PRE_MIGRATION, STAGING, build_deferred_indexes, check_existing_targets, created_tables_json,
                      cutover, old_tasks_present, prepare_schema)
from .state import (RUNS, check_new_source, check_resume, ensure_tool_tables, holder, insert_state, load_state, load_states, new_state, options_fingerprint, runless_run_id,
                    tool_created_tables, update_state, upgrade_tool_tables)
from .writer import BatchResult, RunWork, TargetTables, count_rows, insert_rows, ledger_rows, write_batch

RETRIES = 4
"""Attempts per batch for transient database errors (lost connection, deadlock, lock wait timeout)."""


@dataclass(frozen=True)
class MigrateOptions:
    """What `migrate` does (CLI options as data)."""

    multi_user: bool | None = None
    stage_only: bool = False
    batch_rows: int = 2000
    max_rows_per_second: float | None = None
    namespaces: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    source_name: str = ""
    page_runs: int = 100
    reader_process: bool | None = None
    """Read and map in a second process (mapping.md W12); False keeps the reader on a thread; None (the
    default) picks the process for stores of `PROCESS_MIN_RUNS` run contexts or more."""


@dataclass
class TableStats:
    """Per target table: source rows read, rows written, skipped by reason, seconds."""

    read: int = 0
    written: int = 0
    deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class MigrateReport:
    """The summary of one `migrate` invocation (data only; `exit_code` is a property of it)."""

    mlmd_url: str
    kfp_url: str
    mode: str = ""
    runs_seen: int = 0
    runs_read: int = 0
    runs_unchanged: int = 0
    runs_written: int = 0
    runs_skipped: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    retries: int = 0
    tables: dict[str, TableStats] = field(default_factory=lambda: {
        "tasks": TableStats(), "artifacts": TableStats(), "artifact_tasks": TableStats()})
    ledger: Counter[str] = field(default_factory=Counter)
    totals: dict[str, int] = field(default_factory=dict)
    phase: str = ""
    staged_in: str = ""
    cutover: bool = False
    moved_old_tasks: bool = False
    old_tasks: dict[str, int | None] = field(default_factory=dict)
    fingerprints: dict[str, int] = field(default_factory=lambda: {"agree": 0, "differ": 0})
    created_tables: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if name == "tables":
                out[name] = {k: {"read": v.read, "written": v.written, "deleted": v.deleted,
                                 "skipped": dict(sorted(v.skipped.items()))} for k, v in value.items()}
            elif isinstance(value, dict):
                out[name] = dict(sorted(value.items()))
            else:
                out[name] = value
        return out


Progress = Callable[[int, int, int], None]
"""(runs done, runs total, rows written so far)."""


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
            check_existing_targets(kfp_engine, tool_created)
            with kfp_engine.begin() as conn:  # tool tables of an older release, before they are read
                upgrade_tool_tables(conn)
                recorded = [s.source_name for s in load_states(conn)]
            if options.source_name not in recorded:
                check_new_source(options.source_name, recorded)
            _refuse_runs_of_other_sources(mlmd_engine, kfp_engine, options)
            multi, _ = detect_mode(inv.runs, inv.runs_without_namespace, options.multi_user)
            report.mode = "multi-user" if multi else "single-user"
            state = _start(kfp_engine, options, multi, report, say)
            t0 = time.monotonic()
            try:
                _data_pass(kfp_engine, mlmd_engine, options, multi, state, report, stop, on_progress, say,
                           (mlmd_url, kfp_url), lock)
            except (InterruptedByOperator, MigrationFailedError):
                raise  # recorded where they happen
            except Exception as exc:  # anything else still ends as `failed` with its line in the state
                line = unexpected_error_line(exc) if not isinstance(exc, ToolkitError) else str(exc)
                _record_failure(kfp_engine, options.source_name, line)
                raise MigrationFailedError(line) from exc
            report.seconds["data"] = round(time.monotonic() - t0, 3)
            _build_indexes(kfp_engine, options.source_name, report, say, lock)
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
                    update_state(conn, options.source_name, phase="staged", status="done",
                                 finished_at=int(time.time()))
                report.phase = "staged"
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
    from .staging import _privilege_error

    try:
        with engine.begin() as conn:
            ensure_tool_tables(conn)
    except DBAPIError as exc:
        raise _privilege_error(exc, "create the tool's own tables (`mlmd2kfp_state`, …)") from None
    source = options.source_name
    with engine.begin() as conn:
        state = load_state(conn, source)
        if state is not None:
            check_resume(state, multi)
    done_before = state is not None and state.phase in ("done", "cutover")
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
        resume = state.phase == "data" and state.status in ("running", "interrupted", "failed")
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
        update_state(conn, source, phase="data", status="running", staging_table=staging,
                     created_tables=created_tables_json(current.created_tables if current else None, created),
                     holder=holder(), last_error=None, options_fingerprint=fingerprint, **invalidated,
                     pass_number=state.pass_number if resume else state.pass_number + 1,
                     last_context_id=state.last_context_id if resume else 0)
        if resume and state.last_context_id:
            say(f"resuming the interrupted pass after run context {state.last_context_id}")
        values = dict(load_state(conn, source).values)  # type: ignore[union-attr]
    values["_done_before"] = done_before
    return values


def _data_pass(kfp_engine: Engine, mlmd_engine: Engine, options: MigrateOptions, multi: bool,
               state: dict[str, Any], report: MigrateReport, stop: StopRequest, on_progress: Progress | None,
               say: Callable[[str], None], urls: tuple[str, str], lock: MigrationLock) -> None:
    with kfp_engine.connect() as probe:
        old_name = "tasks" if old_tasks_present(probe) else (
            PRE_MIGRATION if PRE_MIGRATION in inspect(probe).get_table_names() else None)
    targets = TargetTables(state["staging_table"], old_name)
    last_context_id = int(state["last_context_id"])
    producer: ThreadProducer | ChildIterator
    if _use_process(options.reader_process, mlmd_engine) and not any(in_memory(u) for u in urls):
        producer = process_producer(urls[0], urls[1], options, multi, last_context_id, targets)
    else:
        producer = ThreadProducer(mlmd_engine, kfp_engine, options, multi, last_context_id, targets)
    producer.start()
    try:
        total, done, window = 0, 0, time.monotonic()
        while True:
            item = producer.get()
            if isinstance(item, End):
                break
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Total):
                total = item.runs
                continue
            item.counts.add_to(report)
            if item.batch:
                _flush(kfp_engine, targets, item.batch, report, say, lock, options.source_name)
                report.fingerprints["agree"] += item.fingerprints[0]
                report.fingerprints["differ"] += item.fingerprints[1]
                _throttle(options, report, window)
            done += len(item.batch) + item.counts.runs_unchanged
            if on_progress:
                on_progress(done, total, _written(report))
            if stop.requested:
                _interrupt(kfp_engine, options.source_name, stop)
    finally:
        producer.stop()
    lock.check()
    with mlmd_engine.connect() as mlmd:
        _global_ledger(kfp_engine, MlmdReader(mlmd, None), targets, report, options.source_name)
    fault_point("totals")
    with kfp_engine.begin() as conn:
        report.totals = count_rows(conn, targets, options.source_name)
        update_state(conn, options.source_name, tasks=report.totals["tasks"], artifacts=report.totals["artifacts"],
                     links=report.totals["artifact_tasks"], status="running")
        if old_name:
            report.old_tasks = take_old_tasks_counts(conn, old_name)


def _build_indexes(engine: Engine, source_name: str, report: MigrateReport, say: Callable[[str], None],
                   lock: MigrationLock) -> None:
    """The secondary indexes the schema phase left out of the tables it created, now that their rows are
    in (W14): before the cutover, the staged phase and any schema check."""
    t0 = time.monotonic()
    lock.check()
    with engine.connect() as conn:
        tool_created = tool_created_tables(conn)
    try:
        built = build_deferred_indexes(engine, tool_created)
    except ToolkitError as exc:
        _record_failure(engine, source_name, str(exc))
        raise
    if built:
        say(f"built {len(built)} secondary index(es) after the rows: {', '.join(built)}")
    report.seconds["indexes"] = round(time.monotonic() - t0, 3)


def _record_failure(engine: Engine, source_name: str, line: str) -> None:
    try:
        with engine.begin() as conn:
            update_state(conn, source_name, status="failed", last_error=line[:2000])
    except Exception:  # the database itself is gone: the error line still reaches the operator
        pass


def _use_process(wanted: bool | None, mlmd_engine: Engine) -> bool:
    if wanted is not None:
        return wanted
    with mlmd_engine.connect() as conn:
        return count_run_contexts(MlmdReader(conn, None)) >= PROCESS_MIN_RUNS


def take_old_tasks_counts(conn: Any, table: str) -> dict[str, int | None]:
    """The old table's two populations (kfp-native-schema.md §5.2)."""
    from sqlalchemy import Column, MetaData, String, Table, case, func

    t = Table(table, MetaData(), Column("MLMDExecutionID", String))
    row = conn.execute(select(func.sum(case((t.c.MLMDExecutionID != "", 1), else_=0)),
                              func.sum(case((t.c.MLMDExecutionID == "", 1), else_=0)))).one()
    return {"cache_rows": int(row[0] or 0), "node_rows": int(row[1] or 0)}


def _written(report: MigrateReport) -> int:
    return sum(t.written for t in report.tables.values())


def _throttle(options: MigrateOptions, report: MigrateReport, window_start: float) -> float:
    if not options.max_rows_per_second:
        return window_start
    elapsed = time.monotonic() - window_start
    wanted = _written(report) / options.max_rows_per_second
    if wanted > elapsed:
        time.sleep(min(wanted - elapsed, 60))
    return window_start


def _interrupt(engine: Engine, source_name: str, stop: StopRequest) -> None:
    with engine.begin() as conn:
        update_state(conn, source_name, status="interrupted", last_error=f"stopped by {stop.signal_name}")
    raise InterruptedByOperator(f"stopped by {stop.signal_name} after a committed batch; the state is recorded. "
                                "Rerun `mlmd2kfp migrate` with the same options to resume")


def _flush(engine: Engine, targets: TargetTables, batch: list[RunWork], report: MigrateReport,
           say: Callable[[str], None], lock: MigrationLock, source_name: str) -> None:
    """Write one batch; transient errors are retried with backoff, anything else fails the migration."""
    resume_after = max(w.context_id for w in batch)
    for attempt in range(1, RETRIES + 1):
        lock.check()  # never write without the lock, retries included (and keep its connection alive)
        try:
            with engine.begin() as conn:
                result = write_batch(conn, targets, batch, resume_after, source_name)
            fault_point("after-batch")
        except DBAPIError as exc:
            if is_transient(exc) and attempt < RETRIES:
                report.retries += 1
                wait = 0.5 * 2 ** (attempt - 1)
                say(f"transient database error ({' '.join(str(exc.orig).split())[:120]}); "
                    f"retrying the batch in {wait:.1f}s (attempt {attempt + 1} of {RETRIES})")
                time.sleep(wait)
                continue
            _fail(engine, source_name, batch, exc)
        _account(report, result)
        return


def _fail(engine: Engine, source_name: str, batch: list[RunWork], exc: BaseException) -> None:
    reason = " ".join(str(getattr(exc, "orig", exc)).split())[:400]
    runs = ", ".join(f"{w.run_id} (context {w.context_id})" for w in batch[:5])
    message = (f"a batch of {len(batch)} run(s) failed and was rolled back whole: {reason}. Runs in it: {runs}"
               f"{' …' if len(batch) > 5 else ''}. Batches before it are committed; fix the cause and rerun "
               "`mlmd2kfp migrate` to resume")
    try:
        with engine.begin() as conn:
            update_state(conn, source_name, status="failed", last_error=message)
    except Exception:  # the database may be the problem; the message still reaches the operator
        pass
    raise MigrationFailedError(message)


def _account(report: MigrateReport, result: BatchResult) -> None:
    report.batches += 1
    report.runs_written += result.runs - sum(result.runs_skipped.values())
    report.runs_skipped.update(result.runs_skipped)
    report.tables["tasks"].written += result.tasks
    report.tables["tasks"].deleted += result.deleted_tasks
    report.tables["artifact_tasks"].written += result.links
    report.tables["artifact_tasks"].deleted += result.deleted_links
    report.tables["artifacts"].written += result.artifacts_upserted
    report.tables["artifacts"].deleted += result.deleted_artifacts
    report.ledger.update(result.ledger)
    entity_table = {"execution": "tasks", "event": "artifact_tasks", "artifact": "artifacts", "run": "tasks"}
    for (entity, reason), n in result.ledger_by_entity.items():
        report.tables[entity_table.get(entity, "tasks")].skipped[reason] += n


def _global_ledger(engine: Engine, reader: MlmdReader, t: TargetTables, report: MigrateReport,
                   source_name: str) -> None:
    """Rows of this source that belong to no run (`no-run`, `unsupported-v1`, `unsupported-type`) and
    artifacts none of its migrated runs links (`orphan-artifact`), as ledger rows under the source's
    run-less id (empty for the default source).

    Streamed (server-side cursors, ledger rows written in chunks): memory does not grow with the store.
    """
    linked = Bitmap()
    runless = runless_run_id(source_name)
    with engine.connect() as conn:
        for r in conn.execution_options(yield_per=2000).execute(
                select(t.runs.c.mlmd_artifact_ids).where(t.runs.c.source_name == source_name)):
            for i in json.loads(r.mlmd_artifact_ids or "[]"):
                linked.add(i)
    with engine.begin() as conn:
        conn.execute(delete(t.ledger).where(t.ledger.c.run_uuid == runless))
        chunk: list[LedgerEntry] = []
        for entry in _global_entries(reader, linked, runless):
            report.ledger[entry.reason] += 1
            chunk.append(entry)
            if len(chunk) >= 2000:
                insert_rows(conn, t.ledger, ledger_rows(chunk))
                chunk = []
        if chunk:
            insert_rows(conn, t.ledger, ledger_rows(chunk))
        fault_point("global-ledger")


def _global_entries(reader: MlmdReader, linked: Bitmap, runless: str) -> Iterator[LedgerEntry]:
    names = {i: n for i, (n, _) in reader.types.items()}
    m = reader.t
    c, art = m.context.c, m.artifact.c
    stream = reader.mlmd.execution_options(yield_per=5000)
    for execution_id, type_name in runless_executions(reader):
        yield LedgerEntry(runless, "execution", execution_id, runless_reason(type_name), type_name)
    for r in stream.execute(select(art.id, art.type_id)):
        name = names.get(r.type_id, "?")
        if is_v2_artifact_type(name):
            if r.id not in linked:
                yield LedgerEntry(runless, "artifact", r.id, "orphan-artifact")
        else:
            yield LedgerEntry(runless, "artifact", r.id, "unsupported-v1", name)
    for r in stream.execute(dangling_events(m)):
        yield LedgerEntry(runless, "event", r.id, "dangling-event", "its execution row does not exist")
    v1_types = [i for i, (n, k) in reader.types.items() if k == 2 and n in ("KfpRun", "pipeline_run")]
    for r in stream.execute(select(c.id, c.type_id).where(c.type_id.in_(v1_types or [-1]))):
        yield LedgerEntry(runless, "context", r.id, "unsupported-v1", names.get(r.type_id, "?"))


def _cutover(engine: Engine, source_name: str, report: MigrateReport, say: Callable[[str], None]) -> None:
    with engine.connect() as conn:
        state = load_state(conn, source_name)
    assert state is not None
    say("cutover: adding `fk_run_details_tasks` and swapping the tasks tables (the old API server must be stopped)")
    result = cutover(engine, state.staging_table)
    fault_point("after-cutover")
    moved = bool(result["moved_old_tasks"]) or bool(state.moved_old_tasks)
    with engine.begin() as conn:
        update_state(conn, source_name, phase="done", status="done", staging_table="tasks", moved_old_tasks=int(moved),
                     finished_at=int(time.time()))
    report.cutover, report.moved_old_tasks, report.phase, report.staged_in = True, moved, "done", "tasks"
