"""Hand-built run bundles for pure mapper tests (no database)."""

from __future__ import annotations

import itertools
from typing import Any

from mlmd2kfp.records import MlmdArtifact, MlmdEvent, MlmdExecution, RunBundle, RunRecord

RUN = "7e1b2c3d-0000-4000-8000-000000000001"
T0 = 1_767_225_600_000


def container(key: str, outputs: dict[str, str] | None = None, inputs: dict[str, Any] | None = None,
              artifacts_in: dict[str, Any] | None = None, artifacts_out: dict[str, str] | None = None) -> dict[str, Any]:
    """A task spec + component for a container task (returns both under one dict)."""
    comp: dict[str, Any] = {"executorLabel": f"exec-{key}"}
    if outputs or artifacts_out:
        comp["outputDefinitions"] = {}
        if outputs:
            comp["outputDefinitions"]["parameters"] = {k: {"parameterType": v} for k, v in outputs.items()}
        if artifacts_out:
            comp["outputDefinitions"]["artifacts"] = {k: {"artifactType": {"schemaTitle": v}}
                                                      for k, v in artifacts_out.items()}
    task: dict[str, Any] = {"taskInfo": {"name": key}, "componentRef": {"name": f"comp-{key}"}}
    if inputs or artifacts_in:
        task["inputs"] = {}
        if inputs:
            task["inputs"]["parameters"] = inputs
        if artifacts_in:
            task["inputs"]["artifacts"] = artifacts_in
    return {"task": task, "component": comp}


class BundleBuilder:
    """Builds a `RunBundle` execution by execution, ids in creation order."""

    def __init__(self, spec: dict[str, Any] | None = None, *, run_state: str = "SUCCEEDED",
                 namespace: str = "team-a", experiment_namespace: str | None = "team-a", has_run: bool = True) -> None:
        self.ids = itertools.count(1)
        self.spec = spec
        self.executions: list[MlmdExecution] = []
        self.events: list[MlmdEvent] = []
        self.artifacts: dict[int, MlmdArtifact] = {}
        self.run = RunRecord(RUN, "my run", "wf-abcde", namespace, "exp-1", experiment_namespace, run_state,
                             run_state.capitalize(), T0 // 1000, T0 // 1000 + 900, None) if has_run else None
        self.clock = T0

    def execution(self, type_name: str, state: int | None = 3, name: str | None = None, **props: Any) -> MlmdExecution:
        self.clock += 1000
        e = MlmdExecution(next(self.ids), type_name, state, name, self.clock, self.clock + 5000, props)
        self.executions.append(e)
        return e

    def root(self, **props: Any) -> MlmdExecution:
        return self.execution("system.DAGExecution", 2, f"run/{RUN}", display_name="", task_name="", **props)

    def dag(self, task_name: str, parent: MlmdExecution, state: int = 3, **props: Any) -> MlmdExecution:
        return self.execution("system.DAGExecution", state, None, task_name=task_name, display_name=task_name,
                              parent_dag_id=parent.id, **props)

    def container(self, task_name: str, parent: MlmdExecution, state: int = 3, **props: Any) -> MlmdExecution:
        base = {"task_name": task_name, "display_name": task_name, "parent_dag_id": parent.id,
                "pod_name": f"pod-{task_name}", "pod_uid": "uid-1", "namespace": "team-a", "image": ""}
        base.update(props)
        return self.execution("system.ContainerExecution", state, None, **base)

    def artifact(self, type_name: str, uri: str | None, first_key: str | None = None,
                 first_type: str = "system.ContainerExecution", **props: Any) -> MlmdArtifact:
        a = MlmdArtifact(next(self.ids), type_name, uri, 2, self.clock, self.clock, props, first_key,
                         first_type if first_key else None)
        self.artifacts[a.id] = a
        return a

    def event(self, execution: MlmdExecution, artifact: MlmdArtifact, event_type: int, key: str | None) -> MlmdEvent:
        ev = MlmdEvent(next(self.ids), artifact.id, execution.id, event_type, key, self.clock)
        self.events.append(ev)
        return ev

    def bundle(self) -> RunBundle:
        return RunBundle(1, RUN, {"namespace": "team-a"}, "p", list(self.executions), list(self.events),
                         dict(self.artifacts), self.run, self.spec, "manifest" if self.spec else None)


def spec_with(root_tasks: dict[str, dict[str, Any]], components: dict[str, Any] | None = None,
              root_inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """A pipeline spec whose root DAG has `root_tasks` (values from `container`, or raw task specs)."""
    comps = dict(components or {})
    tasks = {}
    for key, value in root_tasks.items():
        if "task" in value:
            tasks[key] = value["task"]
            comps[value["task"]["componentRef"]["name"]] = value["component"]
        else:
            tasks[key] = value
    root: dict[str, Any] = {"dag": {"tasks": tasks}}
    if root_inputs:
        root["inputDefinitions"] = {"parameters": root_inputs}
    return {"pipelineInfo": {"name": "p"}, "root": root, "components": comps,
            "deploymentSpec": {"executors": {}}, "schemaVersion": "2.1.0"}
