"""The comparisons: coverage, counts, lineage parity, invariants, cache, run state (issue #5)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, text

from ..batching import chunks
from ..bitmap import Bitmap
from ..target.old_cache import OldCacheRows, short_hash
from .expect import (ARTIFACT_COLUMNS, JSON_COLUMNS, LINK_COLUMNS, STATE_NAME, TASK_COLUMNS, ExpectedRun,
                     whole_numbers)
from .report import FINDINGS_KEPT, Finding, ParityReport
from .source import SourceRun
from .target_reads import TargetReader

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


def _mine(value: Any) -> bool:
    """Rows this tool writes have ids of UUID version 8 (version 5 before mapping version 4); KFP's API server
    writes version 4."""
    return isinstance(value, str) and len(value) == 36 and value[14] in "85"


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


@dataclass(frozen=True)
class RowKind:
    """One target table of a run as `_compare_rows` compares it, and how its findings name a row."""

    table: str
    columns: tuple[str, ...]
    noun: str
    """The field a missing row's finding names (`task row`, `link row`)."""
    where: Callable[[str, dict[str, Any]], str]
    """The row an expected row's column differences are filed under (its id and expected row in)."""
    where_missing: Callable[[str, dict[str, Any]], str]
    """The row a missing expected row is filed under."""
    extra: Callable[[str, dict[str, Any]], tuple[str, str, str]]
    """Where, expected and found for a tool row nothing expects (its id and row in)."""


@dataclass(frozen=True)
class InfoCounters:
    """The counters one run's comparison adds to, kept in the report's info."""

    compared: Counter[str]
    """Columns compared, by name (`lineage`)."""
    kfp_rows: Counter[str]
    """Rows KFP wrote, by table: counted, not checked (`coverage`)."""


def _task_kind(exp: ExpectedRun) -> RowKind:
    return RowKind(
        "tasks", TASK_COLUMNS, "task row",
        lambda tid, want: f"task {tid} ({want['ScopePath']})",
        lambda tid, want: f"task {tid} ({want['ScopePath']}, MLMD execution {want['_executions'][-1]})",
        lambda tid, have: (f"task {tid} ({have.get('ScopePath')})", "no MLMD origin" if not exp.skip
                           else f"none (run skipped: {exp.skip})", "present"))


def _link_kind() -> RowKind:
    def origin(row: dict[str, Any]) -> str:
        return f"MLMD event {row['_event']}" if row["_event"] is not None else "propagated output"

    return RowKind(
        "artifact_tasks", LINK_COLUMNS, "link row",
        lambda lid, want: f"link {lid} ({want['ArtifactKey']}, {origin(want)})",
        lambda lid, want: f"link {lid} ({want['ArtifactKey']}, {origin(want)})",
        lambda lid, have: (f"link {lid} ({have['ArtifactKey']})", "no MLMD event or propagated output",
                           f"type {have['Type']}"))


def _compare_rows(report: ParityReport, run: str, kind: RowKind, rows: list[dict[str, Any]],
                  expected: dict[str, dict[str, Any]], counters: InfoCounters) -> dict[str, dict[str, Any]]:
    """One run's rows of `kind.table` against the expected ones: each present and equal in every column; a
    tool row nothing expects is an extra row; rows KFP wrote (UUID version 4) are counted, not checked. Returns
    the tool's rows by id."""
    coverage, lineage = report.checks["coverage"], report.checks["lineage"]
    mine = {r["UUID"]: r for r in rows if _mine(r["UUID"])}
    counters.kfp_rows[kind.table] += len(rows) - len(mine)
    for uid, want in expected.items():
        coverage.checked += 1
        have = mine.get(uid)
        if have is None:
            report.fail(Finding("coverage", run, kind.where_missing(uid, want), kind.noun, "present", "missing"))
            continue
        lineage.checked += 1
        _compare_row(report, run, kind.where(uid, want), want, have, kind.columns, counters.compared)
    for uid, have in mine.items():
        if uid not in expected:
            at, wanted, found = kind.extra(uid, have)
            report.fail(Finding("coverage", run, at, "extra row", wanted, found))
    return mine


def compare_run(report: ParityReport, src: SourceRun, exp: ExpectedRun, target: TargetReader,
                counts: dict[str, Counter[Any]], seen_artifacts: dict[str, Bitmap], kfp_owned: bool = False) -> None:
    """Every column of every tool-written row of one run, and its ledger, against the expected side. A run
    `kfp_owned` (its migrated rows changed by the new KFP since: docs/mapping.md W15) is counted, and only its
    artifacts (rows KFP does not change) are compared."""
    run = src.run_id
    tasks, links, ledger = target.run_rows(run)
    report.runs_checked += 1
    counters = InfoCounters(report.checks["lineage"].info.setdefault("columns compared", Counter()),
                      report.checks["coverage"].info.setdefault("rows written by KFP, not checked", Counter()))
    if kfp_owned:
        _count_kfp_owned(report, tasks, links, counters)
        _compare_artifacts(report, run, exp, target, seen_artifacts, counters.compared)
        return
    _compare_ledger(report, src, exp, ledger, kfp_wrote=any(not _mine(r["UUID"]) for r in tasks + links))
    # every expected row present with every column equal, and no other tool row
    mine = _compare_rows(report, run, _task_kind(exp), tasks, exp.tasks, counters)
    mine_links = _compare_rows(report, run, _link_kind(), links, exp.links, counters)
    _compare_artifacts(report, run, exp, target, seen_artifacts, counters.compared)
    _check_task_tree(report, run, tasks)
    _add_counts(counts, exp, mine, mine_links)


def _count_kfp_owned(report: ParityReport, tasks: list[dict[str, Any]], links: list[dict[str, Any]],
                     counters: InfoCounters) -> None:
    counters.kfp_rows["tasks"] += sum(not _mine(r["UUID"]) for r in tasks)
    counters.kfp_rows["artifact_tasks"] += sum(not _mine(r["UUID"]) for r in links)
    info = report.checks["coverage"].info
    info["runs KFP changed since the migration (KFP's now, counted, not compared)"] = info.get(
        "runs KFP changed since the migration (KFP's now, counted, not compared)", 0) + 1


def _compare_ledger(report: ParityReport, src: SourceRun, exp: ExpectedRun, ledger: list[dict[str, Any]],
                    kfp_wrote: bool) -> None:
    """The run's ledger holds exactly the entries the rules give, and every MLMD item is accounted for."""
    run, coverage = src.run_id, report.checks["coverage"]
    found = {(e["entity"], int(e["mlmd_id"]), e["reason"]) for e in ledger}
    # A run KFP wrote into (a task or link with a non-tool id) is never rewritten: a pass that read it
    # again says so in the ledger (mapping.md §2). Accepted exactly when such rows exist.
    if kfp_wrote:
        found.discard(("run", src.context_id, "has-live-rows"))
    coverage.checked += len(exp.ledger)
    for entity, mlmd_id, reason in sorted(exp.ledger - found, key=str):
        report.fail(Finding("coverage", run, f"{entity} {mlmd_id}", "ledger", reason, "missing"))
    for entity, mlmd_id, reason in sorted(found - exp.ledger, key=str):
        report.fail(Finding("coverage", run, f"{entity} {mlmd_id}", "ledger", "no such entry", reason))
    for gap in exp.unaccounted:
        report.fail(Finding("coverage", run, gap, "accounted for", "a target row or a ledger entry", "neither"))


def _check_task_tree(report: ParityReport, run: str, tasks: list[dict[str, Any]]) -> None:
    """Invariants that hold whatever the mapping (kfp-native-schema.md §4): one ROOT, parents in the run."""
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


def _add_counts(counts: dict[str, Counter[Any]], exp: ExpectedRun, mine: dict[str, dict[str, Any]],
                mine_links: dict[str, dict[str, Any]]) -> None:
    """The run's rows per table and namespace, and its tasks per type and state, expected and found (the
    `counts` check compares the totals at the end)."""
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


def check_run_state(report: ParityReport, target: TargetReader, run_id: str, run: dict[str, Any]) -> None:
    """The run's ROOT task state against `run_details.State` (reported, not failing)."""
    check = report.checks["run-state"]
    check.checked += 1
    root = target.root_state(run_id)
    want = RUN_STATE.get(str(run.get("state") or run.get("conditions") or "").upper())
    have = STATE_NAME.get(root)
    if want and have and want != have and not (want == "SUCCEEDED" and have == "CACHED"):
        report.fail(Finding("run-state", run_id, "ROOT task", "State", want, have))


def check_cache_rows(report: ParityReport, t: TargetReader, old: OldCacheRows, old_table: str,
                     fingerprints: list[tuple[str, str, str]]) -> None:
    """Old cache rows (population A) of these executions ((MLMD execution id, task id, run id)), each under
    its run (the launcher writes a cache row under the run that executed it), against the migrated tasks'
    fingerprints. The old rows come from `old`, read in one scan (KFP's table is clustered on random ids and
    has no index on `MLMDExecutionID`); the text of one that differs is read back for the findings kept."""
    q = t.q
    cache = report.checks["cache"]
    cache.info.setdefault("old cache rows agreeing", 0)
    cache.info.setdefault("differing", 0)
    by_task: dict[str, str] = {}
    for part in chunks(sorted({task for _, task, _ in fingerprints})):
        for r in t.conn.execute(text(f"SELECT {q('UUID')}, {q('Fingerprint')} FROM {q(t.tasks_table)} "
                                     f"WHERE {q('UUID')} IN :ids").bindparams(bindparam("ids", expanding=True)),
                                {"ids": part}):
            by_task[r[0]] = r[1]
    for exec_id, task, run_id in sorted(fingerprints):
        migrated = by_task.get(task)
        for fingerprint in old.fingerprints_of(int(exec_id), run_id):
            cache.checked += 1
            if migrated is not None and fingerprint == short_hash(migrated):
                cache.info["old cache rows agreeing"] += 1
                continue
            cache.info["differing"] += 1
            found: list[str] = []
            if len(cache.failures) < FINDINGS_KEPT:  # the text only for a finding that is kept
                found = [r[0] for r in t.conn.execute(text(
                    f"SELECT {q('Fingerprint')} FROM {q(old_table)} WHERE {q('RunUUID')} = :run AND "
                    f"{q('MLMDExecutionID')} = :e"), {"run": run_id, "e": exec_id})
                    if short_hash(r[0]) == fingerprint]
            report.fail(Finding("cache", "", f"task {task} (MLMD execution {exec_id})", "Fingerprint",
                                found[0] if found else "(changed while verified)", migrated))
