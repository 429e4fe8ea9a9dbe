"""Table-driven tests of the mapping.md rules, on hand-built bundles (no database)."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from mlmd2kfp.mappers import MapOptions, map_run
from mlmd2kfp.mappers.artifacts import infer_artifact_name, map_artifact
from mlmd2kfp.mappers.enums import (CACHED, CONDITION, CONDITION_BRANCH, DAG, FAILED, IMPORTER, LOOP, ROOT, RUNNING,
                                    RUNTIME, SKIPPED, SUCCEEDED)
from mlmd2kfp.mappers.tree import classify
from mlmd2kfp.records import EVENT_INPUT, EVENT_OUTPUT, MlmdArtifact, MlmdExecution
from tests.mappers.builders import RUN, BundleBuilder, container, spec_with

MULTI = MapOptions(multi_user=True)


def by_name(rows):
    return {t.name: t for t in rows.tasks}


# --- Type (kfp-native-schema.md §2.3) -----------------------------------------------------------
@pytest.mark.parametrize("type_name,name,task_spec,has_spec,props,expected", [
    ("system.ContainerExecution", "train", {}, True, {}, RUNTIME),
    ("system.ImporterExecution", "importer", {}, True, {}, IMPORTER),
    ("system.ImporterWorkspaceExecution", "importer", {}, True, {}, IMPORTER),
    ("system.DAGExecution", "for-loop-2", {"parameterIterator": {"itemInput": "x"}}, True, {}, LOOP),
    ("system.DAGExecution", "for-loop-2", {"artifactIterator": {"itemInput": "x"}}, True, {}, LOOP),
    ("system.DAGExecution", "condition-3", {"triggerPolicy": {"condition": "a == b"}}, True, {}, CONDITION_BRANCH),
    ("system.DAGExecution", "condition-3", {}, True, {}, CONDITION),
    ("system.DAGExecution", "condition-branches-1", {}, True, {}, DAG),
    ("system.DAGExecution", "exit-handler-1", {}, True, {}, DAG),
    ("system.DAGExecution", "my-sub-pipeline", {}, True, {}, DAG),
    ("system.DAGExecution", "for-loop-2", None, False, {"iteration_count": 3}, LOOP),
    ("system.DAGExecution", "condition-4", None, False, {}, CONDITION),
])
def test_task_type(type_name, name, task_spec, has_spec, props, expected):
    e = MlmdExecution(1, type_name, 3, None, 0, 0, props)
    assert classify(e, name, task_spec, has_spec) == expected


@pytest.mark.parametrize("task_spec,has_spec,props,expected", [
    ({"parameterIterator": {"itemInput": "x"}}, True, {"iteration_count": 2}, DAG),
    ({"parameterIterator": {"itemInput": "x"}, "triggerPolicy": {"condition": "a"}}, True, {}, CONDITION_BRANCH),
    (None, False, {"iteration_count": 2}, DAG),
])
def test_a_loop_inside_a_loop_body_is_typed_by_the_rules_after_loop(task_spec, has_spec, props, expected):
    """(v3) the PR-head driver types LOOP only without an iteration index (`pr:v2/driver/dag.go:402-423`)."""
    e = MlmdExecution(1, "system.DAGExecution", 3, None, 0, 0, props)
    assert classify(e, "for-loop-3", task_spec, has_spec, in_loop_body=True) == expected


# --- State (the runtime's bottom-up rule) -------------------------------------------------------
@pytest.mark.parametrize("child_states,expected", [
    ([3, 3], SUCCEEDED),            # COMPLETE, COMPLETE
    ([5, 5], CACHED),               # all CACHED
    ([5, 3], SUCCEEDED),
    ([3, 4], FAILED),               # any FAILED
    ([2, 4], FAILED),               # (v3) a FAILED child wins over a RUNNING sibling
    ([6, 6], SKIPPED),              # all not triggered
    ([3], RUNNING),                 # fewer children than the DAG's tasks
])
def test_dag_state_from_children(child_states, expected):
    spec = spec_with({"sub": {"taskInfo": {"name": "sub"}, "componentRef": {"name": "comp-sub"}}},
                     {"comp-sub": {"dag": {"tasks": {"a": container("a")["task"], "b": container("b")["task"]}}},
                      "comp-a": {"executorLabel": "e"}, "comp-b": {"executorLabel": "e"}})
    b = BundleBuilder(spec, run_state="RUNNING")
    root = b.root()
    sub = b.dag("sub", root)
    for name, state in zip("ab", child_states, strict=False):
        b.container(name, sub, state=state)
    rows = map_run(b.bundle(), MULTI)
    assert by_name(rows)["sub"].state == expected


def test_running_tasks_of_a_finished_run_become_failed_but_root_is_kept():
    spec = spec_with({"a": container("a"), "b": container("b")})
    b = BundleBuilder(spec, run_state="FAILED")
    root = b.root()
    b.container("a", root, state=3)
    b.container("b", root, state=2)  # pod killed: never published
    rows = map_run(b.bundle(), MULTI)
    t = by_name(rows)
    assert t["b"].state == FAILED
    assert json.loads(t["b"].status_metadata) == {"message": "never finished (run FAILED)"}
    assert t["b"].finished_at == b.run.finished_at
    assert t["ROOT"].state == FAILED  # from its FAILED child, not from run_details
    assert [h["state"] for h in json.loads(t["b"].state_history)] == ["RUNNING", "FAILED"]


def test_running_run_keeps_running_tasks():
    spec = spec_with({"a": container("a")})
    b = BundleBuilder(spec, run_state="RUNNING")
    root = b.root()
    b.container("a", root, state=2)
    t = by_name(map_run(b.bundle(), MULTI))
    assert t["a"].state == RUNNING and t["a"].finished_at == 0 and t["ROOT"].state == RUNNING
    assert json.loads(t["a"].state_history) == [{"state": "RUNNING", "updateTime": "2026-01-01T00:00:02Z"}]


def test_leaf_states_and_failure_message():
    spec = spec_with({k: container(k) for k in "abcde"})
    b = BundleBuilder(spec)
    root = b.root()
    for key, state in zip("abcde", [3, 5, 4, 6, 1], strict=True):
        b.container(key, root, state=state)
    t = by_name(map_run(b.bundle(), MULTI))
    assert [t[k].state for k in "abcde"] == [SUCCEEDED, CACHED, FAILED, SKIPPED, FAILED]  # NEW in a finished run
    assert json.loads(t["c"].status_metadata)["message"].startswith("failed (migrated from ML Metadata")
    assert json.loads(t["b"].status_metadata) == {}     # a cache hit: at least {}
    assert t["a"].status_metadata == "null"


# --- Retries ------------------------------------------------------------------------------------
def test_retry_attempts_merge_into_one_task():
    spec = spec_with({"a": container("a")})
    b = BundleBuilder(spec)
    root = b.root()
    first = b.container("a", root, state=4, cache_fingerprint="f1", pod_name="pod-1")
    second = b.container("a", root, state=3, cache_fingerprint="f2", pod_name="pod-2", outputs={"Output": "x"})
    rows = map_run(b.bundle(), MULTI)
    t = by_name(rows)
    assert len(rows.tasks) == 2
    a = t["a"]
    assert a.state == SUCCEEDED and a.fingerprint == "f2" and json.loads(a.pods)[0]["name"] == "pod-2"
    assert a.created_at == first.create_ms // 1000 and a.mlmd_execution_ids == (first.id, second.id)
    assert [h["state"] for h in json.loads(a.state_history)] == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]
    assert [(e.mlmd_id, e.reason) for e in rows.ledger] == [(first.id, "superseded-attempt")]


# --- Loops --------------------------------------------------------------------------------------
def loop_spec():
    body = {"dag": {"tasks": {"work": container("work", outputs={"Output": "STRING"})["task"]}},
            "outputDefinitions": {"parameters": {"collected": {"parameterType": "LIST"}}}}
    body["dag"]["outputs"] = {"parameters": {"collected": {"valueFromParameter": {
        "producerSubtask": "work", "outputParameterKey": "Output"}}}}
    loop_task = {"taskInfo": {"name": "for-loop-1"}, "componentRef": {"name": "comp-for-loop-1"},
                 "parameterIterator": {"itemInput": "item", "items": {"inputParameter": "items"}},
                 "inputs": {"parameters": {"items": {"componentInputParameter": "items"}}}}
    body["dag"]["tasks"]["work"]["inputs"] = {"parameters": {"x": {"componentInputParameter": "item"}}}
    return spec_with({"for-loop-1": loop_task},
                     {"comp-for-loop-1": body, "comp-work": {"executorLabel": "e",
                      "outputDefinitions": {"parameters": {"Output": {"parameterType": "STRING"}}}}},
                     root_inputs={"items": {"parameterType": "LIST"}})


def test_loop_iterations_are_flattened():
    b = BundleBuilder(loop_spec())
    root = b.root(inputs={"items": ["p", "q"]})
    loop = b.dag("for-loop-1", root, iteration_count=2, inputs={"items": ["p", "q"]})
    iters = [b.dag("for-loop-1", loop, iteration_index=i, inputs={"item": v}) for i, v in enumerate("pq")]
    for i, it in enumerate(iters):
        b.container("work", it, inputs={"x": "pq"[i]}, outputs={"Output": f"out-{i}"})
    rows = map_run(b.bundle(), MULTI)
    tasks = rows.tasks
    assert [t.name for t in tasks] == ["ROOT", "for-loop-1", "work", "work"]
    loop_row = tasks[1]
    assert loop_row.type == LOOP and json.loads(loop_row.type_attrs) == {"iterationCount": "2"}
    assert loop_row.display_name == "Loop"
    works = tasks[2:]
    assert all(w.parent_task_uuid == loop_row.uuid for w in works)
    assert [json.loads(w.type_attrs) for w in works] == [{"iterationIndex": "0"}, {"iterationIndex": "1"}]
    assert [w.scope_path for w in works] == ["root.for-loop-1.work"] * 2
    assert len({w.logical_key for w in works}) == 2
    inputs = json.loads(loop_row.input_parameters)
    iterator = [e for e in inputs if e["type"] == "ITERATOR_INPUT"]
    assert iterator == [
        {"parameterKey": "item", "producer": {"iteration": "0", "taskName": "for-loop-1"}, "type": "ITERATOR_INPUT", "value": "p"},
        {"parameterKey": "item", "producer": {"iteration": "1", "taskName": "for-loop-1"}, "type": "ITERATOR_INPUT", "value": "q"}]
    work_in = json.loads(works[1].input_parameters)
    assert work_in == [{"parameterKey": "x", "producer": {"iteration": "1", "taskName": "for-loop-1"},
                        "type": "COMPONENT_INPUT", "value": "q"}]
    work_out = json.loads(works[0].output_parameters)
    assert work_out[0]["type"] == "ITERATOR_OUTPUT" and work_out[0]["producer"] == {"iteration": "0", "taskName": "work"}
    # propagated to the LOOP: ITERATOR_OUTPUT, producer = the child with its iteration
    loop_out = json.loads(loop_row.output_parameters)
    assert [(e["parameterKey"], e["type"], e["producer"], e["value"]) for e in loop_out] == [
        ("collected", "ITERATOR_OUTPUT", {"iteration": "0", "taskName": "work"}, "out-0"),
        ("collected", "ITERATOR_OUTPUT", {"iteration": "1", "taskName": "work"}, "out-1")]
    assert sorted(e.reason for e in rows.ledger) == ["flattened-iteration"] * 2


def test_propagated_outputs_above_a_loop_keep_the_leafs_iteration():
    """(v3) `propagatedProducer`: ROOT above a top-level LOOP gets ITERATOR_OUTPUT (the level below's type)
    with the body task's index, one entry per iteration (version 2 wrote no iteration above the LOOP)."""
    spec = loop_spec()
    spec["root"]["dag"]["outputs"] = {"parameters": {"all": {"valueFromParameter": {
        "producerSubtask": "for-loop-1", "outputParameterKey": "collected"}}}}
    b = BundleBuilder(spec)
    root = b.root(inputs={"items": ["p", "q"]})
    loop = b.dag("for-loop-1", root, iteration_count=2, inputs={"items": ["p", "q"]})
    for i, v in enumerate("pq"):
        it = b.dag("for-loop-1", loop, iteration_index=i, inputs={"item": v})
        b.container("work", it, inputs={"x": v}, outputs={"Output": f"out-{i}"})
    t = by_name(map_run(b.bundle(), MULTI))
    assert json.loads(t["ROOT"].output_parameters) == [
        {"parameterKey": "all", "producer": {"iteration": "0", "taskName": "for-loop-1"}, "type": "ITERATOR_OUTPUT",
         "value": "out-0"},
        {"parameterKey": "all", "producer": {"iteration": "1", "taskName": "for-loop-1"}, "type": "ITERATOR_OUTPUT",
         "value": "out-1"}]


def test_an_output_selected_under_two_names_propagates_from_each():
    """The launcher propagates every DAG output that selects a key, and goes on from each: ROOT selects the
    DAG's second name for the same inner output."""
    inner = container("make", outputs={"Output": "STRING"})
    dag_component = {"dag": {"tasks": {"make": inner["task"]}, "outputs": {"parameters": {
        "a": {"valueFromParameter": {"producerSubtask": "make", "outputParameterKey": "Output"}},
        "b": {"valueFromParameter": {"producerSubtask": "make", "outputParameterKey": "Output"}}}}},
        "outputDefinitions": {"parameters": {"a": {"parameterType": "STRING"}, "b": {"parameterType": "STRING"}}}}
    spec = spec_with({"dag-1": {"taskInfo": {"name": "dag-1"}, "componentRef": {"name": "comp-dag-1"}}},
                     {"comp-dag-1": dag_component, "comp-make": inner["component"]})
    spec["root"]["dag"]["outputs"] = {"parameters": {"r": {"valueFromParameter": {
        "producerSubtask": "dag-1", "outputParameterKey": "b"}}}}
    b = BundleBuilder(spec)
    dag = b.dag("dag-1", b.root())
    b.container("make", dag, outputs={"Output": "x"})
    t = by_name(map_run(b.bundle(), MULTI))
    assert [(e["parameterKey"], e["type"]) for e in json.loads(t["dag-1"].output_parameters)] == [
        ("a", "OUTPUT"), ("b", "OUTPUT")]
    assert json.loads(t["ROOT"].output_parameters) == [
        {"parameterKey": "r", "producer": {"taskName": "dag-1"}, "type": "OUTPUT", "value": "x"}]


def test_empty_loop_is_skipped_state():
    b = BundleBuilder(loop_spec())
    root = b.root(inputs={"items": []})
    b.dag("for-loop-1", root, iteration_count=0, state=2)
    t = by_name(map_run(b.bundle(), MULTI))
    assert t["for-loop-1"].state == SKIPPED
    assert json.loads(t["for-loop-1"].state_history)[0]["state"] == "SKIPPED"


# --- Run-level skips ----------------------------------------------------------------------------
def test_orphan_run_is_skipped_with_every_row_in_the_ledger():
    b = BundleBuilder(spec_with({"a": container("a")}), has_run=False)
    root = b.root()
    a = b.container("a", root)
    art = b.artifact("system.Dataset", "s3://x/y", "out")
    b.event(a, art, EVENT_OUTPUT, "out")
    rows = map_run(b.bundle(), MULTI)
    assert rows.skipped == "orphan-run" and rows.tasks == []
    assert {(e.entity, e.reason) for e in rows.ledger} == {("run", "orphan-run"), ("execution", "orphan-run"),
                                                          ("event", "orphan-run")}
    assert len(rows.ledger) == 1 + 2 + 1


@pytest.mark.parametrize("setup,reason", [
    (lambda b: b.container("a", b.root()) and b.executions.pop(0), "no-root-dag"),
    (lambda b: b.container("nope", b.root()), "unresolved-task-key"),
    (lambda b: b.container("x" * 129, b.root()), "unresolved-task-key"),
])
def test_run_level_skip_reasons(setup, reason):
    b = BundleBuilder(spec_with({"a": container("a")}))
    setup(b)
    assert map_run(b.bundle(), MULTI).skipped == reason


def test_name_too_long_without_a_spec():
    b = BundleBuilder(None)
    b.container("x" * 129, b.root())
    assert map_run(b.bundle(), MULTI).skipped == "identifier-too-long"


@pytest.mark.parametrize("run_ns,exp_ns,multi,expected", [
    ("team-a", "team-a", True, None), ("team-a", "team-b", True, "namespace-mismatch"),
    ("", "", True, "namespace-mismatch"), ("team-a", None, True, "namespace-mismatch"),
    ("team-a", "team-b", False, None), ("n" * 64, "n" * 64, True, "identifier-too-long"),
])
def test_effective_namespace(run_ns, exp_ns, multi, expected):
    b = BundleBuilder(spec_with({"a": container("a")}), namespace=run_ns, experiment_namespace=exp_ns)
    b.container("a", b.root())
    rows = map_run(b.bundle(), MapOptions(multi_user=multi))
    assert rows.skipped == expected
    if expected is None:
        assert {t.namespace for t in rows.tasks} == {run_ns if multi else ""}


def test_without_a_spec_the_run_is_mapped_with_a_note():
    b = BundleBuilder(None)
    root = b.root()
    b.container("a", root, display_name="Pretty A")
    rows = map_run(b.bundle(), MULTI)
    assert rows.skipped is None
    assert by_name(rows)["a"].display_name == "Pretty A"
    assert [e.reason for e in rows.ledger] == ["no-spec"]


# --- Artifacts (mapping.md §5) ------------------------------------------------------------------
def art(type_name, uri, key="out", first_type="system.ContainerExecution", **props):
    return MlmdArtifact(7, type_name, uri, 2, 1_767_225_600_123, 1_767_225_601_000, props, key,
                        first_type if key else None)


def test_metrics_are_split_one_row_per_numeric_key():
    rows, ledger = map_artifact(art("system.Metrics", "minio://x/metrics", "metrics", accuracy=0.9, epochs=3,
                                    display_name="metrics", store_session_info="{}"), "ns", RUN)
    assert [(r.name, r.type, r.number_value, json.loads(r.metadata), r.uri, r.uri_hash) for r in rows] == [
        ("accuracy", 6, 0.9, {"accuracy": 0.9}, None, ""), ("epochs", 6, 3.0, {"epochs": 3}, None, "")]
    assert len({r.uuid for r in rows}) == 2 and [e.reason for e in ledger] == ["split"]
    empty, ledger = map_artifact(art("system.Metrics", None, "metrics", display_name="m"), "ns", RUN)
    assert empty == [] and [e.reason for e in ledger] == ["empty-metrics"]


def test_artifact_columns():
    [row], _ = map_artifact(art("system.Model", "gs://b/m", "model", display_name="model", framework="sk",
                                tags={"list": ["a"]}, cfg={"struct": {"k": 1}}, store_session_info="{}"), "ns", RUN)
    assert (row.type, row.name, row.uri, row.description, row.identity_key) == (2, "model", "gs://b/m", "", None)
    assert row.uri_hash == hashlib.sha256(b"gs://b/m").hexdigest()
    assert json.loads(row.metadata) == {"framework": "sk", "tags": ["a"], "cfg": {"k": 1}}
    assert row.created_at == row.last_update == 1_767_225_600
    [custom], _ = map_artifact(art("google.VertexModel", "gs://b/v", "model", display_name="Mine"), "ns", RUN)
    assert custom.type == 1 and json.loads(custom.metadata) == {"_kfp_schema_title": "google.VertexModel",
                                                                "display_name": "Mine"}
    [cm], _ = map_artifact(art("system.ClassificationMetrics", "minio://x/cm", "cm", display_name="cm",
                               confusionMatrix={"struct": {"rows": []}}), "ns", RUN)
    assert (cm.type, cm.uri, cm.uri_hash, json.loads(cm.metadata)) == (7, None, "", {"confusionMatrix": {"rows": []}})
    [imported], _ = map_artifact(art("system.Dataset", "gs://data/shared/iris.csv?x=1", "artifact",
                                     "system.ImporterExecution"), "ns", RUN)
    assert imported.name == "iris.csv" and imported.metadata == "null"


@pytest.mark.parametrize("uri,name", [("gs://b/a/model.joblib", "model.joblib"), ("s3://b/dir/", "dir"),
                                      ("minio://bucket/x?y=1", "x"), ("oci://reg/img:tag", "img:tag")])
def test_infer_artifact_name(uri, name):
    assert infer_artifact_name(uri) == name


# --- Links, pods, TypeAttrs ---------------------------------------------------------------------
def test_links_types_and_producers():
    spec = spec_with({"a": container("a", artifacts_out={"data": "system.Dataset"}),
                      "b": container("b", artifacts_in={"data": {"taskOutputArtifact": {
                          "producerTask": "a", "outputArtifactKey": "data"}}})})
    b = BundleBuilder(spec)
    root = b.root()
    a = b.container("a", root, outputs={})
    c = b.container("b", root, outputs={})
    data = b.artifact("system.Dataset", "s3://x/data", "data")
    b.event(a, data, EVENT_OUTPUT, "data")
    b.event(c, data, EVENT_INPUT, "data")
    rows = map_run(b.bundle(), MULTI)
    t = by_name(rows)
    links = {(lk.task_id, lk.type): lk for lk in rows.links}
    out = links[(t["a"].uuid, 9)]
    inp = links[(t["b"].uuid, 2)]
    assert json.loads(out.producer) == {"taskName": "a"} and out.iteration == -1 and out.artifact_key == "data"
    assert json.loads(inp.producer) == {"taskName": "a"} and inp.artifact_id == out.artifact_id
    assert len({lk.uuid for lk in rows.links}) == len(rows.links) == 2


def test_pods_and_type_attrs():
    spec = spec_with({"a": container("a"), "imp": {"taskInfo": {"name": "imp"}, "componentRef": {"name": "comp-imp"}}},
                     {"comp-imp": {"executorLabel": "exec-imp"}})
    spec["deploymentSpec"]["executors"]["exec-a"] = {"container": {"image": "argostub/createpvc"}}
    b = BundleBuilder(spec)
    root = b.root()
    b.container("a", root, pod_name="drv", pod_uid="")
    b.execution("system.ImporterWorkspaceExecution", 3, None, task_name="imp", display_name="", parent_dag_id=root.id)
    t = by_name(map_run(b.bundle(), MULTI))
    assert json.loads(t["a"].pods) == [{"name": "drv", "type": "DRIVER"}]
    assert t["imp"].pods == "[]" and json.loads(t["imp"].type_attrs) == {"downloadToWorkspace": True}
    assert t["ROOT"].type_attrs == "{}" and t["a"].type_attrs == "null"
    assert t["ROOT"].display_name == "my run" and t["ROOT"].parent_task_uuid is None
    assert t["ROOT"].scope_path == "root" and t["ROOT"].type == ROOT


def test_status_metadata_keeps_plugin_properties():
    spec = spec_with({"a": container("a")})
    b = BundleBuilder(spec)
    b.container("a", b.root(), **{"plugins.mlflow.run_id": "r-1"})
    t = by_name(map_run(b.bundle(), MULTI))
    assert json.loads(t["a"].status_metadata) == {"customProperties": {"plugins.mlflow.run_id": "r-1"}}


def test_plugin_properties_are_where_the_plugins_write_them():
    """docs/mapping.md M27 (kfp-native-schema.md `tasks.StatusMetadata`, v3): containers and DAG-likes outside
    loop bodies keep their own; a DAG inside a loop body copies its parent's; ROOT and importers have none."""
    run_id = "plugins.mlflow.run_id"
    b = BundleBuilder(None)
    root = b.root(**{run_id: "root"})
    b.execution("system.ImporterExecution", 3, None, task_name="importer", display_name="", parent_dag_id=root.id,
                **{run_id: "importer"})
    loop = b.dag("for-loop-1", root, iteration_count=1, **{run_id: "loop"})
    iteration = b.dag("for-loop-1", loop, iteration_index=0)
    condition = b.dag("condition-2", iteration, **{run_id: "own"})
    b.container("work", condition, **{run_id: "work"})
    t = by_name(map_run(b.bundle(), MULTI))
    shown = {name: (json.loads(t[name].status_metadata) or {}).get("customProperties")
             for name in ("ROOT", "importer", "for-loop-1", "condition-2", "work")}
    assert shown == {"ROOT": None, "importer": None, "for-loop-1": {run_id: "loop"}, "condition-2": {run_id: "loop"},
                     "work": {run_id: "work"}}


# --- More rules: defaults, TASK_CONFIG, ONE_OF_OUTPUT, no-spec propagation, truncation, ledger reasons ----
def test_component_defaults_and_task_config_inputs():
    spec = spec_with({"a": container("a", inputs={"x": {"componentInputParameter": "p"}})})
    spec["components"]["comp-a"]["inputDefinitions"] = {"parameters": {
        "x": {"parameterType": "NUMBER_INTEGER"}, "y": {"parameterType": "STRING", "defaultValue": "dflt"},
        "cfg": {"parameterType": "TASK_CONFIG"}}}
    b = BundleBuilder(spec)
    root = b.root(inputs={"p": 4})
    b.container("a", root, inputs={"x": 4, "cfg": {"cpu": "1"}, "nothing": None})
    t = by_name(map_run(b.bundle(), MULTI))
    assert json.loads(t["a"].input_parameters) == [
        {"parameterKey": "x", "producer": {"taskName": "ROOT"}, "type": "COMPONENT_INPUT", "value": 4},
        {"parameterKey": "y", "producer": {"taskName": "ROOT"}, "type": "COMPONENT_DEFAULT_INPUT", "value": "dflt"}]


def test_condition_branch_outputs_are_one_of_output():
    branch_task = {"taskInfo": {"name": "condition-1"}, "componentRef": {"name": "comp-condition-1"},
                   "triggerPolicy": {"condition": "inputs.parameter_values['x'] == 'a'"}}
    spec = spec_with({"condition-1": branch_task}, {
        "comp-condition-1": {"dag": {"tasks": {"a": container("a")["task"]}, "outputs": {"parameters": {
            "out": {"valueFromParameter": {"producerSubtask": "a", "outputParameterKey": "Output"}}}}},
            "outputDefinitions": {"parameters": {"out": {"parameterType": "STRING"}}}},
        "comp-a": {"executorLabel": "e"}})
    b = BundleBuilder(spec)
    root = b.root()
    cond = b.dag("condition-1", root)
    b.container("a", cond, outputs={"Output": "v"})
    t = by_name(map_run(b.bundle(), MULTI))
    assert t["condition-1"].type == CONDITION_BRANCH
    assert json.loads(t["condition-1"].output_parameters) == [
        {"parameterKey": "out", "producer": {"taskName": "a"}, "type": "ONE_OF_OUTPUT", "value": "v"}]


def test_without_a_spec_dag_outputs_come_from_the_producer_properties():
    b = BundleBuilder(None)
    root = b.root()
    sub = b.dag("sub", root, parameter_producer_task={
        "summary": json.dumps({"valueFromParameter": {"producerSubtask": "mk", "outputParameterKey": "Output"}})},
        artifact_producer_task=json.dumps({"report": {"artifact_selectors": [
            {"producer_subtask": "mk", "output_artifact_key": "report"}]}}))
    mk = b.container("mk", sub, outputs={"Output": "s"})
    report = b.artifact("system.Dataset", "s3://r", "report")
    b.event(mk, report, EVENT_OUTPUT, "report")
    rows = map_run(b.bundle(), MULTI)
    t = by_name(rows)
    assert json.loads(t["sub"].output_parameters)[0]["parameterKey"] == "summary"
    [derived] = [lk for lk in rows.links if lk.task_id == t["sub"].uuid]
    assert (derived.artifact_key, derived.type, derived.mlmd_event_id) == ("report", 9, None)


def test_cached_task_inside_a_loop_links_its_outputs_as_iterator_output():
    b = BundleBuilder(loop_spec())
    root = b.root()
    loop = b.dag("for-loop-1", root, iteration_count=1)
    it = b.dag("for-loop-1", loop, iteration_index=0, inputs={"item": "p"})
    work = b.container("work", it, state=5, outputs={"Output": "o"})
    data = b.artifact("system.Dataset", "s3://d", "data")
    b.event(work, data, EVENT_OUTPUT, "data")
    rows = map_run(b.bundle(), MULTI)
    [link] = [lk for lk in rows.links if lk.mlmd_event_id is not None]
    assert link.type == 8 and link.iteration == 0


def test_display_name_is_cut_with_a_ledger_entry():
    b = BundleBuilder(spec_with({"a": container("a")}))
    b.run = dataclasses.replace(b.run, display_name="d" * 200)
    b.container("a", b.root())
    rows = map_run(b.bundle(), MULTI)
    assert len(by_name(rows)["ROOT"].display_name) == 128
    assert [e.reason for e in rows.ledger] == ["truncated"]


def test_ledger_reasons_for_rows_that_cannot_become_targets():
    b = BundleBuilder(spec_with({"a": container("a")}))
    root = b.root()
    a = b.container("a", root)
    stray = b.container("a", root)  # noqa: F841 (a retry: superseded)
    tfx = b.execution("tfx.Trainer", 3, None, task_name="t", parent_dag_id=root.id)
    detached = b.container("ghost", b.executions[0], parent_dag_id=999)
    nokey = b.artifact("system.Dataset", "s3://n", "out")
    keyless = b.event(a, nokey, EVENT_OUTPUT, None)
    missing = b.event(a, nokey, EVENT_INPUT, "in")
    bundle = b.bundle()
    del bundle.artifacts[nokey.id]
    rows = map_run(bundle, MULTI)
    reasons = {(e.entity, e.mlmd_id): e.reason for e in rows.ledger}
    assert reasons[("execution", tfx.id)] == "unsupported-type"
    assert reasons[("execution", detached.id)] == "detached-execution"
    assert reasons[("execution", a.id)] == "superseded-attempt"
    assert reasons[("event", missing.id)] == "missing-artifact"
    assert reasons[("event", keyless.id)] == "no-path-key"


def test_loop_without_a_count_skips_the_run():
    b = BundleBuilder(loop_spec())
    b.dag("for-loop-1", b.root())
    assert map_run(b.bundle(), MULTI).skipped == "loop-without-count"


def test_a_value_too_long_is_the_reason_even_where_an_earlier_row_holds_a_nul():
    """docs/mapping.md M20: with a NUL in a task's DisplayName (tasks come first) and an artifact value
    over the packet limit, the run is skipped as `value-too-long` whatever the row order."""
    b = BundleBuilder(None)
    root = b.root()
    task = b.container("a", root, display_name="shown\x00here")
    data = b.artifact("system.Dataset", "gs://b/data.csv", "out", notes="n" * 5000)
    b.event(task, data, 4, "out")
    rows = map_run(b.bundle(), MapOptions(multi_user=True, max_value_bytes=4000))
    assert rows.skipped == "value-too-long"
    [entry] = [e for e in rows.ledger if e.entity == "run"]
    assert "artifacts.Metadata" in entry.detail
    nul_only = map_run(b.bundle(), MapOptions(multi_user=True))  # no packet limit: the NUL is the reason
    assert nul_only.skipped == "unstorable-value"
