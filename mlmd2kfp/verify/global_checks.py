"""The checks over the whole target, once every run is compared: invariants across tables, tool rows no MLMD
run accounts for, the counts, the run-less ledger and the rollback copy (issue #5, issue #27)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..bitmap import Bitmap
from ..migrate.state import MigrationState, load_states
from ..target.legacy import old_tasks_digest
from .report import Finding, ParityReport
from .source import expected_runless
from .target_reads import TargetReader, runs_of_other_sources

MINE = "SUBSTR({}, 15, 1) IN ('8', '5')"
"""SQL true for a tool-written row's id (`{}`: the column): the tool writes UUID version 8 (version 5 before
mapping version 4), KFP's server version 4."""
UNLINKED_SHOWN = 50
"""Unlinked artifacts reported at most (the rest would say the same)."""


def check_whole_target(report: ParityReport, t: TargetReader, seen_runs: set[str], counts: dict[str, Counter[Any]],
                       other_sources: list[str], owned_artifacts: set[str]) -> None:
    """The checks no single run answers, on the target as a whole: `seen_runs` are the runs compared,
    `counts` their rows expected and found, `owned_artifacts` the artifacts of runs KFP changed since."""
    _check_invariants(report, t)
    _check_runs_not_seen(report, t, seen_runs, other_sources)
    _check_unlinked_artifacts(report, t, owned_artifacts)
    _count_kfp_rows(report, t)
    _check_counts(report, counts)
    _count_cache_sources(report, t)


def _check_invariants(report: ParityReport, t: TargetReader) -> None:
    q, tasks = t.q, t.q(t.tasks_table)
    inv = report.checks["invariants"]
    queries = {
        "link → task of the same run": f"SELECT l.{q('UUID')} FROM artifact_tasks l WHERE NOT EXISTS (SELECT 1 FROM "
                                        f"{tasks} k WHERE k.{q('UUID')} = l.{q('TaskID')} AND k.{q('RunUUID')} = l.{q('RunUUID')})",
        "link → artifact": f"SELECT l.{q('UUID')} FROM artifact_tasks l WHERE NOT EXISTS (SELECT 1 FROM artifacts a "
                           f"WHERE a.{q('UUID')} = l.{q('ArtifactID')})",
        "task → run_details": f"SELECT k.{q('UUID')} FROM {tasks} k WHERE NOT EXISTS (SELECT 1 FROM run_details r "
                              f"WHERE r.{q('UUID')} = k.{q('RunUUID')})",
        # the unique index admits any number of NULLs (KFP's own rows may have none)
        "LogicalKey unique": f"SELECT {q('LogicalKey')} FROM {tasks} WHERE {q('LogicalKey')} IS NOT NULL "
                             f"GROUP BY {q('LogicalKey')} HAVING COUNT(*) > 1",
    }
    for what, sql in queries.items():
        inv.checked += 1
        for r in t.conn.execute(text(sql)).fetchmany(20):
            report.fail(Finding("invariants", "", f"row {r[0]}", what, "holds", "violated"))


def _check_runs_not_seen(report: ParityReport, t: TargetReader, seen: set[str], other_sources: list[str]) -> None:
    """Tool-written rows no MLMD run accounts for (rows KFP wrote itself have version-4 ids and are not
    checked); a run another source migrated is told by its ROOT task's id, derived under that source's name."""
    q, coverage = t.q, report.checks["coverage"]
    unseen = []
    for r in t.conn.execute(text(f"SELECT DISTINCT {q('RunUUID')} FROM {q(t.tasks_table)} WHERE {MINE.format(q('UUID'))}")):
        coverage.checked += 1
        if r[0] not in seen:
            unseen.append(r[0])
    elsewhere = runs_of_other_sources(t, unseen, other_sources)
    for run_id in unseen:
        if run_id not in elsewhere:
            report.fail(Finding("coverage", run_id, "tool-written tasks of this run", "extra rows",
                                "no MLMD run context", "present"))
    if elsewhere:
        coverage.info["runs of other sources, not checked"] = len(elsewhere)


def _check_unlinked_artifacts(report: ParityReport, t: TargetReader, owned_artifacts: set[str]) -> None:
    """Tool-written artifacts no link uses (the first `UNLINKED_SHOWN`)."""
    q, unlinked = t.q, 0
    for r in t.conn.execute(text(f"SELECT a.{q('UUID')} FROM artifacts a WHERE {MINE.format('a.' + q('UUID'))} AND NOT "
                                 f"EXISTS (SELECT 1 FROM artifact_tasks l WHERE l.{q('ArtifactID')} = a.{q('UUID')})")):
        if r[0] in owned_artifacts:  # its links were a run's that KFP changed since (a retry drops them)
            continue
        report.fail(Finding("coverage", "", f"artifact {r[0]}", "extra row", "no link of a migrated run uses it",
                            "present"))
        unlinked += 1
        if unlinked >= UNLINKED_SHOWN:
            break


def _count_kfp_rows(report: ParityReport, t: TargetReader) -> None:
    q, tasks = t.q, t.q(t.tasks_table)
    kfp = {name: int(t.conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE NOT {MINE.format(q('UUID'))}")).scalar()
                     or 0)
           for name, table in (("tasks", tasks), ("artifacts", "artifacts"), ("artifact_tasks", "artifact_tasks"))}
    report.checks["coverage"].info["rows written by KFP, not checked"] = {k: v for k, v in kfp.items() if v}


def _check_counts(report: ParityReport, counts: dict[str, Counter[Any]]) -> None:
    check = report.checks["counts"]
    for key in sorted(set(counts["expected"]) | set(counts["found"]), key=str):
        check.checked += 1
        if counts["expected"][key] != counts["found"][key]:
            report.fail(Finding("counts", "", " / ".join(map(str, key)), "rows", counts["expected"][key],
                                counts["found"][key]))
    check.info = {"tasks per namespace": {(k[1] or "(no namespace)"): v for k, v in
                                          sorted(counts["found"].items(), key=str) if k[0] == "tasks"}}


def _count_cache_sources(report: ParityReport, t: TargetReader) -> None:
    q, cache = t.q, report.checks["cache"]
    sources = {str(r[0]): int(r[1]) for r in t.conn.execute(text(
        f"SELECT {q('Namespace')}, COUNT(*) FROM {q(t.tasks_table)} WHERE {q('State')} = 2 AND {q('Fingerprint')} <> '' "
        f"GROUP BY {q('Namespace')}"))}
    cache.info = {"old cache rows agreeing": cache.info.get("old cache rows agreeing", 0),
                  "differing": cache.info.get("differing", 0), "cache sources per namespace": sources}


def check_runless_ledger(report: ParityReport, mconn: Connection, target: TargetReader, linked: Bitmap,
                         runless: str) -> None:
    """The run-less ledger rows, re-derived from MLMD with plain SQL (linear scans and bitmaps, no
    per-row subqueries): executions in no run context, artifacts no migrated run links or of v1 types,
    events whose execution row is missing, and v1 run contexts; against the ledger rows filed under the
    source's run-less id `runless`."""
    coverage = report.checks["coverage"]
    want = expected_runless(mconn, linked)
    found = {(str(r[0]), int(r[1]), str(r[2])) for r in target.conn.execute(text(
        "SELECT entity, mlmd_id, reason FROM mlmd2kfp_ledger WHERE run_uuid = :r"), {"r": runless})}
    coverage.checked += len(want)
    for entity, mlmd_id, reason in sorted(want - found, key=str):
        report.fail(Finding("coverage", "", f"{entity} {mlmd_id} (in no migrated run)", "ledger", reason, "missing"))
    for entity, mlmd_id, reason in sorted(found - want, key=str):
        report.fail(Finding("coverage", "", f"{entity} {mlmd_id} (in no migrated run)", "ledger", "no such entry",
                            reason))


def recorded_copy(conn: Connection) -> MigrationState | None:
    """The state row that holds the rollback copy's rows and digest as the cutover recorded them (the table's,
    whichever source's row holds it); None before a cutover."""
    return next((s for s in load_states(conn) if s.old_tasks_digest), None)


def check_rollback_copy(report: ParityReport, conn: Connection, names: set[str],
                        measured: tuple[int, str] | None = None) -> None:
    """The old `tasks` the cutover moved aside (what rollback restores) still has the rows and digest the
    cutover recorded (issue #27 item 3); `measured`: its rows and digest as a scan of this verify read them
    already (`target.legacy.old_tasks_scan`)."""
    recorded = recorded_copy(conn)
    if recorded is None:
        return
    inv = report.checks["invariants"]
    inv.checked += 1
    want = f"{recorded.old_tasks_rows} row(s), digest {recorded.old_tasks_digest}"
    what = "`tasks_pre_migration` (the old tasks rollback restores)"
    if "tasks_pre_migration" not in names:
        report.fail(Finding("invariants", "", what, "rollback copy", want, "missing"))
        return
    rows, digest = measured or old_tasks_digest(conn, "tasks_pre_migration", recorded.old_tasks_digest)
    if (rows, digest) != (recorded.old_tasks_rows, recorded.old_tasks_digest):
        report.fail(Finding("invariants", "", what, "rollback copy", want, f"{rows} row(s), digest {digest}"))
