"""The pre-upgrade KFP API-server rows that go with the sample's MLMD runs.

`experiments`, `pipelines`, `pipeline_versions`, `run_details` (with `PipelineSpecManifest`)
and the old-form `tasks` table with both of its populations (kfp-native-schema.md §1.4, §5.2):
launcher cache rows and persistence-agent workflow-node rows.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from ..dialects import dialect_for
from ..target import legacy
from ..target.legacy import LEGACY_TABLES
from ..target.schema import Table
from ..target.schema import render_create
from .mlmd_client import CACHED, CANCELED, COMPLETE, FAILED
from .runtime import RunResult, node_failed


@dataclass
class RunRecord:
    """One run of the sample as the KFP database sees it."""

    scenario: str
    run_id: str
    namespace: str
    """KFP namespace ('' in single-user mode)."""
    pod_namespace: str
    pipeline: str
    workflow_name: str
    state: str
    created_s: int
    finished_s: int
    result: RunResult | None
    params: dict[str, Any] = field(default_factory=dict)
    """Runtime parameters the run was submitted with."""
    spec_in_version_only: bool = False
    orphan: bool = False


_CONDITIONS = {"SUCCEEDED": "Succeeded", "FAILED": "Failed", "RUNNING": "Running"}
_PHASE = {COMPLETE: "SUCCEEDED", CACHED: "SUCCEEDED", FAILED: "FAILED", CANCELED: "SKIPPED"}
_UNFINISHED = -62135596800
"""What the persistence agent stores as FinishedTimestamp for a node that has not finished (Go's zero time)."""


def _node_phase(node: Any, run_state: str) -> str:
    if node.kind == "dag":  # MLMD DAG states are hints; Argo's DAG node follows the run
        return "RUNNING" if run_state == "RUNNING" else ("FAILED" if node_failed(node) else "SUCCEEDED")
    return _PHASE.get(node.state, "RUNNING")


def normalise_spec(text_: str) -> str:
    """The spec as the API server stores it: protojson → YAML with sorted keys, platform spec after `---`."""
    import yaml

    docs = [d for d in yaml.safe_load_all(text_) if d is not None]
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=True, default_flow_style=False) for d in docs)


def create_legacy_tables(conn: Connection) -> None:
    """Create KFP's pre-upgrade tables that are missing."""
    d = dialect_for(conn)
    existing = set(inspect(conn).get_table_names())
    for table in LEGACY_TABLES:
        if table.name not in existing:
            for stmt in render_create(table, d):
                conn.exec_driver_sql(stmt)


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    d = dialect_for(conn)
    cols = [c.name for c in table.columns]
    sql = (f"INSERT INTO {d.q(table.name)} ({', '.join(d.q(c) for c in cols)}) "
           f"VALUES ({', '.join(':' + c for c in cols)})")
    conn.execute(text(sql), [{c: row.get(c) for c in cols} for row in rows])


def write_kfp_rows(conn: Connection, records: list[RunRecord], specs: dict[str, str], rng: random.Random,
                   namespaces: list[str], base_s: int, no_spec: bool = False) -> dict[str, int]:
    """Insert the KFP rows for `records`; returns row counts per table (`no_spec`: runs keep no spec and no
    pipeline version)."""

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    experiments = _write_experiments(conn, records, namespaces, base_s, uid)
    pipelines = _write_pipelines(conn, specs, base_s, uid)
    runs, tasks = [], []
    for r in records:
        if r.orphan:
            continue
        runs.append(_run_details_row(r, experiments, pipelines, specs, no_spec))
        tasks.extend(_old_task_rows(r, uid))
    _insert(conn, legacy.RUN_DETAILS, runs)
    _insert(conn, legacy.OLD_TASKS, tasks)
    return {"experiments": len(experiments), "pipelines": len(pipelines), "pipeline_versions": len(pipelines),
            "run_details": len(runs), "tasks": len(tasks)}


def _write_experiments(conn: Connection, records: list[RunRecord], namespaces: list[str], base_s: int,
                       uid: Callable[[], str]) -> dict[str, str]:
    """Insert each namespace's `Default` experiment; returns experiment UUIDs by namespace."""
    experiments = {ns: uid() for ns in namespaces}
    last_run = {ns: max((r.created_s for r in records if r.namespace == ns and not r.orphan), default=0)
                for ns in namespaces}
    _insert(conn, legacy.EXPERIMENTS, [
        {"UUID": e, "Name": "Default", "Description": "All runs created without specifying an experiment will be "
         "grouped here.", "CreatedAtInSec": base_s - 86400, "LastRunCreatedAtInSec": last_run[ns], "Namespace": ns,
         "StorageState": "AVAILABLE"} for ns, e in experiments.items()])
    return experiments


def _write_pipelines(conn: Connection, specs: dict[str, str], base_s: int,
                     uid: Callable[[], str]) -> dict[str, tuple[str, str]]:
    """Insert one pipeline with one version per spec; returns (pipeline UUID, version UUID) by name."""
    pipelines = {name: (uid(), uid()) for name in specs}
    _insert(conn, legacy.PIPELINES, [
        {"UUID": p, "CreatedAtInSec": base_s - 3600, "Name": name, "DisplayName": name, "Description": "",
         "Parameters": "", "Status": "READY", "DefaultVersionId": "", "Namespace": ""}
        for name, (p, v) in pipelines.items()])
    _insert(conn, legacy.PIPELINE_VERSIONS, [
        {"UUID": v, "CreatedAtInSec": base_s - 3600, "Name": f"{name}-v1", "DisplayName": f"{name}-v1",
         "Parameters": "[]", "PipelineId": p, "Status": "READY", "CodeSourceUrl": "", "Description": "",
         "PipelineSpec": specs[name], "PipelineSpecURI": ""}
        for name, (p, v) in pipelines.items()])
    return pipelines


def _run_details_row(r: RunRecord, experiments: dict[str, str], pipelines: dict[str, tuple[str, str]],
                     specs: dict[str, str], no_spec: bool) -> dict[str, Any]:
    """The `run_details` row of run `r`, with its state history and Argo workflow manifests."""
    v1 = r.result is None
    history = [{"UpdateTimeInSec": r.created_s, "State": "PENDING"},
               {"UpdateTimeInSec": r.created_s + 2, "State": "RUNNING"}]
    if r.state != "RUNNING":
        history.append({"UpdateTimeInSec": r.finished_s, "State": r.state})
    pid, vid = ("", None) if no_spec else pipelines.get(r.pipeline, ("", None))
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                "metadata": {"name": r.workflow_name, "namespace": r.pod_namespace,
                             "labels": {"pipeline/runid": r.run_id}}}
    return {
        "UUID": r.run_id, "DisplayName": f"{r.scenario} run {r.run_id[:8]}", "Name": r.workflow_name,
        "Description": "", "Namespace": r.namespace, "ExperimentUUID": experiments[r.namespace],
        "JobUUID": None, "StorageState": "AVAILABLE", "ServiceAccount": "pipeline-runner",
        "PipelineId": pid, "PipelineVersionId": vid, "PipelineName": f"{r.pipeline}-v1" if vid else "",
        # A run created from a pipeline version carries a copy of the version's spec, unless
        # (scenario spec-in-pipeline-version) only the version reference was kept.
        "PipelineSpecManifest": None if (v1 or r.spec_in_version_only or no_spec) else specs[r.pipeline],
        "WorkflowSpecManifest": json.dumps(workflow, separators=(",", ":")) if v1 else "",
        "Parameters": "", "RuntimeParameters": json.dumps(r.params, separators=(",", ":"), sort_keys=True),
        "PipelineRoot": "", "CreatedAtInSec": r.created_s, "ScheduledAtInSec": r.created_s,
        "FinishedAtInSec": 0 if r.state == "RUNNING" else r.finished_s,
        "Conditions": _CONDITIONS[r.state], "State": r.state,
        "StateHistory": json.dumps(history, separators=(",", ":")),
        "PipelineRuntimeManifest": "" if v1 else json.dumps(workflow, separators=(",", ":")),
        "WorkflowRuntimeManifest": json.dumps(workflow, separators=(",", ":")),
        "PipelineContextId": 0, "PipelineRunContextId": 0,
    }


def _old_task_rows(r: RunRecord, uid: Any) -> list[dict[str, Any]]:
    """Old `tasks` rows: launcher cache rows (A) and one row per Argo node (B)."""
    rows: list[dict[str, Any]] = []
    if r.result is None:
        return rows
    for node, fingerprint in r.result.cache_rows:  # population A
        row = {"UUID": uid(), "Namespace": r.pod_namespace, "PipelineName": f"pipeline/{r.pipeline}",
               "RunUUID": r.run_id, "PodName": "", "MLMDExecutionID": str(node.exec_id),
               "CreatedTimestamp": node.created_ms // 1000, "StartedTimestamp": node.created_ms // 1000,
               "FinishedTimestamp": node.finished_ms // 1000, "Fingerprint": fingerprint, "Name": "",
               "ParentTaskUUID": "", "State": "RUNTIME_STATE_UNSPECIFIED", "StateHistory": "null",
               "MLMDInputs": "", "MLMDOutputs": "", "ChildrenPods": "null"}
        row["Payload"] = json.dumps(row, separators=(",", ":"))
        rows.append(row)
    for node in r.result.executions:  # population B: one row per Argo node (persistence agent)
        for argo in node.argo_nodes:
            phase = argo.phase or _node_phase(node, r.state)
            started = node.created_ms // 1000
            finished = _UNFINISHED if phase == "RUNNING" else (node.finished_ms // 1000 or r.finished_s)
            history = [{"UpdateTimeInSec": started, "State": "RUNNING"}]
            if phase != "RUNNING":
                history.append({"UpdateTimeInSec": finished, "State": phase})
            pod = r.workflow_name if argo.display == r.workflow_name else \
                f"{r.workflow_name}-{argo.template}-{argo.hash}"
            row = {"UUID": uid(), "Namespace": r.pod_namespace, "PipelineName": "", "RunUUID": r.run_id,
                   "PodName": pod, "MLMDExecutionID": "", "CreatedTimestamp": r.created_s,
                   "StartedTimestamp": started, "FinishedTimestamp": finished, "Fingerprint": "",
                   "Name": argo.display, "ParentTaskUUID": "", "State": phase,
                   "StateHistory": json.dumps(history, separators=(",", ":")),
                   "MLMDInputs": "", "MLMDOutputs": "", "ChildrenPods": ""}
            row["Payload"] = json.dumps(row, separators=(",", ":"))
            rows.append(row)
    return rows
