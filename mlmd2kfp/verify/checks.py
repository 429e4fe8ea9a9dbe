"""The comparisons: coverage, counts, lineage parity, invariants, cache, run state (issue #5)."""

from __future__ import annotations

import hashlib
import json
import struct
from collections import Counter
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from .expect import ExpectedRun
from .report import Finding, ParityReport
from .source import SourceRun

DAG_LIKE = {1, 3, 4, 5, 8}
STATE_NAMES = {1: "RUNNING", 2: "SUCCEEDED", 3: "SKIPPED", 4: "FAILED", 5: "CACHED"}
RUN_STATE = {"SUCCEEDED": "SUCCEEDED", "FAILED": "FAILED", "ERROR": "FAILED", "SKIPPED": "SKIPPED",
             "RUNNING": "RUNNING", "PENDING": "RUNNING", "CANCELED": "FAILED", "CANCELING": "RUNNING"}
CHECKS = {
    "coverage": "every MLMD execution, artifact and event of a run is a target row (by its deterministic id) or "
                "in the ledger; no target row claims an MLMD origin that does not exist",
    "counts": "rows per table, namespace, task type and leaf state equal what the source implies",
    "lineage": "per run: task tree, links (IO type, key, iteration), artifact URIs/types, metric names and "
               "values, parameters, fingerprints",
    "invariants": "kfp-native-schema.md §4: foreign keys, one ROOT per run, LogicalKey recomputes and is unique, "
                  "JSON shapes, IO types, namespaces consistent",
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


def logical_key(run: str, parent: str | None, scope: str, name: str, task_type: int, iteration: int | None) -> str:
    """kfp-native-schema.md §3.3, re-derived."""
    h = hashlib.sha256()
    for part in (run, parent or "", scope, name):
        raw = part.encode()
        h.update(struct.pack(">I", len(raw)) + raw)
    h.update(struct.pack(">i", task_type))
    h.update(b"\x00" if iteration is None else b"\x01" + struct.pack(">q", iteration))
    return h.hexdigest()


class TargetReader:
    """Plain SQL over the target and the ledger, fetched a chunk of runs at a time (`prefetch`)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.mysql = conn.dialect.name == "mysql"
        self._rows: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self._artifacts: dict[str, dict[str, Any]] = {}

    def q(self, name: str) -> str:
        return f"`{name}`" if self.mysql else f'"{name}"'

    def _where_in(self, sql: str, column: str, values: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for i in range(0, len(values), 500):
            chunk = values[i:i + 500]
            params = {f"v{j}": v for j, v in enumerate(chunk)}
            out += [dict(r) for r in self.conn.execute(
                text(f"{sql} WHERE {column} IN ({','.join(':' + k for k in params)})"), params).mappings()]
        return out

    def prefetch(self, run_ids: list[str]) -> None:
        """Load the target rows of these runs (and the artifacts their links use) in a few statements."""
        q = self.q
        self._rows = {r: ([], [], []) for r in run_ids}
        for t in self._where_in("SELECT * FROM tasks", q("RunUUID"), run_ids):
            self._rows[t["RunUUID"]][0].append(t)
        for lk in self._where_in("SELECT * FROM artifact_tasks", q("RunUUID"), run_ids):
            self._rows[lk["RunUUID"]][1].append(lk)
        for e in self._where_in("SELECT * FROM mlmd2kfp_ledger", "run_uuid", run_ids):
            self._rows[e["run_uuid"]][2].append(e)
        ids = sorted({lk["ArtifactID"] for rows in self._rows.values() for lk in rows[1]})
        self._artifacts = {a["UUID"]: a for a in self._where_in("SELECT * FROM artifacts", q("UUID"), ids)}

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
            out.update({a["UUID"]: a for a in self._where_in("SELECT * FROM artifacts", self.q("UUID"), missing)})
        return out


def compare_run(report: ParityReport, src: SourceRun, exp: ExpectedRun, target: TargetReader,
                event_ids: dict[tuple[int, int, int], int], run_namespace: str | None,
                counts: dict[str, Counter[Any]]) -> None:
    """All per-run checks of one run."""
    run = src.run_id
    tasks, links, ledger = target.run_rows(run)
    ledgered = {(e["entity"], int(e["mlmd_id"])): e["reason"] for e in ledger}
    coverage, lineage = report.check("coverage", CHECKS["coverage"]), report.check("lineage", CHECKS["lineage"])
    report.runs_checked += 1

    def need_ledger(entity: str, mlmd_id: int, reason: str | None, what: str) -> None:
        coverage.checked += 1
        got = ledgered.get((entity, mlmd_id))
        if got is None or (reason is not None and got != reason):
            report.fail(Finding("coverage", run, f"{entity} {mlmd_id} ({what})", "ledger", reason or "an entry", got))

    if exp.skip:
        need_ledger("run", src.context_id, exp.skip, "skipped run")
        for e in src.executions:
            need_ledger("execution", e.id, exp.skip, "execution of a skipped run")
        for event_id in event_ids.values():
            need_ledger("event", event_id, exp.skip, "event of a skipped run")
        for t in tasks + links:
            report.fail(Finding("coverage", run, f"row {t['UUID']}", "extra row", "none (run skipped)", "present"))
        return

    by_id = {t["UUID"]: t for t in tasks}
    # --- coverage: executions, tasks -----------------------------------------------------------
    for e in src.executions:
        coverage.checked += 1
        if e.id in exp.unattached:
            need_ledger("execution", e.id, "unsupported-type", "unsupported type")
        elif e.id in exp.flattened:
            need_ledger("execution", e.id, "flattened-iteration", "iteration DAG")
        elif e.id not in exp.by_execution:
            need_ledger("execution", e.id, None, "detached execution")
        else:
            if exp.by_execution[e.id] not in by_id:
                report.fail(Finding("coverage", run, f"execution {e.id}", "task row",
                                    exp.by_execution[e.id], "missing"))
            if e.id in exp.superseded:
                need_ledger("execution", e.id, "superseded-attempt", "earlier attempt")
    for tid, t in by_id.items():
        if tid not in exp.tasks and str(tid)[14:15] == "5":
            report.fail(Finding("coverage", run, f"task {tid} ({t.get('ScopePath')})", "extra row",
                                "no MLMD origin", "present"))
    # --- coverage: events → links ---------------------------------------------------------------
    link_index: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for lk in links:
        link_index.setdefault((lk["TaskID"], lk["ArtifactID"], lk["ArtifactKey"]), []).append(lk)
    expected_event_keys = set()
    for (artifact_id, execution_id, event_type), keys in exp.event_links:
        coverage.checked += 1
        expected_event_keys.add((artifact_id, execution_id, event_type))
        if keys and not any(k in link_index for k in keys):
            event_id = event_ids.get((artifact_id, execution_id, event_type))
            if event_id is None or (("event", event_id) not in ledgered):
                report.fail(Finding("coverage", run, f"event {event_id} (artifact {artifact_id}, execution "
                                    f"{execution_id})", "link row", keys[0][1], "missing"))
    for triple, event_id in event_ids.items():
        if triple not in expected_event_keys:
            need_ledger("event", event_id, None, "event that becomes no link")
    # --- lineage: tasks field by field (after a digest comparison) ------------------------------
    expected_proj = sorted((t.id, t.parent, t.name, t.scope, t.type, t.state, t.fingerprint, t.iteration,
                            _canon(t.outputs), _canon(t.inputs))
                           for t in exp.tasks.values())
    found_proj = sorted((t["UUID"], t["ParentTaskUUID"], t["Name"], t["ScopePath"], t["Type"],
                         t["State"] if t["Type"] in (2, 7) else None, t["Fingerprint"] if t["Type"] == 2 else "",
                         _iteration(t), _canon(_outputs(t)), _canon(_inputs(t)))
                        for t in tasks if t["UUID"] in exp.tasks)
    lineage.checked += 1
    fields = ("id", "ParentTaskUUID", "Name", "ScopePath", "Type", "State", "Fingerprint", "iterationIndex",
              "OutputParameters", "InputParameters")
    if _digest(expected_proj) != _digest(found_proj):
        found_by_id = {row[0]: row for row in found_proj}
        for row in expected_proj:
            got = found_by_id.get(row[0])
            if got is None:
                continue  # reported by coverage
            for i, name in enumerate(fields[1:], start=1):
                if row[i] != got[i]:
                    report.fail(Finding("lineage", run, f"task {row[0]} ({row[3]})", name, row[i], got[i]))
    # --- lineage: links ----------------------------------------------------------------------------
    outputs_by_artifact = {lk["ArtifactID"] for lk in links if lk["Type"] in (8, 9) and by_id.get(lk["TaskID"], {}).get("Type") in (2, 7)}
    for key, allowed in exp.links.items():
        lineage.checked += 1
        for lk in link_index.get(key, []):
            if lk["Type"] not in allowed:
                report.fail(Finding("lineage", run, f"link {lk['UUID']} ({key[2]})", "Type", sorted(allowed), lk["Type"]))
            if int(lk["Iteration"]) != exp.link_iteration[key]:
                report.fail(Finding("lineage", run, f"link {lk['UUID']} ({key[2]})", "Iteration",
                                    exp.link_iteration[key], lk["Iteration"]))
            producer = js(lk["Producer"]) or {}
            if lk["Type"] in (8, 9) and producer.get("taskName") != by_id.get(lk["TaskID"], {}).get("Name"):
                report.fail(Finding("lineage", run, f"link {lk['UUID']} ({key[2]})", "Producer.taskName",
                                    by_id.get(lk["TaskID"], {}).get("Name"), producer.get("taskName")))
    for key, group in link_index.items():
        if key in exp.links:
            continue
        for lk in group:
            task = by_id.get(lk["TaskID"], {})
            derived = task.get("Type") in DAG_LIKE and lk["Type"] in (8, 9, 10) and lk["ArtifactID"] in outputs_by_artifact
            if not derived:
                report.fail(Finding("coverage", run, f"link {lk['UUID']} ({lk['ArtifactKey']})", "extra row",
                                    "no MLMD event or propagated output", f"type {lk['Type']}"))
    # --- lineage: artifacts ------------------------------------------------------------------------
    linked_ids = {lk["ArtifactID"] for lk in links}
    rows = target.artifacts(set(exp.artifacts) | linked_ids)
    for aid, want in exp.artifacts.items():
        lineage.checked += 1
        got = rows.get(aid)
        if got is None:
            report.fail(Finding("coverage", run, f"artifact row {aid} (MLMD {want['mlmd_id']})", "artifact row",
                                "present", "missing"))
            continue
        for name, have in (("Type", got["Type"]), ("URI", got["URI"])):
            if have != want[name.lower() if name != "URI" else "uri"]:
                report.fail(Finding("lineage", run, f"artifact {aid} (MLMD {want['mlmd_id']})", name,
                                    want[name.lower() if name != "URI" else "uri"], have))
        if want["type"] == 6:
            if got["Name"] != want["name"]:
                report.fail(Finding("lineage", run, f"artifact {aid}", "Name", want["name"], got["Name"]))
            if got["NumberValue"] is None or abs(float(got["NumberValue"]) - want["number"]) > 1e-9:
                report.fail(Finding("lineage", run, f"artifact {aid} (metric {want['name']})", "NumberValue",
                                    want["number"], got["NumberValue"]))
    # --- invariants within the run -------------------------------------------------------------------
    inv = report.check("invariants", CHECKS["invariants"])
    roots = [t for t in tasks if t["ParentTaskUUID"] is None]
    inv.checked += 1
    if len(roots) != 1 or roots[0]["Type"] != 1 or roots[0]["Name"] != "ROOT":
        report.fail(Finding("invariants", run, "tasks", "one ROOT without parent", 1,
                            [(t["Name"], t["Type"]) for t in roots]))
    for t in tasks:
        inv.checked += 1
        key = logical_key(run, t["ParentTaskUUID"], t["ScopePath"] or "", t["Name"] or "", t["Type"], _iteration(t))
        if t["LogicalKey"] != key:
            report.fail(Finding("invariants", run, f"task {t['UUID']}", "LogicalKey", key, t["LogicalKey"]))
        if t["ParentTaskUUID"] and t["ParentTaskUUID"] not in by_id:
            report.fail(Finding("invariants", run, f"task {t['UUID']}", "ParentTaskUUID", "a task of the run",
                                t["ParentTaskUUID"]))
        for col, shape in (("pods", list), ("StateHistory", list), ("InputParameters", list),
                           ("OutputParameters", list), ("StatusMetadata", dict), ("TypeAttrs", dict)):
            value = js(t[col])
            if value is not None and not isinstance(value, shape):
                report.fail(Finding("invariants", run, f"task {t['UUID']}", col, shape.__name__, type(value).__name__))
        if run_namespace is not None and t["Namespace"] != run_namespace:
            report.fail(Finding("invariants", run, f"task {t['UUID']}", "Namespace", run_namespace, t["Namespace"]))
    for lk in links:
        inv.checked += 1
        art = rows.get(lk["ArtifactID"])
        task = by_id.get(lk["TaskID"])
        if not 1 <= int(lk["Type"]) <= 11:
            report.fail(Finding("invariants", run, f"link {lk['UUID']}", "Type", "1..11", lk["Type"]))
        if task is None or art is None:
            report.fail(Finding("invariants", run, f"link {lk['UUID']}", "foreign keys", "task and artifact exist",
                                f"task {task is not None}, artifact {art is not None}"))
        elif art["Namespace"] != task["Namespace"]:
            report.fail(Finding("invariants", run, f"link {lk['UUID']} → artifact {art['UUID']}", "Namespace",
                                task["Namespace"], art["Namespace"]))
        producer = js(lk["Producer"]) or {}
        if int(lk["Iteration"]) != int(producer.get("iteration", -1)):
            report.fail(Finding("invariants", run, f"link {lk['UUID']}", "Iteration = Producer.iteration",
                                producer.get("iteration", -1), lk["Iteration"]))
    # --- counts (aggregated) -------------------------------------------------------------------------
    ns = exp.namespace or ""
    counts["expected"].update({("tasks", ns): len(exp.tasks), ("links-from-events", ns): len(exp.links)})
    counts["found"].update({("tasks", ns): sum(1 for t in tasks if t["UUID"] in exp.tasks or t["UUID"][14:15] == "5"),
                            ("links-from-events", ns): sum(1 for k in exp.links if k in link_index)})
    for t in exp.tasks.values():
        counts["expected"][("type/state", t.type, t.state)] += 1
    for t in tasks:
        counts["found"][("type/state", t["Type"], t["State"] if t["Type"] in (2, 7) else None)] += 1


def _norm(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def _canon(value: Any) -> str:
    """Parameter values compared as JSON with integral numbers as integers (MLMD structs hold doubles)."""
    return json.dumps(_norm(value), sort_keys=True)


def _digest(rows: list[Any]) -> str:
    return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()


def _iteration(t: dict[str, Any]) -> int | None:
    attrs = js(t["TypeAttrs"]) or {}
    value = attrs.get("iterationIndex") if isinstance(attrs, dict) else None
    return None if value is None else int(value)


def _outputs(t: dict[str, Any]) -> dict[str, Any] | None:
    if t["Type"] != 2 or t["State"] not in (2, 5):
        return None
    entries = js(t["OutputParameters"]) or []
    return {e["parameterKey"]: e.get("value") for e in entries
            if (e.get("producer") or {}).get("taskName") == t["Name"]}


def _inputs(t: dict[str, Any]) -> dict[str, Any]:
    entries = js(t["InputParameters"]) or []
    return {e["parameterKey"]: e.get("value") for e in entries
            if e.get("type") not in ("COMPONENT_DEFAULT_INPUT", "ITERATOR_INPUT")}
