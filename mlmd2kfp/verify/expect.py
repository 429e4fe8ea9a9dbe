"""What the target must hold for one run, re-derived from the documented rules (mapping.md §2, §4-§6).

Deliberately independent of `mappers/`: only the id-naming scheme of mapping.md §2 and the rules
below are re-implemented here, in the simplest form that pins down each row's identity and the
fields `verify` compares. A bug in the mappers therefore shows up as a difference, not as an echo.
"""

from __future__ import annotations

import math

import uuid
from dataclasses import dataclass, field
from typing import Any

from .source import SourceArtifact, SourceExecution, SourceRun

# mapping.md §2: the project's fixed UUIDv5 namespace (the same constant the migrator uses).
ID_NAMESPACE = uuid.UUID("6c2f3a0e-5b7d-5e4a-9a51-6d6c6d64326b")
ARTIFACT_TYPE = {"system.Artifact": 1, "system.Model": 2, "system.Dataset": 3, "system.HTML": 4,
                 "system.Markdown": 5, "system.Metrics": 6, "system.ClassificationMetrics": 7,
                 "system.SlicedClassificationMetrics": 8}
KFP_TYPES = {"system.DAGExecution", "system.ContainerExecution", "system.ImporterExecution",
             "system.ImporterWorkspaceExecution"}
IMPORTERS = {"system.ImporterExecution", "system.ImporterWorkspaceExecution"}
LEAF_STATE = {3: 2, 5: 5, 4: 4, 6: 3}  # MLMD COMPLETE/CACHED/FAILED/CANCELED → SUCCEEDED/CACHED/FAILED/SKIPPED
FINISHED = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED", "ERROR"}


def uid(name: str, source_name: str = "") -> str:
    return str(uuid.uuid5(ID_NAMESPACE, f"{source_name}|{name}" if source_name else name))


@dataclass
class ExpectedTask:
    id: str
    name: str
    parent: str | None
    scope: str
    type: int
    iteration: int | None
    executions: list[int]
    state: int | None = None
    """Leaf states only (RUNTIME, IMPORTER); DAG-like states are checked as invariants."""
    fingerprint: str = ""
    outputs: dict[str, Any] | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExpectedRun:
    run_id: str
    namespace: str | None
    skip: str | None = None
    tasks: dict[str, ExpectedTask] = field(default_factory=dict)
    by_execution: dict[int, str] = field(default_factory=dict)
    flattened: set[int] = field(default_factory=set)
    superseded: set[int] = field(default_factory=set)
    links: dict[tuple[str, str, str], set[int]] = field(default_factory=dict)
    """(task id, artifact row id, key) → allowed IO types (from one event)."""
    link_iteration: dict[tuple[str, str, str], int] = field(default_factory=dict)
    event_links: list[tuple[tuple[int, int, int], list[tuple[str, str, str]]]] = field(default_factory=list)
    """Per source event (artifact id, execution id, type): the link keys any one of which represents it."""
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Artifact row id → expected fields (mlmd_id, type, uri, number)."""
    unattached: set[int] = field(default_factory=set)


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _spec_tasks(component: dict[str, Any] | None) -> dict[str, Any]:
    return ((component or {}).get("dag") or {}).get("tasks") or {}


def expect_run(src: SourceRun, run: dict[str, Any] | None, spec: dict[str, Any] | None, multi_user: bool,
               source_name: str = "") -> ExpectedRun:
    """Derive the expected rows of one run."""
    if run is None:
        return ExpectedRun(src.run_id, None, skip="orphan-run")
    ns = ""
    if multi_user:
        ns = run.get("experiment_namespace") or ""
        if not ns or ns != run.get("namespace"):
            return ExpectedRun(src.run_id, None, skip="namespace-mismatch")
        if len(ns) > 63:  # the target's Namespace column
            return ExpectedRun(src.run_id, None, skip="identifier-too-long")
    out = ExpectedRun(src.run_id, ns)
    execs = {e.id: e for e in src.executions if e.type in KFP_TYPES}
    out.unattached = {e.id for e in src.executions if e.type not in KFP_TYPES}
    roots = [e for e in execs.values() if e.type == "system.DAGExecution" and "parent_dag_id" not in e.props]
    if not roots:
        return ExpectedRun(src.run_id, None, skip="no-root-dag")
    children: dict[int, list[SourceExecution]] = {}
    for e in execs.values():
        p = e.props.get("parent_dag_id")
        if isinstance(p, int):
            children.setdefault(p, []).append(e)
    components = (spec or {}).get("components") or {}
    root_id = uid(f"task:{src.run_id}:ROOT:-", source_name)
    root = ExpectedTask(root_id, "ROOT", None, "root", 1, None, sorted(r.id for r in roots))
    out.tasks[root_id] = root
    for r in roots:
        out.by_execution[r.id] = root_id
    root.inputs = {k: v for k, v in (max(roots, key=lambda e: e.id).props.get("inputs") or {}).items() if v is not None}

    def visit(parent_execs: list[SourceExecution], parent: ExpectedTask, component: dict[str, Any] | None,
              iteration: int | None) -> None:
        for e in sorted((c for pe in parent_execs for c in children.get(pe.id, [])), key=lambda x: x.id):
            if e.id in out.by_execution or e.id in out.flattened:
                continue
            if (parent.type == 5 and e.type == "system.DAGExecution" and isinstance(e.props.get("iteration_index"), int)):
                out.flattened.add(e.id)  # a loop iteration: no task; its children belong to the LOOP
                visit([e], parent, component, e.props["iteration_index"])
                continue
            name = str(e.props.get("task_name") or "")
            tasks = _spec_tasks(component)
            if not name:
                raise _Skip("unresolved-task-key")
            if tasks and (e.type in IMPORTERS or name not in tasks):
                # the key, or a unique `taskInfo.name` (importers, KFP <= 2.5); else the run cannot be placed
                keys = [k for k, t in tasks.items() if ((t or {}).get("taskInfo") or {}).get("name") == name]
                if len(keys) == 1:
                    name = keys[0]
                elif name not in tasks:
                    raise _Skip("unresolved-task-key")
            task_spec = tasks.get(name) if tasks else None
            child_component = components.get(((task_spec or {}).get("componentRef") or {}).get("name", ""))
            tid = uid(f"task:{parent.id}:{name}:{'-' if iteration is None else iteration}", source_name)
            if tid in out.tasks:  # another attempt of the same task
                task = out.tasks[tid]
                task.executions.append(e.id)
            else:
                task = ExpectedTask(tid, name, parent.id, f"{parent.scope}.{name}", _type(e, name, task_spec, spec),
                                    iteration, [e.id])
                out.tasks[tid] = task
            out.by_execution[e.id] = tid
            visit([e], task, child_component, iteration)

    try:
        visit(roots, root, (spec or {}).get("root"), None)
    except _Skip as skip:
        return ExpectedRun(src.run_id, None, skip=skip.reason)
    finished = str(run.get("state") or run.get("conditions") or "").upper() in FINISHED
    for task in out.tasks.values():
        task.executions.sort()
        latest = execs[task.executions[-1]]
        out.superseded.update(task.executions[:-1])
        if task.type == 2:
            task.fingerprint = str(latest.props.get("cache_fingerprint") or "")
        if task.type in (2, 7):
            state = LEAF_STATE.get(latest.state or 0, 1)
            task.state = 4 if (state == 1 and finished) else state
            if task.type == 2 and task.state in (2, 5):
                task.outputs = dict(latest.props.get("outputs") or {})
        if task.type != 1:
            task.inputs = {k: v for k, v in (latest.props.get("inputs") or {}).items() if v is not None}
    _expect_links(src, out, execs, spec, components, source_name)
    return out


def _type(e: SourceExecution, name: str, task_spec: dict[str, Any] | None, spec: dict[str, Any] | None) -> int:
    if e.type == "system.ContainerExecution":
        return 2
    if e.type in IMPORTERS:
        return 7
    if spec is not None and task_spec is not None:
        if "parameterIterator" in task_spec or "artifactIterator" in task_spec:
            return 5
        if (task_spec.get("triggerPolicy") or {}).get("condition"):
            return 3
    elif spec is None and "iteration_count" in e.props:
        return 5
    if name.startswith("condition") and not name.startswith("condition-branch"):
        return 4
    return 8


def artifact_rows(a: SourceArtifact, ns: str, source_name: str = "") -> dict[str, dict[str, Any]]:
    """The artifact rows one MLMD artifact becomes in namespace `ns` (metrics: one per numeric key)."""
    kind = ARTIFACT_TYPE.get(a.type, 1)
    if kind == 6:
        return {uid(f"artifact:{a.id}:{ns}:metric:{k}", source_name): {"mlmd_id": a.id, "type": 6, "uri": None,
                                                                       "name": k, "number": float(v)}
                for k, v in a.props.items()
                if k not in ("display_name", "store_session_info") and isinstance(v, (int, float))
                and not isinstance(v, bool) and math.isfinite(v)}
    return {uid(f"artifact:{a.id}:{ns}", source_name): {
        "mlmd_id": a.id, "type": kind, "uri": None if kind in (6, 7, 8) else a.uri, "name": None, "number": None}}


def _expect_links(src: SourceRun, out: ExpectedRun, execs: dict[int, SourceExecution], spec: dict[str, Any] | None,
                  components: dict[str, Any], source_name: str) -> None:
    ns = out.namespace or ""
    for ev in src.events:
        tid = out.by_execution.get(ev.execution_id)
        artifact = src.artifacts.get(ev.artifact_id)
        if tid is None or artifact is None or not ev.key or ev.type not in (3, 4):
            continue
        task = out.tasks[tid]
        rows = artifact_rows(artifact, ns, source_name)
        out.artifacts.update(rows)
        if ev.type == 4:
            allowed = {8} if (task.state == 5 and task.iteration is not None) else {9}
        else:
            allowed = {2, 3, 5}
            parent = out.tasks.get(task.parent or "")
            binding = None
            if spec is not None and parent is not None:
                comp = spec.get("root") if parent.type == 1 else _component_of(parent, out, spec, components)
                task_spec = _spec_tasks(comp).get(task.name) or {}
                binding = ((task_spec.get("inputs") or {}).get("artifacts") or {}).get(ev.key)
            if isinstance(binding, dict) and "componentInputArtifact" in binding:
                allowed = {3}
            elif isinstance(binding, dict) and "taskOutputArtifact" in binding:
                allowed = {2, 5}
        iteration = task.iteration if task.iteration is not None else -1
        keys = []
        for row_id in rows:
            key = (tid, row_id, ev.key)
            out.links.setdefault(key, set()).update(allowed)
            out.link_iteration[key] = iteration
            keys.append(key)
        out.event_links.append(((ev.artifact_id, ev.execution_id, ev.type), keys))


def _component_of(task: ExpectedTask, out: ExpectedRun, spec: dict[str, Any],
                  components: dict[str, Any]) -> dict[str, Any] | None:
    path = task.scope.split(".")[1:]
    comp = spec.get("root")
    for name in path:
        ref = ((_spec_tasks(comp).get(name) or {}).get("componentRef") or {}).get("name", "")
        comp = components.get(ref)
    return comp
