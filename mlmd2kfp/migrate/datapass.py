"""The data pass: batches of whole runs from the reader, each written with its checkpoint in one
transaction; transient errors retried, a stop request honoured between batches (mapping.md §2, W9, W12)."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ..background import PROCESS_MIN_RUNS, ChildIterator, End
from ..db import in_memory
from ..dialects import is_transient
from ..errors import InterruptedByOperator, MigrationFailedError
from ..faults import fault_point
from ..source.inventory import count_run_contexts
from ..source.reader import MlmdReader
from .lock import MigrationLock
from .options import MigrateOptions, MigrateReport, Progress
from .producer import ThreadProducer, Total, process_producer
from .signals import StopRequest
from .state import Status, update_state
from .writer import BatchResult, RunWork, TargetTables, write_batch

RETRIES = 4
"""Attempts per batch for transient database errors (lost connection, deadlock, lock wait timeout)."""


def data_pass(kfp_engine: Engine, mlmd_engine: Engine, options: MigrateOptions, multi: bool, targets: TargetTables,
              last_context_id: int, report: MigrateReport, stop: StopRequest, on_progress: Progress | None,
              say: Callable[[str], None], urls: tuple[str, str], lock: MigrationLock) -> None:
    """Every run after `last_context_id` whose change marks moved, read and mapped by the reader and written
    here a batch at a time, each with its checkpoint (mapping.md §2, W9, W12).

    Raises:
        MigrationFailedError: a batch failed for good (recorded in the state; committed batches are kept).
        InterruptedByOperator: Ctrl-C / SIGTERM after a committed batch (recorded; the rerun resumes).
    """
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


def _use_process(wanted: bool | None, mlmd_engine: Engine) -> bool:
    if wanted is not None:
        return wanted
    with mlmd_engine.connect() as conn:
        return count_run_contexts(MlmdReader(conn, None)) >= PROCESS_MIN_RUNS


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
        update_state(conn, source_name, status=Status.INTERRUPTED, last_error=f"stopped by {stop.signal_name}")
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
            update_state(conn, source_name, status=Status.FAILED, last_error=message)
    except Exception:  # the database may be the problem; the message still reaches the operator
        pass
    raise MigrationFailedError(message)


def _account(report: MigrateReport, result: BatchResult) -> None:
    report.batches += 1
    report.runs_written += result.runs - sum(result.runs_skipped.values())
    report.runs_skipped.update(result.runs_skipped)
    report.runs_repaired += result.runs_repaired
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
