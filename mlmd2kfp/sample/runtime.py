"""A small re-enactment of the KFP v2 runtime: drives one run of a compiled pipeline.

It walks the IR the way Argo schedules KFP's drivers and launchers (root DAG driver, then per
task: driver create → cache hit, or launcher pre-publish → record artifacts → publish → parent
DAG update), and makes each write through `KfpMetadataClient`, so task keys, loops, conditions
and exit handlers in MLMD agree with the spec (mlmd-source-model.md §2.2-2.6, §3.2, §4.1).
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass, field
from typing import Any

from .mlmd_client import CACHED, CANCELED, COMPLETE, FAILED, RUNNING, Clock, KfpMetadataClient, go_json
from .spec import PipelineSpec, evaluate_condition, ordered_tasks

DAG_TYPE = "system.DAGExecution"
CONTAINER_TYPE = "system.ContainerExecution"
IMPORTER_TYPE = "system.ImporterExecution"
WORKSPACE_IMPORTER_TYPE = "system.ImporterWorkspaceExecution"
PIPELINE_ROOT = "minio://mlpipeline/v2/artifacts"
MINIO_SESSION = '{"Provider":"minio","Params":' + go_json({
    "accessKeyKey": "accesskey", "disableSSL": "true", "endpoint": "minio-service.kubeflow:9000",
    "fromEnv": "false", "maxRetries": "5", "region": "minio", "secretKeyKey": "secretkey",
    "secretName": "mlpipeline-minio-artifact"}) + "}"
"""Go encoding/json of the bucket session: struct fields in declaration order, map keys sorted."""


@dataclass
class RunPlan:
    """What happens in one simulated run (the scenario's choices)."""

    run_id: str
    pipeline: str
    pod_namespace: str
    """The namespace pods run in (MLMD run context `namespace`)."""
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    """Output parameter values by task key (e.g. the coin's face)."""
    fail: frozenset[str] = frozenset()
    """Task keys whose container fails (every Argo retry attempt too)."""
    stop_at: str | None = None
    """Task key where the run is still in flight: launched, artifacts recorded, never published."""
    stopped_as: str = "RUNNING"
    """The run's state when it stops at `stop_at` (FAILED: terminated there, never finished in MLMD)."""
    retry_run: bool = False
    """After the failures, an operator's "Retry run": failed tasks re-driven, now succeeding."""
    use_cache: bool = True
    start_ms: int = 0
    mlflow: bool = False
    """The MLflow task plugin wrote `plugins.mlflow.run_id` (see `RunSimulator._plugins`)."""


@dataclass
class Node:
    """One execution the simulator created, with what consumers resolve against."""

    exec_id: int
    key: str
    kind: str
    component: dict[str, Any]
    params: dict[str, Any]
    in_artifacts: dict[str, list[int]]
    state: int
    out_params: dict[str, Any] = field(default_factory=dict)
    out_artifacts: dict[str, list[int]] = field(default_factory=dict)
    children: dict[str, Node] = field(default_factory=dict)
    iterations: list[Node] = field(default_factory=list)
    created_ms: int = 0
    finished_ms: int = 0
    argo_nodes: list[ArgoNode] = field(default_factory=list)
    """The Argo workflow nodes that ran for this execution (for the old `tasks` table)."""


@dataclass(frozen=True)
class ArgoNode:
    """One node of the run's Argo workflow: display name, template, node type, phase override."""

    display: str
    template: str
    node_type: str
    """`Pod`, `DAG`, `TaskGroup`."""
    hash: str
    """fnv32a-style decimal suffix of the node id and pod name."""
    phase: str | None = None
    """None: the phase of the execution it belongs to."""


@dataclass
class CacheEntry:
    """A KFP cache row: a COMPLETE execution and what a cache hit copies from it."""

    exec_id: int
    outputs: dict[str, Any]
    out_artifacts: dict[str, list[int]]
    logs: list[int]


@dataclass
class RunResult:
    """What the KFP database side needs to know about a simulated run."""

    plan: RunPlan
    workflow_name: str
    state: str
    """v2 RuntimeState name: SUCCEEDED, FAILED or RUNNING."""
    root: Node
    executions: list[Node]
    cache_rows: list[tuple[Node, str]]
    """(execution, fingerprint) of launcher-written cache rows (old `tasks` population A)."""
    finished_ms: int


def _cache_fingerprint(task: dict[str, Any], params: dict[str, Any], artifacts: dict[str, list[int]]) -> str:
    """The driver's cache fingerprint of a task with caching enabled."""
    custom_key = task.get("cachingOptions", {}).get("cacheKey")
    if custom_key:  # the driver hashes the component name, a NUL and the key, nothing else
        return hashlib.sha256(f"{task['componentRef']['name']}\0{custom_key}".encode()).hexdigest()
    return hashlib.sha256(go_json({
        "component": task["componentRef"]["name"], "inputs": params,
        "artifacts": {n: sorted(ids) for n, ids in artifacts.items()},
    }).encode()).hexdigest()


class _Stop(Exception):
    """The run is left in flight here."""


class RunSimulator:
    """Drives one `RunPlan` of a `PipelineSpec` through the metadata client."""

    def __init__(self, client: KfpMetadataClient, spec: PipelineSpec, plan: RunPlan, rng: random.Random,
                 cache: dict[tuple[str, str, str], CacheEntry]) -> None:
        self.client, self.spec, self.plan, self.rng, self.cache = client, spec, plan, rng, cache
        self.clock: Clock = client.clock
        self.workflow_name = f"{spec.name}-{''.join(rng.choice('abcdefghijklmnopqrstuvwxyz0123456789') for _ in range(5))}"
        self.executions: list[Node] = []
        self.cache_rows: list[tuple[Node, str]] = []
        self.retrying = False

    # --- entry ---------------------------------------------------------------------------
    def run(self) -> RunResult:
        """Simulate the run; returns the tree and its final state."""
        plan = self.plan
        self.clock.now_ms = max(self.clock.now_ms, plan.start_ms)
        self.pipeline_ctx, self.run_ctx = self.client.get_pipeline(
            self.spec.name, plan.run_id, plan.pod_namespace, PIPELINE_ROOT, MINIO_SESSION)
        self.contexts = [self.pipeline_ctx, self.run_ctx]
        root_comp = self.spec.component("root")
        params = {name: d["defaultValue"] for name, d in
                  root_comp.get("inputDefinitions", {}).get("parameters", {}).items() if "defaultValue" in d}
        params.update(plan.params)
        self.clock.tick(2000)
        root_props: dict[str, Any] = {"display_name": "", "task_name": ""}
        if params:
            root_props["inputs"] = params
        root_id = self.client.create_execution(DAG_TYPE, {**root_props, **self._plugins("")}, RUNNING, [],
                                               self.contexts, name=f"run/{plan.run_id}")
        root = self._node(root_id, "", "dag", root_comp, params, {}, RUNNING)
        self._argo(root, self.workflow_name, "entrypoint", "DAG")
        self._argo(root, "root-driver", "system-dag-driver", phase="SUCCEEDED")
        self._argo(root, "root", "root", "DAG")
        state = "SUCCEEDED"
        try:
            self._run_dag(root, root_comp)
            if plan.retry_run and self._failed(root):
                self.clock.tick(60_000)
                self.retrying = True
                self._run_dag(root, root_comp)
            if self._failed(root):
                state = "FAILED"
        except _Stop:
            state = plan.stopped_as
        return RunResult(plan, self.workflow_name, state, root, self.executions, self.cache_rows,
                         self.clock.tick(1000))

    # --- DAGs ----------------------------------------------------------------------------
    def _run_dag(self, node: Node, component: dict[str, Any]) -> None:
        tasks = component["dag"].get("tasks", {})
        order = ordered_tasks(component["dag"])
        # Argo starts the drivers of every ready condition branch before any branch body runs
        # (recipe §4.1 step 3), so a branch group's DAG update sees all its branches.
        pending: dict[str, tuple[Node, Any]] = {}
        for key in order:
            task = tasks[key]
            if (key not in node.children and task.get("triggerPolicy", {}).get("condition")
                    and self._dependencies_met(node, task)
                    and self.spec.kind(self.spec.component(task["componentRef"]["name"])) == "dag"):
                pending[key] = self._run_task(node, key, task, defer=True)
        for key in order:
            task = tasks[key]
            if key in pending:
                child, body = pending[key]
                if body is not None:
                    body()
                continue
            existing = node.children.get(key)
            if existing is not None:
                if existing.kind == "dag" and existing.state not in (CANCELED, COMPLETE):
                    self._rerun_dag(existing)
                if existing.state != FAILED:
                    continue
            if not self._dependencies_met(node, task):
                continue
            self._run_task(node, key, task)

    def _rerun_dag(self, node: Node) -> None:
        if node.iterations:
            for iteration in node.iterations:
                self._run_dag(iteration, node.component)
        else:
            self._run_dag(node, node.component)

    def _dependencies_met(self, parent: Node, task: dict[str, Any]) -> bool:
        """Argo runs a task once its upstream tasks succeeded (exit tasks: once they ended)."""
        deps = task.get("dependentTasks", [])
        if task.get("triggerPolicy", {}).get("strategy") == "ALL_UPSTREAM_TASKS_COMPLETED":
            return all(d in parent.children for d in deps)
        for d in deps:
            node = parent.children.get(d)
            if node is None or node.state == CANCELED or self._failed(node):
                return False
            if node.kind != "dag" and node.state == RUNNING:
                return False
        return True

    def _failed(self, node: Node) -> bool:
        return node_failed(node)

    def _run_task(self, parent: Node, key: str, task: dict[str, Any], defer: bool = False) -> Any:
        component = self.spec.component(task["componentRef"]["name"])
        kind = self.spec.kind(component)
        params = self._resolve_params(parent, task)
        # the driver's resolver fills a component input the task does not wire from its default
        # (recorded in the execution's `inputs`, as for the root DAG)
        for name, d in component.get("inputDefinitions", {}).get("parameters", {}).items():
            if name not in params and "defaultValue" in d and name not in task.get("inputs", {}).get("parameters", {}):
                params[name] = d["defaultValue"]
        artifacts = self._resolve_artifacts(parent, task)
        condition = task.get("triggerPolicy", {}).get("condition")
        triggered = evaluate_condition(condition, params) if condition else True
        self.clock.tick(self.rng.randint(1500, 4000))
        if kind == "dag":
            return self._run_dag_task(parent, key, task, component, params, artifacts, triggered, defer)
        elif kind == "importer":
            self._run_importer(parent, key, task, component, params)
        else:
            self._run_container(parent, key, task, component, params, artifacts, triggered)

    def _run_dag_task(self, parent: Node, key: str, task: dict[str, Any], component: dict[str, Any],
                      params: dict[str, Any], artifacts: dict[str, list[int]], triggered: bool,
                      defer: bool = False) -> Any:
        """Create a DAG execution; run its body now, or return (node, body) when `defer`."""
        dag = component["dag"]
        props: dict[str, Any] = {
            "display_name": task["taskInfo"]["name"], "task_name": key, "parent_dag_id": parent.exec_id,
            "inputs": params, "total_dag_tasks": len(dag.get("tasks", {})),
        }
        props.update(self._producer_props(dag))
        props.update(self._plugins(key))
        iterator = task.get("parameterIterator")
        items: list[Any] = []
        if iterator is not None:
            source = iterator["items"]
            items = json.loads(source["raw"]) if "raw" in source else list(params.get(source["inputParameter"]) or [])
            props["iteration_count"] = len(items)
        events = [(aid, name) for name, ids in artifacts.items() for aid in ids]
        state = RUNNING if triggered else CANCELED
        exec_id = self.client.create_execution(DAG_TYPE, props, state, events, self.contexts)
        node = self._node(exec_id, key, "dag", component, params, artifacts, state)
        parent.children[key] = node
        if iterator is None:
            self._argo(node, f"{key}-driver", "system-dag-driver", phase="SUCCEEDED")
            self._argo(node, key, f"comp-{key}", "DAG")
        else:
            self._argo(node, key, f"comp-{key}-{key}-iterator", "DAG")
            self._argo(node, "iteration-driver", "system-dag-driver", phase="SUCCEEDED")
            self._argo(node, "iteration-iterations", f"comp-{key}-iteration", "TaskGroup")
        if not triggered:
            return (node, None)

        def body() -> None:
            if iterator is None:
                self._run_dag(node, component)
            else:
                self._run_iterations(node, key, component, iterator, items, params, props, events)

        if defer:
            return (node, body)
        body()
        return (node, None)

    def _run_iterations(self, node: Node, key: str, component: dict[str, Any], iterator: dict[str, Any],
                        items: list[Any], params: dict[str, Any], props: dict[str, Any],
                        events: list[tuple[int, str]]) -> None:
        exec_id = node.exec_id
        for index, item in enumerate(items):
            it_params = {k: v for k, v in params.items() if k != iterator["items"].get("inputParameter")}
            it_params[iterator["itemInput"]] = item
            self.clock.tick(self.rng.randint(500, 1500))
            it_props = {**props, "iteration_index": index, "inputs": it_params, "parent_dag_id": exec_id}
            it_props.pop("iteration_count")
            for name in self._plugins(key):  # the plugin runs for the loop, not for each iteration
                it_props.pop(name)
            it_id = self.client.create_execution(DAG_TYPE, it_props, RUNNING, events, self.contexts)
            it_node = self._node(it_id, key, "dag", component, it_params, node.in_artifacts, RUNNING)
            self._argo(it_node, f"iteration-iterations({index}:{index})", f"comp-{key}-iteration", "DAG")
            self._argo(it_node, "iteration-item-driver", "system-dag-driver", phase="SUCCEEDED")
            self._argo(it_node, "iteration-item", f"comp-{key}", "DAG")
            node.iterations.append(it_node)
            self._run_dag(it_node, component)

    def _plugins(self, key: str) -> dict[str, str]:
        """The MLflow plugin's property for task `key` of this run (an MLflow run id: 32 hex digits, derived
        from the KFP run and task so that no random draw shifts the rest of the sample)."""
        if not self.plan.mlflow:
            return {}
        seed = f"{self.plan.run_id}/{key}/{len(self.executions)}"  # one MLflow run per execution
        return {"plugins.mlflow.run_id": hashlib.md5(seed.encode()).hexdigest()}

    def _producer_props(self, dag: dict[str, Any]) -> dict[str, Any]:
        """`parameter_producer_task` / `artifact_producer_task` of a DAG with outputs (≥ 2.4)."""
        outputs = dag.get("outputs", {})
        props: dict[str, Any] = {}
        if outputs.get("parameters"):
            # Go protojson of DagOutputParameterSpec (fields in proto field-number order), one string per output.
            def selector(sel: dict[str, Any]) -> dict[str, Any]:
                return {"producerSubtask": sel["producerSubtask"], "outputParameterKey": sel["outputParameterKey"]}

            specs = {}
            for name, spec in sorted(outputs["parameters"].items()):
                if "valueFromParameter" in spec:
                    value = {"valueFromParameter": selector(spec["valueFromParameter"])}
                else:
                    value = {"valueFromOneof": {"parameterSelectors": [
                        selector(s) for s in spec["valueFromOneof"]["parameterSelectors"]]}}
                specs[name] = json.dumps(value, separators=(",", ":"))
            props["parameter_producer_task"] = specs
        if outputs.get("artifacts"):
            # Go encoding/json: map keys sorted, struct fields in declaration order (snake_case tags).
            props["artifact_producer_task"] = json.dumps({
                name: {"artifact_selectors": [
                    {"producer_subtask": s["producerSubtask"], "output_artifact_key": s["outputArtifactKey"]}
                    for s in spec["artifactSelectors"]]}
                for name, spec in sorted(outputs["artifacts"].items())}, separators=(",", ":"))
        return props

    # --- containers ----------------------------------------------------------------------
    def _run_container(self, parent: Node, key: str, task: dict[str, Any], component: dict[str, Any],
                       params: dict[str, Any], artifacts: dict[str, list[int]], triggered: bool) -> None:
        """Create a container execution, then cancel it, publish a cache hit, or run its pod(s)."""
        props: dict[str, Any] = {
            "display_name": task["taskInfo"]["name"], "task_name": key, "parent_dag_id": parent.exec_id,
            "inputs": params, "pod_name": "", "pod_uid": "", "namespace": "", "image": "",
            **self._plugins(key),
        }
        caching = bool(task.get("cachingOptions", {}).get("enableCache"))
        fingerprint = ""
        if caching:
            fingerprint = _cache_fingerprint(task, params, artifacts)
            props["cache_fingerprint"] = fingerprint
        events = [(aid, name) for name, ids in artifacts.items() for aid in ids]
        cache_key = (fingerprint, f"pipeline/{self.spec.name}", self.plan.pod_namespace)
        hit = self.cache.get(cache_key) if caching and self.plan.use_cache and triggered else None
        if hit is not None:
            props["cached_execution_id"] = str(hit.exec_id)
        exec_id = self.client.create_execution(
            CONTAINER_TYPE, props, RUNNING if triggered else CANCELED, events, self.contexts)
        node = self._node(exec_id, key, "container", component, params, artifacts, RUNNING)
        parent.children[key] = node
        self._argo(node, f"{key}-driver", "system-container-driver", phase="SUCCEEDED")
        self._argo(node, key, "system-container-executor", "DAG")
        if not triggered:
            node.state = CANCELED
            return
        if hit is not None:
            self._publish_cache_hit(node, hit)
            return
        fails = key in self.plan.fail and not self.retrying
        salt = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        base_uri = f"{PIPELINE_ROOT}/{self.spec.name}/{self.plan.run_id}/{key}/{salt}"
        logs = self._run_pods(node, task, component, fails, base_uri)
        if not fails:
            self._publish_outputs(node, component, base_uri, logs[-1])
            if caching:
                self.cache[cache_key] = CacheEntry(exec_id, node.out_params, node.out_artifacts, logs[-1:])
                self.cache_rows.append((node, fingerprint))
        node.finished_ms = self.clock.now_ms
        self.client.update_dag_state(parent.exec_id)

    def _publish_cache_hit(self, node: Node, hit: CacheEntry) -> None:
        """Cache hit: the driver publishes CACHED with the old outputs and artifacts; no pod runs."""
        self._argo(node, "executor", "system-container-impl", phase="SKIPPED")
        outs = [(aid, name) for name, ids in hit.out_artifacts.items() for aid in ids]
        outs += [(aid, "executor-logs") for aid in hit.logs]
        self.clock.tick(300)
        self.client.update_execution(node.exec_id, CACHED, {"outputs": hit.outputs}, outs, self.contexts)
        node.state, node.out_params, node.out_artifacts = CACHED, hit.outputs, hit.out_artifacts
        node.finished_ms = self.clock.now_ms

    def _run_pods(self, node: Node, task: dict[str, Any], component: dict[str, Any], fails: bool,
                  base_uri: str) -> list[int]:
        """Run the launcher pod, once per Argo retry attempt when it `fails`; returns the log artifact ids.

        Raises:
            _Stop: the run is left in flight at this task (`RunPlan.stop_at`).
        """
        key, exec_id = node.key, node.exec_id
        has_retry = "retryPolicy" in task
        attempts = (int(task.get("retryPolicy", {}).get("maxRetryCount", 0)) + 1) if fails else 1
        logs: list[int] = []
        for attempt in range(attempts):
            self.clock.tick(self.rng.randint(3000, 9000))
            if has_retry and attempt == 0:  # with a retry policy Argo adds a retry parent node
                self._argo(node, "executor", "system-container-impl", "Retry")
            pod_name = self._argo(node, f"executor({attempt})" if has_retry else "executor",
                                  "system-container-impl", phase="FAILED" if fails else None)
            self.client.update_execution(exec_id, RUNNING, {
                "pod_name": pod_name, "pod_uid": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "namespace": self.plan.pod_namespace})
            if key == self.plan.stop_at:
                self._record_outputs(component, key, base_uri)  # recorded, never published: orphans
                raise _Stop
            self.clock.tick(self.rng.randint(5000, 60000))
            logs.append(self.client.record_artifact(
                "system.Artifact", f"{base_uri}/executor-logs" + (f"-{attempt}" if attempt else ""),
                {"display_name": "executor-logs", "store_session_info": MINIO_SESSION}))
            if fails:
                self.client.update_execution(exec_id, FAILED, None, [(logs[-1], "executor-logs")], self.contexts)
                node.state = FAILED
        return logs

    def _publish_outputs(self, node: Node, component: dict[str, Any], base_uri: str, log_id: int) -> None:
        """The launcher records the output artifacts and publishes COMPLETE with them and its log."""
        out_artifacts = self._record_outputs(component, node.key, base_uri)
        outputs = self._output_params(component, node.key)
        pairs = [(aid, name) for name, ids in out_artifacts.items() for aid in ids]
        pairs.append((log_id, "executor-logs"))
        self.client.update_execution(node.exec_id, COMPLETE, {"outputs": outputs}, pairs, self.contexts)
        node.state, node.out_params, node.out_artifacts = COMPLETE, outputs, out_artifacts

    def _record_outputs(self, component: dict[str, Any], key: str, base_uri: str) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for name, spec in sorted(component.get("outputDefinitions", {}).get("artifacts", {}).items()):
            title = spec["artifactType"]["schemaTitle"]
            metadata = artifact_metadata(title, self.rng)
            metadata.setdefault("display_name", name)
            metadata["store_session_info"] = MINIO_SESSION
            out[name] = [self.client.record_artifact(title, f"{base_uri}/{name}", metadata)]
        return out

    def _output_params(self, component: dict[str, Any], key: str) -> dict[str, Any]:
        outputs: dict[str, Any] = {}
        for name, spec in sorted(component.get("outputDefinitions", {}).get("parameters", {}).items()):
            if key in self.plan.outputs:
                outputs[name] = self.plan.outputs[key]
                continue
            kind = spec["parameterType"]
            outputs[name] = {
                "STRING": f"{key}-{self.rng.randint(100, 999)}",
                "NUMBER_INTEGER": float(self.rng.randint(1, 500)),
                "NUMBER_DOUBLE": round(self.rng.random(), 4),
                "BOOLEAN": True,
                "LIST": [], "STRUCT": {},
            }.get(kind, "")
        return outputs

    # --- importers -----------------------------------------------------------------------
    def _run_importer(self, parent: Node, key: str, task: dict[str, Any], component: dict[str, Any],
                      params: dict[str, Any]) -> None:
        importer = (self.spec.executor(component) or {})["importer"]
        exec_type = WORKSPACE_IMPORTER_TYPE if importer.get("downloadToWorkspace") else IMPORTER_TYPE
        props = {"display_name": "", "task_name": task["taskInfo"]["name"], "parent_dag_id": parent.exec_id}
        exec_id = self.client.create_execution(exec_type, props, RUNNING, [], self.contexts)
        node = self._node(exec_id, key, "importer", component, params, {}, RUNNING)
        parent.children[key] = node
        self._argo(node, key, "system-importer-workspace" if importer.get("downloadToWorkspace")
                   else "system-importer")
        source = importer["artifactUri"]
        uri = source["constant"] if "constant" in source else params[source["runtimeParameter"]]
        title = importer["typeSchema"]["schemaTitle"]
        scheme = uri.split("://", 1)[0]
        metadata = dict(importer.get("metadata") or {})
        metadata["store_session_info"] = f'{{"Provider":"{scheme}","Params":{{"fromEnv":"true"}}}}'
        self.clock.tick(self.rng.randint(1000, 3000))
        artifact_id = None
        if not importer.get("reimport"):
            artifact_id = self.client.find_matched_artifact(self.pipeline_ctx, title, uri, metadata)
        if artifact_id is None:
            artifact_id = self.client.record_artifact(title, uri, metadata)
        [out_key] = component["outputDefinitions"]["artifacts"]
        self.client.update_execution(exec_id, COMPLETE, None, [(artifact_id, out_key)], self.contexts)
        node.state, node.out_artifacts, node.finished_ms = COMPLETE, {out_key: [artifact_id]}, self.clock.now_ms

    # --- resolution ----------------------------------------------------------------------
    def _resolve_params(self, parent: Node, task: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, b in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in b:
                if b["componentInputParameter"] in parent.params:
                    out[name] = parent.params[b["componentInputParameter"]]
            elif "taskOutputParameter" in b:
                producer = parent.children.get(b["taskOutputParameter"]["producerTask"])
                value = self._param_of(producer, b["taskOutputParameter"]["outputParameterKey"]) if producer else None
                if value is not None:
                    out[name] = value
            elif "runtimeValue" in b:
                out[name] = b["runtimeValue"]["constant"]
            elif "taskFinalStatus" in b:
                producer = parent.children[b["taskFinalStatus"]["producerTask"]]
                out[name] = {"state": "FAILED" if self._failed(producer) else "SUCCEEDED",
                             "pipelineTaskName": b["taskFinalStatus"]["producerTask"],
                             "pipelineJobResourceName": self.workflow_name, "error": {}}
        return out

    def _resolve_artifacts(self, parent: Node, task: dict[str, Any]) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        for name, b in task.get("inputs", {}).get("artifacts", {}).items():
            if "taskOutputArtifact" in b:
                producer = parent.children.get(b["taskOutputArtifact"]["producerTask"])
                out[name] = self._artifacts_of(producer, b["taskOutputArtifact"]["outputArtifactKey"]) if producer else []
            elif "componentInputArtifact" in b:
                out[name] = list(parent.in_artifacts.get(b["componentInputArtifact"], []))
        return out

    def _param_of(self, node: Node, key: str) -> Any:
        if node.kind != "dag":
            return node.out_params.get(key)
        spec = node.component["dag"].get("outputs", {}).get("parameters", {}).get(key, {})
        selectors = ([spec["valueFromParameter"]] if "valueFromParameter" in spec
                     else spec.get("valueFromOneof", {}).get("parameterSelectors", []))
        values = []
        for scope in (node.iterations or [node]):
            for sel in selectors:
                child = scope.children.get(sel["producerSubtask"])
                if child is not None and child.state != CANCELED:
                    values.append(self._param_of(child, sel["outputParameterKey"]))
                    break
        return values if node.iterations else (values[0] if values else None)

    def _artifacts_of(self, node: Node, key: str) -> list[int]:
        if node.kind != "dag":
            return list(node.out_artifacts.get(key, []))
        spec = node.component["dag"].get("outputs", {}).get("artifacts", {}).get(key, {})
        out: list[int] = []
        for scope in (node.iterations or [node]):
            for sel in spec.get("artifactSelectors", []):
                child = scope.children.get(sel["producerSubtask"])
                if child is not None:
                    out.extend(self._artifacts_of(child, sel["outputArtifactKey"]))
        return out

    # --- bookkeeping ---------------------------------------------------------------------
    def _node(self, exec_id: int, key: str, kind: str, component: dict[str, Any], params: dict[str, Any],
              artifacts: dict[str, list[int]], state: int) -> Node:
        node = Node(exec_id, key, kind, component, params, artifacts, state, created_ms=self.clock.now_ms)
        self.executions.append(node)
        return node

    def _argo(self, node: Node, display: str, template: str, node_type: str = "Pod",
              phase: str | None = None) -> str:
        """Record an Argo node of `node`; returns its pod name (`<wf>-<template>-<hash>`)."""
        digits = str(self.rng.randint(10**9, 2**32 - 1))
        node.argo_nodes.append(ArgoNode(display, template, node_type, digits, phase))
        return f"{self.workflow_name}-{template}-{digits}"


def node_failed(node: Node) -> bool:
    """A container that failed, or a DAG with a failed task anywhere below (latest attempts only)."""
    if node.kind != "dag":
        return node.state == FAILED
    scopes = node.iterations or [node]
    return any(node_failed(child) for scope in scopes for child in scope.children.values())


def artifact_metadata(schema_title: str, rng: random.Random) -> dict[str, Any]:
    """User metadata a component would log for an output of this type (mlmd-source-model.md §2.5)."""
    if schema_title == "system.Metrics":
        return {"accuracy": round(0.8 + rng.random() * 0.19, 9), "precision": round(rng.random(), 9),
                "recall": round(rng.random(), 9), "f1": round(rng.random(), 9), "epochs": rng.randint(3, 20)}
    if schema_title == "system.ClassificationMetrics":
        a, b, c, d = (rng.randint(0, 50) for _ in range(4))
        return {
            "confusionMatrix": {"annotationSpecs": [{"displayName": "setosa"}, {"displayName": "versicolor"}],
                                "rows": [{"row": [a, b]}, {"row": [c, d]}]},
            "confidenceMetrics": [
                {"confidenceThreshold": t, "recall": round(rng.random(), 4), "falsePositiveRate": round(rng.random(), 4)}
                for t in (0.9, 0.5, 0.1)],
        }
    if schema_title == "system.Model":
        return {"framework": "sklearn", "calibrated": True}
    if schema_title == "system.Dataset":
        return {"rows": rng.randint(100, 10_000)}
    return {}
