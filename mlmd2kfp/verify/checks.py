"""The comparisons: coverage, counts, lineage parity, invariants, cache, run state (issue #5)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..batching import chunks
from ..dialects import dialect_for
from ..bitmap import Bitmap
from .expect import ARTIFACT_COLUMNS, JSON_COLUMNS, LINK_COLUMNS, TASK_COLUMNS, ExpectedRun, whole_numbers
from .report import Finding, ParityReport
from .source import SourceRun

RUN_STATE = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "ERROR": "FAILED", "SKIPPED": "SKIPPED",
             "RUNNING": "RUNNING", "PENDING": "RUNNING", "CANCELED": "FAILED", "CANCELING": "RUNNING"}
CHECKS = {
    "coverage": "every MLMD run context, execution, artifact and event (run-less ones included) is a target row "
                "or a ledger entry with the reason verify re-derives from MLMD; no tool-written row or ledger entry "
                "without an MLMD origin",
    "counts": "tool-written rows per table, namespace, task type and state equal what the source implies",
    "lineage": "every column of every tool-written `tasks`, `artifacts` and `artifact_tasks` row equals the value "
               "re-derived from MLMD and the KFP source tables (JSON compared as parsed values)",
    "invariants": "kfp-native-schema.md §4: foreign keys, one ROOT per run, LogicalKey unique, links point at "
                  "tasks of their run",
    "cache": "cache fingerprints carried; old cache rows agree; cache sources per namespace",
    "run-state": "ROOT state against run_details.State (reported, not failing: MLMD-derived states may differ)",
}


def js(value: Any) -> Any:
    """JSON columns come back parsed on PostgreSQL and as text elsewhere."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class TargetReader:
    """Plain SQL over the target and the ledger, fetched a chunk of runs at a time (`prefetch`)."""

    def __init__(self, conn: Connection, tasks_table: str = "tasks") -> None:
        self.conn = conn
        self.tasks_table = tasks_table
        self.q = dialect_for(conn).q
        self._rows: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self._artifacts: dict[str, dict[str, Any]] = {}

    def _where_in(self, sql: str, column: str, values: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in chunks(values):
            chunk = part
            params = {f"v{j}": v for j, v in enumerate(chunk)}
            out += [dict(r) for r in self.conn.execute(
                text(f"{sql} WHERE {column} IN ({','.join(':' + k for k in params)})"), params).mappings()]
        return out

    def _select(self, table: str, columns: tuple[str, ...]) -> str:
        # KFP's columns only, by name: a later KFP release may add its own columns (mapping.md S4)
        return f"SELECT {', '.join(self.q(c) for c in ('UUID', *columns))} FROM {self.q(table)}"

    def prefetch(self, run_ids: list[str]) -> None:
        """Load the target rows of these runs (and the artifacts their links use) in a few statements."""
        q = self.q
        self._rows = {r: ([], [], []) for r in run_ids}
        for t in self._where_in(self._select(self.tasks_table, TASK_COLUMNS), q("RunUUID"), run_ids):
            self._rows[t["RunUUID"]][0].append(t)
        for lk in self._where_in(self._select("artifact_tasks", LINK_COLUMNS), q("RunUUID"), run_ids):
            self._rows[lk["RunUUID"]][1].append(lk)
        for e in self._where_in("SELECT * FROM mlmd2kfp_ledger", "run_uuid", run_ids):
            self._rows[e["run_uuid"]][2].append(e)
        ids = sorted({lk["ArtifactID"] for rows in self._rows.values() for lk in rows[1]})
        self._artifacts = {a["UUID"]: a for a in self._where_in(self._select("artifacts", ARTIFACT_COLUMNS), q("UUID"), ids)}

    def run_rows(self, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        if run_id not in self._rows:
            self.prefetch([run_id])
        return self._rows[run_id]

    def root_state(self, run_id: str) -> Any:
        """`State` of the run's ROOT task (no parent), or None."""
        return next((t["State"] for t in self.run_rows(run_id)[0] if t["ParentTaskUUID"] is None), None)

    def artifacts(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        out = {i: self._artifacts[i] for i in ids if i in self._artifacts}
        missing = sorted(set(ids) - set(out))
        if missing:
            out.update({a["UUID"]: a for a in self._where_in(self._select("artifacts", ARTIFACT_COLUMNS), self.q("UUID"),
                                                             missing)})
        return out


def _v5(value: Any) -> bool:
    """Rows this tool writes have UUIDv5 ids; KFP's API server writes version 4."""
    return isinstance(value, str) and len(value) == 36 and value[14] == "5"


def _same(column: str, want: Any, have: Any) -> bool:
    if column in JSON_COLUMNS:
        have = js(have)
        if column in ("InputParameters", "OutputParameters") and isinstance(want, list) and isinstance(have, list):
            return sorted(map(_canon, want)) == sorted(map(_canon, have))
        return _canon(want) == _canon(have)
    if column == "NumberValue":
        return (want is None) == (have is None) and (want is None or math.isclose(float(have), want, rel_tol=1e-12))
    if isinstance(want, int) and not isinstance(want, bool) and have is not None:
        try:
            return int(have) == want
        except (TypeError, ValueError):
            return False
    return bool(want == have)


def _compare_row(report: ParityReport, run: str, what: str, want: dict[str, Any], have: dict[str, Any],
                 columns: tuple[str, ...], counts: Counter[str]) -> None:
    for column in columns:
        counts[column] += 1
        if not _same(column, want[column], have.get(column)):
            report.fail(Finding("lineage", run, what, column, want[column], js(have.get(column))
                                if column in JSON_COLUMNS else have.get(column)))
    # parameter lists compare as multisets (`_same`): their order is not significant (kfp-native-schema.md)


def _compare_rows(report: ParityReport, run: str, table: str, rows: list[dict[str, Any]],
                  expected: dict[str, dict[str, Any]], columns: Any, compared: Counter[str], kfp_rows: Counter[str],
                  where: Callable[[str, dict[str, Any]], str], where_missing: Callable[[str, dict[str, Any]], str],
                  extra: Callable[[str, dict[str, Any]], tuple[str, str, str]]) -> dict[str, dict[str, Any]]:
    """One run's rows of `table` against the expected ones: each present and equal in every column; a
    tool row nothing expects is an extra row (`extra` gives where, expected, found); rows KFP wrote
    (not UUIDv5) are counted, not checked. Returns the tool's rows by id."""
    coverage, lineage = report.checks["coverage"], report.checks["lineage"]
    mine = {r["UUID"]: r for r in rows if _v5(r["UUID"])}
    kfp_rows[table] += len(rows) - len(mine)
    noun = "task row" if table == "tasks" else "link row"
    for uid, want in expected.items():
        coverage.checked += 1
        have = mine.get(uid)
        if have is None:
            report.fail(Finding("coverage", run, where_missing(uid, want), noun, "present", "missing"))
            continue
        lineage.checked += 1
        _compare_row(report, run, where(uid, want), want, have, columns, compared)
    for uid, have in mine.items():
        if uid not in expected:
            at, wanted, found = extra(uid, have)
            report.fail(Finding("coverage", run, at, "extra row", wanted, found))
    return mine


def compare_run(report: ParityReport, src: SourceRun, exp: ExpectedRun, target: TargetReader,
                counts: dict[str, Counter[Any]], seen_artifacts: dict[str, Bitmap], kfp_owned: bool = False) -> None:
    """Every column of every tool-written row of one run, and its ledger, against the expected side. A run
    `kfp_owned` (its migrated rows changed by the new KFP since: docs/mapping.md W15) is counted, and only its
    artifacts (rows KFP does not change) are compared."""
    run = src.run_id
    tasks, links, ledger = target.run_rows(run)
    coverage = report.checks["coverage"]
    report.runs_checked += 1
    compared: Counter[str] = report.checks["lineage"].info.setdefault("columns compared", Counter())
    kfp_rows = report.checks["coverage"].info.setdefault("rows written by KFP, not checked", Counter())
    if kfp_owned:
        kfp_rows["tasks"] += sum(not _v5(r["UUID"]) for r in tasks)
        kfp_rows["artifact_tasks"] += sum(not _v5(r["UUID"]) for r in links)
        info = coverage.info
        info["runs KFP changed since the migration (KFP's now, counted, not compared)"] = info.get(
            "runs KFP changed since the migration (KFP's now, counted, not compared)", 0) + 1
        _compare_artifacts(report, run, exp, target, seen_artifacts, compared)
        return
    # --- ledger: exactly the entries the rules give ------------------------------------------------
    found_ledger = {(e["entity"], int(e["mlmd_id"]), e["reason"]) for e in ledger}
    # A run KFP wrote into (a task or link with a non-tool id) is never rewritten: a pass that read it
    # again says so in the ledger (mapping.md §2). Accepted exactly when such rows exist.
    if any(not _v5(r["UUID"]) for r in tasks + links):
        found_ledger.discard(("run", src.context_id, "has-live-rows"))
    coverage.checked += len(exp.ledger)
    for entity, mlmd_id, reason in sorted(exp.ledger - found_ledger, key=str):
        report.fail(Finding("coverage", run, f"{entity} {mlmd_id}", "ledger", reason, "missing"))
    for entity, mlmd_id, reason in sorted(found_ledger - exp.ledger, key=str):
        report.fail(Finding("coverage", run, f"{entity} {mlmd_id}", "ledger", "no such entry", reason))
    for gap in exp.unaccounted:
        report.fail(Finding("coverage", run, gap, "accounted for", "a target row or a ledger entry", "neither"))
    # --- tasks and links: every expected row present with every column equal, and no other tool row -------
    def link_origin(row: dict[str, Any]) -> str:
        return f"MLMD event {row['_event']}" if row["_event"] is not None else "propagated output"

    mine = _compare_rows(
        report, run, "tasks", tasks, exp.tasks, TASK_COLUMNS, compared, kfp_rows,
        lambda tid, want: f"task {tid} ({want['ScopePath']})",
        lambda tid, want: f"task {tid} ({want['ScopePath']}, MLMD execution {want['_executions'][-1]})",
        lambda tid, have: (f"task {tid} ({have.get('ScopePath')})", "no MLMD origin" if not exp.skip
                           else f"none (run skipped: {exp.skip})", "present"))
    mine_links = _compare_rows(
        report, run, "artifact_tasks", links, exp.links, LINK_COLUMNS, compared, kfp_rows,
        lambda lid, want: f"link {lid} ({want['ArtifactKey']}, {link_origin(want)})",
        lambda lid, want: f"link {lid} ({want['ArtifactKey']}, {link_origin(want)})",
        lambda lid, have: (f"link {lid} ({have['ArtifactKey']})", "no MLMD event or propagated output",
                           f"type {have['Type']}"))
    _compare_artifacts(report, run, exp, target, seen_artifacts, compared)
    # --- invariants that hold whatever the mapping (kfp-native-schema.md §4) ------------------------------
    inv = report.checks["invariants"]
    by_id = {t["UUID"]: t for t in tasks}
    if tasks:
        inv.checked += 1
        roots = [t for t in tasks if t["ParentTaskUUID"] is None]
        if len(roots) != 1 or roots[0]["Type"] != 1 or roots[0]["Name"] != "ROOT":
            report.fail(Finding("invariants", run, "tasks", "one ROOT without parent", 1,
                                ", ".join(f"{t['Name']} (type {t['Type']})" for t in roots) or "none"))
    for t in tasks:
        inv.checked += 1
        if t["ParentTaskUUID"] and t["ParentTaskUUID"] not in by_id:
            report.fail(Finding("invariants", run, f"task {t['UUID']}", "ParentTaskUUID", "a task of the run",
                                t["ParentTaskUUID"]))
    # --- counts (aggregated) -------------------------------------------------------------------------------
    ns = exp.namespace or ""
    counts["expected"].update({("tasks", ns): len(exp.tasks), ("artifact_tasks", ns): len(exp.links)})
    counts["found"].update({("tasks", ns): len(mine), ("artifact_tasks", ns): len(mine_links)})
    for want in exp.tasks.values():
        counts["expected"][("type/state", want["Type"], want["State"])] += 1
    for have in mine.values():
        counts["found"][("type/state", int(have["Type"]), int(have["State"]))] += 1


def _compare_artifacts(report: ParityReport, run: str, exp: ExpectedRun, target: TargetReader,
                       seen_artifacts: dict[str, Bitmap], compared: Counter[str]) -> None:
    coverage, lineage = report.checks["coverage"], report.checks["lineage"]
    # --- artifacts (shared between runs: each row compared once; an artifact's rows, split metrics
    # included, all come with the first run that uses it in its namespace: a bit per MLMD id) -------------
    seen = seen_artifacts.setdefault(exp.namespace or "", Bitmap())
    wanted = {aid: a for aid, a in exp.artifacts.items() if a["_mlmd"] not in seen}
    rows = target.artifacts(set(wanted))
    for want in wanted.values():
        seen.add(want["_mlmd"])
    for aid, want in wanted.items():
        coverage.checked += 1
        have = rows.get(aid)
        if have is None:
            report.fail(Finding("coverage", run, f"artifact row {aid} (MLMD artifact {want['_mlmd']})", "artifact row",
                                "present", "missing"))
            continue
        lineage.checked += 1
        _compare_row(report, run, f"artifact {aid} (MLMD artifact {want['_mlmd']})", want, have, ARTIFACT_COLUMNS,
                     compared)


def _canon(value: Any) -> str:
    """Parameter values compared as JSON with integral numbers as integers (MLMD structs hold doubles)."""
    return json.dumps(whole_numbers(value), sort_keys=True)
