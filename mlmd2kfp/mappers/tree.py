"""The task tree of one run: MLMD executions → runtime tasks (mapping.md §4).

Iteration DAGs are flattened away (their children hang under the loop task, carrying the nearest
iteration index), executions of one (parent, Name, iteration) are merged as attempts, and names
and types are assigned from the pipeline spec as the runtime does.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from ..records import LedgerEntry, MlmdEvent, MlmdExecution, RunBundle
from .enums import (CONDITION, CONDITION_BRANCH, CONTAINER_EXECUTION, DAG, DAG_EXECUTION, IMPORTER,
                    IMPORTER_EXECUTIONS, KFP_EXECUTION_TYPES, LOOP, ROOT, RUNTIME)


class SkipRun(Exception):
    """The whole run cannot be migrated; `reason` is its ledger reason."""

    def __init__(self, reason: str, detail: str, mlmd_id: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.mlmd_id = mlmd_id


@dataclass(eq=False)
class TaskNode:
    """One target task under construction."""

    name: str
    type: int
    attempts: list[MlmdExecution]
    parent: TaskNode | None
    iteration: int | None
    task_spec: dict[str, Any] | None
    component: dict[str, Any] | None
    children: list[TaskNode] = field(default_factory=list)
    loop: bool = False
    """A loop task (a ParallelFor): the LOOP, or a nested loop, which is typed DAG (mapping.md §4 `Type` (v3))."""
    iterations: dict[int, list[MlmdExecution]] = field(default_factory=dict)
    """Loop tasks only: the flattened iteration DAG executions by iteration index."""
    uuid: str = ""
    scope_path: str = ""
    state: int = 0
    finished: int = 0
    message: str | None = None
    never_finished: bool = False
    input_params: list[dict[str, Any]] = field(default_factory=list)
    output_params: list[dict[str, Any]] = field(default_factory=list)

    @property
    def effective(self) -> MlmdExecution:
        """The attempt with the highest MLMD id: it gives state, outputs, pods, fingerprint."""
        return self.attempts[-1]

    @property
    def created(self) -> int:
        """CreatedAtInSec: the first attempt's create time."""
        return self.attempts[0].create_ms // 1000

    def walk(self) -> list[TaskNode]:
        """This task and every descendant, parents first."""
        out = [self]
        for child in self.children:
            out.extend(child.walk())
        return out


@dataclass
class Tree:
    """The built tree plus what did not become a task."""

    root: TaskNode
    ledger: list[LedgerEntry]
    iteration_events: list[MlmdEvent]
    """Events of flattened iteration DAGs (dropped; the LOOP has the same ones)."""


def _components(spec: dict[str, Any] | None) -> dict[str, Any]:
    return (spec or {}).get("components", {}) or {}


def is_loop(execution: MlmdExecution, task_spec: dict[str, Any] | None, has_spec: bool) -> bool:
    """A ParallelFor's task: the spec's iterator, else (without a spec) an `iteration_count` property."""
    if execution.type_name != DAG_EXECUTION:
        return False
    if has_spec and task_spec is not None:
        return "parameterIterator" in task_spec or "artifactIterator" in task_spec
    return "iteration_count" in execution.props


def classify(execution: MlmdExecution, name: str, task_spec: dict[str, Any] | None, has_spec: bool,
             in_loop_body: bool = False) -> int:
    """The TaskType the runtime would assign (kfp-native-schema.md §2.3, mapping.md §4 `Type`).

    A loop inside a loop body (it carries an iteration index) is not LOOP: the PR-head driver types LOOP
    only without an iteration index, so a nested loop takes the rules after it, in practice DAG (v3).
    """
    if execution.type_name == CONTAINER_EXECUTION:
        return RUNTIME
    if execution.type_name in IMPORTER_EXECUTIONS:
        return IMPORTER
    if is_loop(execution, task_spec, has_spec) and not in_loop_body:
        return LOOP
    if has_spec and task_spec is not None and (task_spec.get("triggerPolicy") or {}).get("condition"):
        return CONDITION_BRANCH
    if name.startswith("condition") and not name.startswith("condition-branch"):
        return CONDITION
    return DAG


def build_tree(bundle: RunBundle) -> Tree:
    """Build the task tree of `bundle`.

    Raises:
        SkipRun: no root DAG, an unresolvable task key or scope, or a loop without a count.
    """
    return _TreeBuilder(bundle).build()


class _TreeBuilder:
    """One run's tree under construction: executions by parent, those placed so far, and the ledger."""

    def __init__(self, bundle: RunBundle) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        self.components = _components(bundle.spec)
        self.ledger: list[LedgerEntry] = []
        self.by_parent: dict[int, list[MlmdExecution]] = defaultdict(list)
        self.visited: set[int] = set()
        """Executions placed in the tree (as an attempt, or as a flattened iteration DAG)."""
        self.flattened: set[int] = set()
        """Iteration DAG executions: no task of their own, their children hang under the loop task."""

    def build(self) -> Tree:
        """Index the executions, pick the root DAG, expand the tree from it, and ledger what stayed out."""
        kfp_execs, roots = self._index()
        named = [r for r in roots if r.name == f"run/{self.bundle.run_id}"]
        roots = sorted(named or roots, key=lambda e: e.id)
        if not roots:
            raise SkipRun("no-root-dag", "the run has no root DAG execution (KFP 1.6-1.8 v2-compatible mode, "
                                         "or the root driver never ran)")
        spec = self.spec
        root = TaskNode("ROOT", ROOT, roots, None, None, None, spec["root"] if spec else None)
        self.visited = {r.id for r in roots}
        self._expand(root)
        for e in kfp_execs:
            if e.id not in self.visited:
                self._note(e, "detached-execution", "not reachable from the root DAG through `parent_dag_id`")
        iteration_events = [ev for ev in self.bundle.events if ev.execution_id in self.flattened]
        for extra in [r for r in self.bundle.executions if r.id in {x.id for x in roots[:-1]}]:
            self._note(extra, "superseded-attempt", "earlier root DAG execution")
        return Tree(root, self.ledger, iteration_events)

    def _note(self, execution: MlmdExecution, reason: str, detail: str = "") -> None:
        self.ledger.append(LedgerEntry(self.bundle.run_id, "execution", execution.id, reason, detail))

    def _index(self) -> tuple[list[MlmdExecution], list[MlmdExecution]]:
        """The KFP executions and the root DAG candidates; fills `by_parent`, ledgers unsupported types."""
        roots: list[MlmdExecution] = []
        kfp_execs = []
        for e in self.bundle.executions:
            if e.type_name not in KFP_EXECUTION_TYPES:
                self._note(e, "unsupported-type", e.type_name)
                continue
            kfp_execs.append(e)
            parent = e.props.get("parent_dag_id")
            if isinstance(parent, int) and not isinstance(parent, bool):
                self.by_parent[parent].append(e)
            elif e.type_name == DAG_EXECUTION and parent is None:
                roots.append(e)
        return kfp_execs, roots

    def _expand(self, task: TaskNode) -> None:
        """Give `task` its children (attempts of one name and iteration merged), then expand each."""
        for (name, iteration), attempts in self._group_children(task).items():
            task.children.append(self._child(task, name, iteration, attempts))
        for child in task.children:
            self._expand(child)

    def _group_children(self, task: TaskNode) -> dict[tuple[str, int | None], list[MlmdExecution]]:
        """The executions under `task`'s attempts by (task name, iteration), iteration DAGs flattened away."""
        groups: dict[tuple[str, int | None], list[MlmdExecution]] = {}

        def add(e: MlmdExecution, iteration: int | None) -> None:
            if e.id in self.visited:
                return
            self.visited.add(e.id)
            groups.setdefault((self._resolve_name(e, task), iteration), []).append(e)

        kids = sorted((c for a in task.attempts for c in self.by_parent.get(a.id, [])), key=lambda e: e.id)
        for c in kids:
            index = c.props.get("iteration_index")
            if task.loop and c.type_name == DAG_EXECUTION and isinstance(index, int):
                # An iteration DAG: no task of its own (flattened); its children hang under the loop task.
                self.visited.add(c.id)
                self.flattened.add(c.id)
                task.iterations.setdefault(index, []).append(c)
                self._note(c, "flattened-iteration", f"iteration {index} of `{task.name}`")
                for g in sorted(self.by_parent.get(c.id, []), key=lambda e: e.id):
                    add(g, index)
            else:
                add(c, task.iteration)
        return groups

    def _child(self, task: TaskNode, name: str, iteration: int | None, attempts: list[MlmdExecution]) -> TaskNode:
        """The child task `name` of `task`, typed from its spec and latest attempt; earlier attempts are ledgered."""
        attempts.sort(key=lambda e: e.id)
        has_spec = self.spec is not None
        task_spec = component = None
        if has_spec and task.component is not None:
            task_spec = task.component["dag"]["tasks"][name]
            ref = ((task_spec or {}).get("componentRef") or {}).get("name")
            component = self.components.get(ref) if ref else None
        child_type = classify(attempts[-1], name, task_spec, has_spec, iteration is not None)
        loop = is_loop(attempts[-1], task_spec, has_spec)
        count = attempts[-1].props.get("iteration_count")
        if loop and (not isinstance(count, int) or isinstance(count, bool)):  # absent, or a double (M28)
            raise SkipRun("loop-without-count", f"loop `{name}` (execution {attempts[-1].id}) has no integer "
                                                "`iteration_count`", attempts[-1].id)
        child = TaskNode(name, child_type, attempts, task, iteration, task_spec, component, loop=loop)
        for superseded in attempts[:-1]:
            self._note(superseded, "superseded-attempt", f"earlier attempt of `{name}`; execution "
                                                         f"{attempts[-1].id} is the effective one")
        return child

    def _resolve_name(self, e: MlmdExecution, parent: TaskNode) -> str:
        """The task key of `e` in `parent`'s DAG (importers and KFP <= 2.5 record `taskInfo.name` instead)."""
        task_name = e.props.get("task_name")
        if not isinstance(task_name, str) or not task_name:
            raise SkipRun("unresolved-task-key", f"execution {e.id} has no `task_name`", e.id)
        if self.spec is None or parent.component is None:
            return task_name
        tasks = (parent.component.get("dag") or {}).get("tasks")
        if tasks is None:
            raise SkipRun("scope-unresolved", f"execution {e.id} hangs under `{parent.scope_path or parent.name}`, "
                                              "which is not a DAG in the pipeline spec", e.id)
        if e.type_name not in IMPORTER_EXECUTIONS and task_name in tasks:
            return task_name
        # Importers (all versions) and KFP <= 2.5 data record `taskInfo.name`, not the task key.
        matches = [k for k, t in tasks.items() if ((t or {}).get("taskInfo") or {}).get("name") == task_name]
        if len(matches) == 1:
            return str(matches[0])
        if not matches and task_name in tasks:
            return task_name
        raise SkipRun("unresolved-task-key",
                      f"execution {e.id}: `{task_name}` matches {len(matches)} tasks of "
                      f"`{parent.scope_path or parent.name}` in the pipeline spec", e.id)
