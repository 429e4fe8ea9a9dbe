"""What a run's rows hash to, computed by the database (issue #30).

For each run: the count and the sum of row hashes (`dialects.row_hash_sql`) of its tasks, its links, the
artifacts its links use (once per link) and its ledger entries, read per chunk of runs with one aggregate
query per part, so no row leaves the server; and what its `run_details` row says that its expected rows are
derived from (namespaces, state, the spec). A passing verify records them per run; the next verify
recomputes them and compares in full only the runs whose sums or MLMD marks moved since.

The parts are read in separate statements, each its own snapshot where the isolation level is READ
COMMITTED: sums a verify records must describe the rows it compared, so it takes them before and after
comparing and records a run only when the two agree (`verify/records.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

from ..batching import chunks
from ..dialects import Dialect, dialect_for, hash_sum_sql, prepare_row_hashes, row_hash_of, row_hash_sql
from .schema import ARTIFACT_TASKS, ARTIFACTS, TASKS

LEDGER_COLUMNS = ("id", "run_uuid", "entity", "mlmd_id", "reason", "detail")
"""The ledger's columns (`mlmd2kfp_ledger`): what the migration recorded about a run's skipped rows."""
WRITTEN_PARTS = 2
"""The parts `migrate` records for each run it wrote (its tasks and links): what the true-up compares."""
WHOLE_TABLE_RUNS = 2000
"""From this many runs asked at once, a caller asks for one GROUP BY over each whole table (`run_sums`'s
`whole`) rather than one per list of runs: verify's sums of every run, a true-up's of every recorded run."""
RUN_COLUMNS = ("UUID", "Namespace", "State", "Conditions", "PipelineVersionId", "ExperimentUUID", "DisplayName",
               "FinishedAtInSec", "PipelineSpecManifest")
"""The columns of a run's `run_details` row its expected rows are derived from; with its experiment's namespace
and its pipeline version's spec (the spec when the run has no manifest of its own)."""


def _parts(d: Dialect, tasks_table: str) -> list[tuple[str, str, str]]:
    """(FROM clause, row hash, run column) of each part of a run, in a fixed order."""
    q = d.q
    return [
        (f"{q(tasks_table)} t", row_hash_sql(d, [c.name for c in TASKS.columns], "t"), f"t.{q('RunUUID')}"),
        (f"{q('artifact_tasks')} l", row_hash_sql(d, [c.name for c in ARTIFACT_TASKS.columns], "l"),
         f"l.{q('RunUUID')}"),
        (f"{q('artifact_tasks')} l JOIN {q('artifacts')} a ON a.{q('UUID')} = l.{q('ArtifactID')}",
         row_hash_sql(d, [c.name for c in ARTIFACTS.columns], "a"), f"l.{q('RunUUID')}"),
        (f"{q('mlmd2kfp_ledger')} g", row_hash_sql(d, list(LEDGER_COLUMNS), "g"), f"g.{q('run_uuid')}"),
        (f"{q('run_details')} r LEFT JOIN {q('experiments')} e ON e.{q('UUID')} = r.{q('ExperimentUUID')} "
         f"LEFT JOIN {q('pipeline_versions')} v ON v.{q('UUID')} = r.{q('PipelineVersionId')}",
         row_hash_of(d, [f"r.{q(c)}" for c in RUN_COLUMNS] + [f"e.{q('Namespace')}", f"v.{q('PipelineSpec')}"]),
         f"r.{q('UUID')}"),
    ]


def run_sums(conn: Connection, tasks_table: str, run_ids: list[str], parts: int | None = None,
             whole: bool = False) -> dict[str, str] | None:
    """Each run's sums as one short text (a run without rows gets the sums of nothing); None when this
    database cannot hash (a MySQL whose SHA2 does not answer). `parts`: only the first ones (`WRITTEN_PARTS`:
    the tasks and links the migrator wrote). `whole`: one GROUP BY over each whole table, for a caller that
    asks for most runs at once (`WHOLE_TABLE_RUNS` or more); else one per list of runs."""
    if not prepare_row_hashes(conn):
        return None
    run_ids = list(dict.fromkeys(run_ids))  # a run asked twice is one run
    d = dialect_for(conn)
    found: dict[str, list[str]] = {r: [] for r in run_ids}
    for source, row_hash, run in _parts(d, tasks_table)[:parts]:
        select = f"SELECT {run}, COUNT(*), {hash_sum_sql(d, row_hash)} FROM {source}"
        if whole:  # one pass over the table (a run's rows are found by the index, row after row)
            results: Iterable[Any] = [conn.execute(text(f"{select} GROUP BY {run}"))]
        else:
            sql = text(f"{select} WHERE {run} IN :ids GROUP BY {run}").bindparams(bindparam("ids", expanding=True))
            results = (conn.execute(sql, {"ids": chunk}) for chunk in chunks(run_ids))
        part = {run_id: f"{int(count)}:{int(total)}" for result in results for run_id, count, total in result
                if run_id in found}
        for run_id in run_ids:
            found[run_id].append(part.get(run_id, "0:0"))
    return {r: hashlib.sha256("|".join(parts).encode()).hexdigest()[:32] for r, parts in found.items()}
