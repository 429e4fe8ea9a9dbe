"""Task columns: ids, ScopePath, states (the runtime's bottom-up rule), times, history, pods, TypeAttrs
(mapping.md §4)."""

from __future__ import annotations

from typing import Any

from ..records import (EXEC_CACHED, EXEC_CANCELED, EXEC_COMPLETE, EXEC_FAILED, MlmdExecution, RunRecord)
from . import keys
from .enums import (CACHED, DAG_LIKE, FAILED, IMPORTER, LOOP, ROOT, RUNNING, RUNTIME, SKIPPED, STATE_NAMES,
                    SUCCEEDED)
from .protojson import rfc3339
from .tree import TaskNode

FAILED_MESSAGE = "failed (migrated from ML Metadata; no error text recorded)"
FINISHED_RUN_STATES = frozenset({"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"})
_V1_TO_V2 = {"PENDING": "PENDING", "RUNNING": "RUNNING", "SUCCEEDED": "SUCCEEDED", "SKIPPED": "SKIPPED",
             "FAILED": "FAILED", "ERROR": "FAILED", "TERMINATING": "CANCELING", "CANCELING": "CANCELING",
             "CANCELED": "CANCELED", "CANCELLED": "CANCELED", "PAUSED": "PAUSED", "OMITTED": "SKIPPED"}


def run_state(run: RunRecord | None) -> str | None:
    """`run_details.State` normalised like `RuntimeState.ToV2()`, else from `Conditions`."""
    if run is None:
        return None
    for raw in (run.state, run.conditions):
        if raw:
            name = str(raw).strip().upper()
            if name in _V1_TO_V2:
                return _V1_TO_V2[name]
    return None


def assign_ids(root: TaskNode, run_id: str, source_name: str, context_id: int) -> None:
    """UUIDs (at the run's context id) and ScopePaths, top-down (a child's id includes its parent's)."""
    for task in root.walk():
        parent = task.parent
        task.uuid = keys.task_id(parent.uuid if parent else None, run_id, task.name, task.iteration, source_name,
                                 context_id)
        task.scope_path = "root" if parent is None else f"{parent.scope_path}.{task.name}"


def _leaf_state(execution: MlmdExecution) -> int:
    return {EXEC_COMPLETE: SUCCEEDED, EXEC_CACHED: CACHED, EXEC_FAILED: FAILED,
            EXEC_CANCELED: SKIPPED}.get(execution.state or 0, RUNNING)


def iteration_count(task: TaskNode) -> int | None:
    """A loop task's `iteration_count` (from its effective attempt)."""
    count = task.effective.props.get("iteration_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def expected_children(task: TaskNode) -> int:
    """How many children the runtime waits for: `len(dag.tasks)`, × iterationCount for a LOOP (a nested
    loop, typed DAG, waits for `len(dag.tasks)` only (v3))."""
    if task.component is None:
        return len(task.children)
    n = len(((task.component.get("dag") or {}).get("tasks")) or {})
    if task.type == LOOP:
        return (iteration_count(task) or 0) * n
    return n


def _bottom_up(root: TaskNode, leaves: bool) -> None:
    for task in reversed(root.walk()):
        if task.type not in DAG_LIKE:
            if leaves:
                task.state = _leaf_state(task.effective)
            continue
        children = task.children
        states = [c.state for c in children]
        if not children and (task.effective.state == EXEC_CANCELED
                             or (task.loop and iteration_count(task) == 0)):
            task.state = SKIPPED
        elif not children and task.component is not None and not (task.component.get("dag") or {}).get("tasks"):
            task.state = SUCCEEDED
        elif FAILED in states:  # (v3) a FAILED child fails the parent at once, whatever its siblings do
            task.state = FAILED
        elif RUNNING in states:
            task.state = RUNNING
        elif len(children) < expected_children(task) or not children:
            task.state = RUNNING
        elif all(s == CACHED for s in states):
            task.state = CACHED
        elif all(s == SKIPPED for s in states):
            task.state = SKIPPED
        else:
            task.state = SUCCEEDED


def _never_finished(task: TaskNode, state: str) -> None:
    # (departure) the runtime leaves these RUNNING forever; see docs/mapping.md M3.
    task.state = FAILED
    task.never_finished = True
    task.message = f"never finished (run {state})"


def compute_states(root: TaskNode, run: RunRecord | None) -> None:
    """States bottom-up (`pr:v2/apiclient/kfpapi/api.go:214-433`); in a finished run RUNNING tasks become FAILED.

    The override hits containers and importers first, then the DAG-like states are derived again
    (as the runtime's propagation would on those updates); DAG-likes still RUNNING (fewer children
    than expected) are overridden too, ROOT included (its state is never copied from the run state,
    but it takes this rule like every other task: mapping.md §4 `State`).
    """
    _bottom_up(root, leaves=True)
    state = run_state(run)
    if state in FINISHED_RUN_STATES:
        for task in root.walk():
            if task.type not in DAG_LIKE and task.state == RUNNING:
                _never_finished(task, state)
        _bottom_up(root, leaves=False)
        for task in root.walk():
            if task.type in DAG_LIKE and task.state == RUNNING:
                _never_finished(task, state)
    for task in root.walk():
        if task.state == FAILED and task.type in (RUNTIME, IMPORTER) and not task.never_finished:
            task.message = FAILED_MESSAGE


def compute_finished(root: TaskNode, run: RunRecord | None) -> None:
    """FinishedInSec: 0 while RUNNING; leaves their last update; DAG-likes the latest child."""
    for task in reversed(root.walk()):
        if task.state == RUNNING:
            task.finished = 0
        elif task.never_finished:
            task.finished = run.finished_at if run and run.finished_at else task.effective.update_ms // 1000
        elif task.type not in DAG_LIKE:
            task.finished = task.effective.update_ms // 1000
        else:
            task.finished = max((c.finished for c in task.children), default=task.created) or task.created


def _history_of(state: int, created: int, finished: int, childless_dag: bool) -> list[dict[str, Any]]:
    if state in (CACHED, SKIPPED) or childless_dag:
        return [{"state": STATE_NAMES[state], "updateTime": rfc3339(created)}]
    if state == RUNNING:
        return [{"state": "RUNNING", "updateTime": rfc3339(created)}]
    return [{"state": "RUNNING", "updateTime": rfc3339(created)},
            {"state": STATE_NAMES[state], "updateTime": rfc3339(finished)}]


def state_history(task: TaskNode) -> list[dict[str, Any]]:
    """StateHistory; merged attempts concatenate theirs, merging consecutive equal states."""
    childless_dag = task.type in DAG_LIKE and not task.children
    if task.type in DAG_LIKE or len(task.attempts) == 1:
        return _history_of(task.state, task.created, task.finished, childless_dag)
    entries: list[dict[str, Any]] = []
    for attempt in task.attempts:
        last = attempt is task.effective
        state = task.state if last else _leaf_state(attempt)
        finished = task.finished if last else attempt.update_ms // 1000
        for entry in _history_of(state, attempt.create_ms // 1000, finished, False):
            if not entries or entries[-1]["state"] != entry["state"]:
                entries.append(entry)
    return entries


def plugin_properties(task: TaskNode) -> dict[str, str]:
    """`customProperties` as the task plugins write them (docs/mapping.md M27): the MLMD `plugins.*` string
    properties of containers and of DAG-likes outside loop bodies; a DAG-like inside one copies its parent's;
    ROOT and importers have none."""
    if task.type in (ROOT, IMPORTER):
        return {}
    if task.type in DAG_LIKE and task.iteration is not None and task.parent is not None:
        return plugin_properties(task.parent)
    return {k: v for k, v in task.effective.props.items() if k.startswith("plugins.") and isinstance(v, str)}


def status_metadata(task: TaskNode) -> dict[str, Any] | None:
    """StatusMetadata: plugin properties, failure messages; `{}` for a cache hit; else null."""
    custom = plugin_properties(task)
    out: dict[str, Any] = {}
    if custom:
        out["customProperties"] = custom
    if task.message:
        out["message"] = task.message
    if not out and not (task.type == RUNTIME and task.state == CACHED):
        return None
    return out


def pods(task: TaskNode, platform_op: bool) -> list[dict[str, Any]]:
    """`pods`: the executor pod MLMD recorded (the driver's for Kubernetes platform ops)."""
    if task.type != RUNTIME:
        return []
    name = task.effective.props.get("pod_name")
    if not isinstance(name, str) or not name:
        return []
    pod: dict[str, Any] = {"name": name, "type": "DRIVER" if platform_op else "EXECUTOR"}
    uid = task.effective.props.get("pod_uid")
    if isinstance(uid, str) and uid:
        pod["uid"] = uid
    return [pod]


def type_attrs(task: TaskNode) -> dict[str, Any] | None:
    """TypeAttrs (int64 fields as strings, optional zeros kept)."""
    attrs: dict[str, Any] = {}
    if task.type == ROOT:
        return {}
    if task.loop:  # a LOOP, or a nested loop (DAG) that also has its iterationIndex (v3)
        attrs["iterationCount"] = str(iteration_count(task))
    if task.type == IMPORTER:
        attrs["downloadToWorkspace"] = task.effective.type_name == "system.ImporterWorkspaceExecution"
    if task.iteration is not None:
        attrs["iterationIndex"] = str(task.iteration)
    return attrs or None
