"""The run-less ledger: after the data pass, the MLMD rows of this source that belong to no run, and the
artifacts none of its migrated runs links, as ledger rows under the source's run-less id (mapping.md §7)."""

from __future__ import annotations

import json

from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine

from ..bitmap import Bitmap
from ..faults import fault_point
from ..records import LedgerEntry
from ..source.inventory import events_and_artifacts_in_no_run, executions_in_runs, runless_entries
from ..source.reader import MlmdReader
from .options import MigrateReport
from .state import runless_run_id
from .writer import TargetTables, insert_rows, ledger_rows

if TYPE_CHECKING:
    from .context import MigrationContext


def write_runless_ledger(ctx: MigrationContext) -> None:
    """The run-less ledger phase of `migrate`, after the data pass (`_write_ledger`)."""
    with ctx.mlmd.connect() as mlmd:
        _write_ledger(ctx.kfp, MlmdReader(mlmd, None), ctx.targets, ctx.report, ctx.source_name)


def _write_ledger(engine: Engine, reader: MlmdReader, t: TargetTables, report: MigrateReport,
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
    in_run = executions_in_runs(reader)
    with engine.begin() as conn:
        conn.execute(delete(t.ledger).where(t.ledger.c.run_uuid == runless))
        chunk: list[LedgerEntry] = []
        for entry in runless_entries(reader, in_run, linked, runless):
            report.ledger[entry.reason] += 1
            if entry.entity == "execution":  # an execution in no run: read here, not with a run
                report.tables["tasks"].read += 1
            chunk.append(entry)
            if len(chunk) >= 2000:
                insert_rows(conn, t.ledger, ledger_rows(chunk))
                chunk = []
        if chunk:
            insert_rows(conn, t.ledger, ledger_rows(chunk))
        fault_point("global-ledger")
    # the rest of what no run's read touched: with the runs' distinct rows, the whole store
    unread = events_and_artifacts_in_no_run(reader, in_run)
    report.tables["artifact_tasks"].read += unread["events"]
    report.tables["artifacts"].read += unread["artifacts"]
