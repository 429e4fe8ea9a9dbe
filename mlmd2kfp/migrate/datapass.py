"""The data pass: batches of whole runs from the reader, each written with its checkpoint in one
transaction; transient errors retried, a stop request honoured between batches (mapping.md §2, W9, W12)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sqlalchemy.exc import DBAPIError

from ..background import PROCESS_MIN_RUNS, ChildIterator, End
from ..dialects import is_transient
from ..errors import InterruptedByOperator, MigrationFailedError
from ..faults import fault_point
from ..source.inventory import count_run_contexts
from ..source.reader import MlmdReader
from .options import MigrateReport
from .producer import InlineProducer, ThreadProducer, Total, process_producer
from .state import Status, update_state
from .writer import BatchResult, RunWork, write_batch

if TYPE_CHECKING:
    from .context import MigrationContext

RETRIES = 4
"""Attempts per batch for transient database errors (lost connection, deadlock, lock wait timeout)."""


def data_pass(ctx: MigrationContext, last_context_id: int) -> None:
    """Every run after `last_context_id` whose change marks moved, read and mapped by the reader and written
    here a batch at a time, each with its checkpoint (mapping.md §2, W9, W12).

    Raises:
        MigrationFailedError: a batch failed for good (recorded in the state; committed batches are kept).
        InterruptedByOperator: Ctrl-C / SIGTERM after a committed batch (recorded; the rerun resumes).
    """
    report = ctx.report
    producer = _producer(ctx, last_context_id)
    producer.start()
    try:
        total, done, window = 0, 0, time.monotonic()
        while not isinstance(item := producer.get(), End):
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Total):
                total = item.runs
                continue
            item.counts.add_to(report)
            if item.batch:
                _flush(ctx, item.batch)
                report.fingerprints["agree"] += item.fingerprints[0]
                report.fingerprints["differ"] += item.fingerprints[1]
                _throttle(ctx, window)
            done += len(item.batch) + item.counts.runs_unchanged
            if ctx.on_progress:
                ctx.on_progress(done, total, _written(report))
            if ctx.stop.requested:
                _interrupt(ctx)
    finally:
        producer.stop()


def _producer(ctx: MigrationContext, last_context_id: int) -> ThreadProducer | InlineProducer | ChildIterator:
    """The reader: a second process for a large store (W12), else a thread; in this thread for an in-memory
    database, which neither a process nor a thread could share."""
    options, multi, targets = ctx.options, ctx.multi, ctx.targets
    if ctx.in_one_process:
        return InlineProducer(ctx.mlmd, ctx.kfp, options, multi, last_context_id, targets)
    if _use_process(options.reader_process, ctx):
        mlmd_url, kfp_url = ctx.urls
        return process_producer(mlmd_url, kfp_url, options, multi, last_context_id, targets)
    return ThreadProducer(ctx.mlmd, ctx.kfp, options, multi, last_context_id, targets)


def _use_process(wanted: bool | None, ctx: MigrationContext) -> bool:
    if wanted is not None:
        return wanted
    with ctx.mlmd.connect() as conn:
        return count_run_contexts(MlmdReader(conn, None)) >= PROCESS_MIN_RUNS


def _written(report: MigrateReport) -> int:
    return sum(t.written for t in report.tables.values())


def _throttle(ctx: MigrationContext, window_start: float) -> None:
    if not ctx.options.max_rows_per_second:
        return
    elapsed = time.monotonic() - window_start
    wanted = _written(ctx.report) / ctx.options.max_rows_per_second
    if wanted > elapsed:
        time.sleep(min(wanted - elapsed, 60))


def _interrupt(ctx: MigrationContext) -> None:
    with ctx.kfp.begin() as conn:
        update_state(conn, ctx.source_name, status=Status.INTERRUPTED, last_error=f"stopped by {ctx.stop.signal_name}")
    raise InterruptedByOperator(f"stopped by {ctx.stop.signal_name} after a committed batch; the state is recorded. "
                                "Rerun `mlmd2kfp migrate` with the same options to resume")


def _flush(ctx: MigrationContext, batch: list[RunWork]) -> None:
    """Write one batch; transient errors are retried with backoff, anything else fails the migration."""
    resume_after = max(w.context_id for w in batch)
    for attempt in range(1, RETRIES + 1):
        ctx.lock.check()  # never write without the lock, retries included (and keep its connection alive)
        try:
            with ctx.kfp.begin() as conn:
                result = write_batch(conn, ctx.targets, batch, resume_after, ctx.source_name)
            fault_point("after-batch")
        except DBAPIError as exc:
            if is_transient(exc) and attempt < RETRIES:
                ctx.report.retries += 1
                wait = 0.5 * 2 ** (attempt - 1)
                ctx.say(f"transient database error ({' '.join(str(exc.orig).split())[:120]}); "
                        f"retrying the batch in {wait:.1f}s (attempt {attempt + 1} of {RETRIES})")
                time.sleep(wait)
                continue
            _fail(ctx, batch, exc)
        _account(ctx.report, result)
        return


def _fail(ctx: MigrationContext, batch: list[RunWork], exc: BaseException) -> None:
    reason = " ".join(str(getattr(exc, "orig", exc)).split())[:400]
    runs = ", ".join(f"{w.run_id} (context {w.context_id})" for w in batch[:5])
    message = (f"a batch of {len(batch)} run(s) failed and was rolled back whole: {reason}. Runs in it: {runs}"
               f"{' …' if len(batch) > 5 else ''}. Batches before it are committed; fix the cause and rerun "
               "`mlmd2kfp migrate` to resume")
    try:
        with ctx.kfp.begin() as conn:
            update_state(conn, ctx.source_name, status=Status.FAILED, last_error=message)
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
