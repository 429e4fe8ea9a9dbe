"""Golden tests: the sample's runs mapped, checked field by field against what the MLMD-free runtime
writes for these pipelines (kfp-native-schema.md §3.2-§3.5, mapping.md §4-§6).

The sample is written once into SQLite (the mapping is backend-independent; `plan` is checked on
every backend in tests/migrate). Expectations are derived by hand from the compiled IR in
mlmd2kfp/sample/pipelines/ (see INDEX.md there).
"""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import create_engine

pytest.importorskip("ml_metadata")

from mlmd2kfp.mappers import MapOptions, map_run  # noqa: E402
from mlmd2kfp.mappers.keys import logical_key, task_id  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.source.reader import MlmdReader  # noqa: E402

ROOT, RUNTIME, CONDITION_BRANCH, LOOP, IMPORTER, DAG = 1, 2, 3, 5, 7, 8
RUNNING, SUCCEEDED, SKIPPED, FAILED, CACHED = 1, 2, 3, 4, 5
TASK_OUTPUT_INPUT, COMPONENT_INPUT, COLLECTED_INPUTS, ITERATOR_OUTPUT, OUTPUT = 2, 3, 5, 8, 9


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    mlmd_url, kfp_url = f"sqlite:///{d}/m.sqlite", f"sqlite:///{d}/k.sqlite"
    report = write_sample(mlmd_url, kfp_url, seed=1)
    out = {}
    m, k = create_engine(mlmd_url), create_engine(kfp_url)
    with m.connect() as mc, k.connect() as kc:
        bundles = {b.run_id: b for b in MlmdReader(mc, kc, page_runs=3).run_bundles()}
    for record in report.runs:
        if record.run_id in bundles:
            bundle = bundles[record.run_id]
            out[record.scenario] = (bundle, map_run(bundle, MapOptions(multi_user=True)))
    return out


class View:
    def __init__(self, bundle, rows):
        self.bundle, self.rows = bundle, rows
        self.by_id = {t.uuid: t for t in rows.tasks}
        self.artifacts = {a.uuid: a for a in rows.artifacts}

    def tasks(self, scope):
        return [t for t in self.rows.tasks if t.scope_path == scope]

    def task(self, scope, iteration=None):
        found = [t for t in self.tasks(scope)
                 if iteration is None or (json.loads(t.type_attrs) or {}).get("iterationIndex") == str(iteration)]
        assert len(found) == 1, (scope, iteration, len(found))
        return found[0]

    def links(self, task, io_type=None):
        return [lk for lk in self.rows.links if lk.task_id == task.uuid and (io_type is None or lk.type == io_type)]

    def params(self, task, column):
        return json.loads(getattr(task, column)) or []

    def execution(self, task):
        return {e.id: e for e in self.bundle.executions}[task.mlmd_execution_ids[-1]]


def view(mapped, scenario):
    return View(*mapped[scenario])


def test_training_run(mapped):
    v = view(mapped, "training")
    run = v.bundle.run
    root = v.task("root")
    assert (root.name, root.type, root.display_name, root.parent_task_uuid) == ("ROOT", ROOT, run.display_name, None)
    assert root.uuid == task_id(None, run.uuid, "ROOT", None, context_id=v.bundle.context_id)
    assert root.logical_key == logical_key(run.uuid, None, "root", "ROOT", ROOT, None)
    assert root.type_attrs == "{}" and root.pods == "[]" and root.state == SUCCEEDED
    assert [(e["parameterKey"], e["type"], e["producer"]) for e in v.params(root, "input_parameters")] == [
        ("epochs", "RUNTIME_VALUE_INPUT", {"taskName": "ROOT"}), ("message", "RUNTIME_VALUE_INPUT", {"taskName": "ROOT"}),
        ("rows", "RUNTIME_VALUE_INPUT", {"taskName": "ROOT"})]
    pre, train = v.task("root.preprocess"), v.task("root.train")
    for t in (pre, train):
        e = v.execution(t)
        assert (t.type, t.state, t.parent_task_uuid, t.display_name) == (RUNTIME, SUCCEEDED, root.uuid, t.name)
        assert t.fingerprint == e.props["cache_fingerprint"]
        assert json.loads(t.pods) == [{"name": e.props["pod_name"], "type": "EXECUTOR", "uid": e.props["pod_uid"]}]
        assert (t.created_at, t.finished_at, t.started_at) == (e.create_ms // 1000, e.update_ms // 1000, 0)
        assert [h["state"] for h in json.loads(t.state_history)] == ["RUNNING", "SUCCEEDED"]
        assert t.type_attrs == "null" and t.status_metadata == "null"
        assert v.params(t, "output_parameters") == [
            {"parameterKey": "Output", "producer": {"taskName": t.name}, "type": "OUTPUT",
             "value": e.props["outputs"]["Output"]}]
    assert v.params(train, "input_parameters") == [
        {"parameterKey": "epochs", "producer": {"taskName": "ROOT"}, "type": "COMPONENT_INPUT", "value": 5}]
    [dataset_in] = v.links(train, TASK_OUTPUT_INPUT)
    assert json.loads(dataset_in.producer) == {"taskName": "preprocess"} and dataset_in.artifact_key == "dataset"
    outs = {(lk.artifact_key, v.artifacts[lk.artifact_id].name) for lk in v.links(train, OUTPUT)}
    assert outs == {("model", "model"), ("classification_metrics", "classification_metrics"),
                    ("executor-logs", "executor-logs"), ("metrics", "accuracy"), ("metrics", "precision"),
                    ("metrics", "recall"), ("metrics", "f1"), ("metrics", "epochs")}
    metric_rows = [v.artifacts[lk.artifact_id] for lk in v.links(train, OUTPUT) if lk.artifact_key == "metrics"]
    assert all(a.type == 6 and a.uri is None and a.uri_hash == "" and a.number_value is not None for a in metric_rows)
    [cm] = [v.artifacts[lk.artifact_id] for lk in v.links(train, OUTPUT) if lk.artifact_key == "classification_metrics"]
    meta = json.loads(cm.metadata)
    assert cm.type == 7 and cm.uri is None and set(meta) == {"confusionMatrix", "confidenceMetrics"}
    assert isinstance(meta["confidenceMetrics"], list) and "rows" in meta["confusionMatrix"]  # wrappers removed
    [model] = [v.artifacts[lk.artifact_id] for lk in v.links(train, OUTPUT) if lk.artifact_key == "model"]
    assert model.type == 2 and json.loads(model.metadata) == {"calibrated": 1, "framework": "sklearn"}
    assert model.namespace == "team-a" and model.uri.endswith("/train/" + model.uri.split("/")[-2] + "/model")


def test_cache_hit_run(mapped):
    v, source = view(mapped, "cache-hit"), view(mapped, "training")
    assert v.task("root").state == CACHED
    for scope in ("root.preprocess", "root.train"):
        t, original = v.task(scope), source.task(scope)
        assert t.state == CACHED and t.pods == "[]" and json.loads(t.status_metadata) == {}
        assert t.fingerprint == original.fingerprint and t.uuid != original.uuid
        assert json.loads(t.state_history) == [{"state": "CACHED", "updateTime": json.loads(t.state_history)[0]["updateTime"]}]
        # the links point at the original run's artifact rows (same namespace → same rows)
        assert {lk.artifact_id for lk in v.links(t, OUTPUT)} == {lk.artifact_id for lk in source.links(original, OUTPUT)}
        assert v.params(t, "output_parameters") == source.params(original, "output_parameters")


def test_control_flow_tree(mapped):
    v = view(mapped, "control-flow")
    expected = {
        "root": (ROOT, SUCCEEDED, 1), "root.flip-coin": (RUNTIME, SUCCEEDED, 1),
        "root.condition-branches-6": (DAG, SUCCEEDED, 1),
        "root.condition-branches-6.condition-7": (CONDITION_BRANCH, SUCCEEDED, 1),
        "root.condition-branches-6.condition-7.print-heads": (RUNTIME, SUCCEEDED, 1),
        "root.condition-branches-6.condition-8": (CONDITION_BRANCH, SKIPPED, 1),
        "root.condition-branches-6.condition-9": (CONDITION_BRANCH, SKIPPED, 1),
        "root.for-loop-1": (LOOP, SUCCEEDED, 1), "root.for-loop-1.process-item": (RUNTIME, SUCCEEDED, 3),
        "root.for-loop-1.condition-2": (CONDITION_BRANCH, None, 3),
        "root.for-loop-1.condition-2.handle-large-item": (RUNTIME, SUCCEEDED, 2),
        "root.for-loop-1.for-loop-4": (DAG, SUCCEEDED, 3),  # a nested loop is DAG (v3)
        "root.for-loop-1.for-loop-4.combine": (RUNTIME, SUCCEEDED, 6),
        "root.aggregate": (RUNTIME, SUCCEEDED, 1), "root.for-loop-5": (LOOP, SKIPPED, 1),
        "root.report-pipeline": (DAG, SUCCEEDED, 1), "root.report-pipeline.make-report": (RUNTIME, SUCCEEDED, 1),
        "root.consume-report": (RUNTIME, SUCCEEDED, 1),
    }
    assert sorted({t.scope_path for t in v.rows.tasks}) == sorted(expected)
    for scope, (task_type, state, count) in expected.items():
        tasks = v.tasks(scope)
        assert len(tasks) == count, scope
        assert all(t.type == task_type for t in tasks), scope
        if state is not None:
            assert all(t.state == state for t in tasks), scope
    # the condition inside the loop: not taken for item 1 (iteration 0), taken for 2 and 3
    assert [v.task("root.for-loop-1.condition-2", i).state for i in range(3)] == [SKIPPED, SUCCEEDED, SUCCEEDED]
    assert [v.task("root.for-loop-1.condition-2", i).display_name for i in range(3)] == ["Condition Branch"] * 3
    assert v.task("root.for-loop-1").display_name == "Loop"
    assert v.task("root.condition-branches-6").display_name == "condition-branches-6"
    assert len({t.logical_key for t in v.rows.tasks}) == len(v.rows.tasks) == 30


def test_loops(mapped):
    v = view(mapped, "control-flow")
    loop = v.task("root.for-loop-1")
    assert json.loads(loop.type_attrs) == {"iterationCount": "3"}
    iterator = [e for e in v.params(loop, "input_parameters") if e["type"] == "ITERATOR_INPUT"]
    assert [(e["producer"], e["value"]) for e in iterator] == [
        ({"iteration": str(i), "taskName": "for-loop-1"}, i + 1) for i in range(3)]
    for i in range(3):
        inner = v.task("root.for-loop-1.for-loop-4", i)
        assert inner.parent_task_uuid == loop.uuid
        # (v3) a nested loop: DAG with its taskInfo name, both its count and the outer index
        assert (inner.type, inner.display_name) == (DAG, "for-loop-4")
        assert json.loads(inner.type_attrs) == {"iterationCount": "2", "iterationIndex": str(i)}
        combines = [t for t in v.tasks("root.for-loop-1.for-loop-4.combine") if t.parent_task_uuid == inner.uuid]
        assert sorted(json.loads(c.type_attrs)["iterationIndex"] for c in combines) == ["0", "1"]
        for c in combines:
            j = json.loads(c.type_attrs)["iterationIndex"]
            ins = {e["parameterKey"]: e for e in v.params(c, "input_parameters")}
            assert ins["suffix"]["producer"] == {"iteration": j, "taskName": "for-loop-4"}
            assert ins["suffix"]["value"] == "ab"[int(j)] and ins["item"]["value"] == i + 1
            assert v.params(c, "output_parameters")[0]["type"] == "ITERATOR_OUTPUT"
        item = v.task("root.for-loop-1.process-item", i)
        assert v.params(item, "input_parameters") == [
            {"parameterKey": "item", "producer": {"iteration": str(i), "taskName": "for-loop-1"},
             "type": "COMPONENT_INPUT", "value": i + 1}]
        assert v.links(item, OUTPUT) == []  # (v3) an output inside a loop body is ITERATOR_OUTPUT
        [produced] = [lk for lk in v.links(item, ITERATOR_OUTPUT) if lk.artifact_key == "processed"]
        assert json.loads(produced.producer) == {"iteration": str(i), "taskName": "process-item"}
        assert produced.iteration == i
    # propagated outputs of the loop (dsl.Collected): ITERATOR_OUTPUT, one per iteration
    derived = v.links(loop, ITERATOR_OUTPUT)
    assert sorted((lk.iteration, lk.artifact_key, lk.mlmd_event_id) for lk in derived) == [
        (i, "pipelinechannel--process-item-processed", None) for i in range(3)]
    assert [e["producer"] for e in v.params(loop, "output_parameters")] == [
        {"iteration": str(i), "taskName": "process-item"} for i in range(3)]
    aggregate = v.task("root.aggregate")
    collected = v.links(aggregate, COLLECTED_INPUTS)
    assert len(collected) == 3 and {json.loads(lk.producer)["taskName"] for lk in collected} == {"for-loop-1"}
    assert {lk.artifact_id for lk in collected} == {lk.artifact_id for lk in derived}
    [labels] = v.params(aggregate, "input_parameters")
    assert (labels["type"], labels["producer"]) == ("COLLECTED_INPUTS", {"taskName": "for-loop-1"})
    empty = v.task("root.for-loop-5")
    assert json.loads(empty.type_attrs) == {"iterationCount": "0"}
    assert [h["state"] for h in json.loads(empty.state_history)] == ["SKIPPED"]
    assert sum(1 for e in v.rows.ledger if e.reason == "flattened-iteration") == 9


def test_conditions_and_dag_outputs(mapped):
    v = view(mapped, "control-flow")
    branch = v.task("root.condition-branches-6")
    [face] = v.params(branch, "input_parameters")
    assert (face["type"], face["producer"], face["value"]) == ("TASK_OUTPUT_INPUT", {"taskName": "flip-coin"}, "heads")
    heads = v.task("root.condition-branches-6.condition-7.print-heads")
    assert v.params(heads, "input_parameters")[0]["producer"] == {"taskName": "flip-coin"}
    for skipped in ("condition-8", "condition-9"):
        t = v.task(f"root.condition-branches-6.{skipped}")
        assert t.finished_at == t.created_at and len(json.loads(t.state_history)) == 1  # childless: own create time
    nested = v.task("root.report-pipeline")
    make = v.task("root.report-pipeline.make-report")
    produced = v.params(make, "output_parameters")[0]["value"]
    assert v.params(nested, "output_parameters") == [
        {"parameterKey": "summary", "producer": {"taskName": "make-report"}, "type": "OUTPUT", "value": produced}]
    [report_link] = v.links(nested, OUTPUT)
    assert report_link.mlmd_event_id is None and json.loads(report_link.producer) == {"taskName": "make-report"}
    consumer = v.task("root.consume-report")
    [summary] = v.params(consumer, "input_parameters")
    assert (summary["type"], summary["producer"]) == ("TASK_OUTPUT_INPUT", {"taskName": "make-report"})
    [report_in] = v.links(consumer, TASK_OUTPUT_INPUT)
    assert report_in.artifact_id == report_link.artifact_id and json.loads(report_in.producer) == {"taskName": "make-report"}


def test_exit_handler_and_failed_task(mapped):
    """Repetition 0's failed run was terminated while its exit task ran: in MLMD `exit-op` and the root
    DAG never finished; the run is FAILED (mapping.md §4 `State`, docs/mapping.md M1)."""
    v = view(mapped, "failed")
    root, handler = v.task("root"), v.task("root.exit-handler-1")
    fail, exit_op = v.task("root.exit-handler-1.fail-op"), v.task("root.exit-op")
    finished = v.bundle.run.finished_at
    assert finished > 0
    assert (handler.type, handler.state, handler.display_name) == (DAG, FAILED, "cleanup-handler")
    assert handler.status_metadata == "null"  # FAILED by propagation: no message
    assert (fail.state, json.loads(fail.status_metadata)) == (FAILED, {
        "message": "failed (migrated from ML Metadata; no error text recorded)"})
    assert fail.output_parameters == "null"
    assert len(v.links(fail, OUTPUT)) == 3  # executor-logs of the three Argo attempts
    # the exit task never finished: FAILED at the run's end, with the rule's message
    assert exit_op.parent_task_uuid == root.uuid
    assert (exit_op.state, exit_op.finished_at) == (FAILED, finished)
    assert json.loads(exit_op.status_metadata) == {"message": "never finished (run FAILED)"}
    history = json.loads(exit_op.state_history)
    assert [h["state"] for h in history] == ["RUNNING", "FAILED"]
    assert history[1]["updateTime"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(finished))
    status = {e["parameterKey"]: e for e in v.params(exit_op, "input_parameters")}["status"]
    assert status["type"] == "TASK_FINAL_STATUS_OUTPUT" and status["producer"] == {"taskName": "ROOT"}
    assert status["value"]["pipelineTaskName"] == "exit-handler-1"
    # ROOT, RUNNING in MLMD, is derived again from its (now all FAILED) children: FAILED, no message
    assert v.execution(root).state == 2  # MLMD RUNNING
    assert (root.state, root.finished_at, root.status_metadata) == (FAILED, finished, "null")
    assert [h["state"] for h in json.loads(root.state_history)] == ["RUNNING", "FAILED"]
    assert not v.tasks("root.exit-handler-1.print-op")


def test_retried_run(mapped):
    v = view(mapped, "retried")
    [fail] = v.tasks("root.exit-handler-1.fail-op")
    assert len(fail.mlmd_execution_ids) == 2 and fail.state == SUCCEEDED
    assert [h["state"] for h in json.loads(fail.state_history)] == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]
    assert v.task("root.exit-handler-1").state == SUCCEEDED and v.task("root").state == SUCCEEDED
    [superseded] = [e for e in v.rows.ledger if e.reason == "superseded-attempt"]
    assert superseded.mlmd_id == fail.mlmd_execution_ids[0]
    print_op = v.task("root.exit-handler-1.print-op")
    assert v.params(print_op, "input_parameters")[0]["producer"] == {"taskName": "fail-op"}


def test_importers(mapped):
    first, second = view(mapped, "importer"), view(mapped, "importer-reuse")
    imp1, imp2 = first.task("root.importer"), second.task("root.importer")
    assert (imp1.type, imp1.display_name, json.loads(imp1.type_attrs)) == (IMPORTER, "importer",
                                                                          {"downloadToWorkspace": False})
    [l1], [l2] = first.links(imp1, OUTPUT), second.links(imp2, OUTPUT)
    assert l1.artifact_id == l2.artifact_id  # the reused artifact: one row in the namespace
    row = first.artifacts[l1.artifact_id]
    # names as Go's inferArtifactName gives them (mapping.md §5): a trailing slash names the directory
    assert (row.name, row.type, row.uri, row.identity_key) == ("iris", 3, "gs://ml-data/shared/iris/", None)
    assert json.loads(row.metadata) == {"rows": 150, "source": "gcs"}
    ws = first.task("root.importer-3")
    assert json.loads(ws.type_attrs) == {"downloadToWorkspace": True}
    [w] = first.links(ws, OUTPUT)
    assert (first.artifacts[w.artifact_id].name, first.artifacts[w.artifact_id].uri) == (".", "s3://ml-data-wine")
    [r1], [r2] = first.links(first.task("root.importer-2"), OUTPUT), second.links(second.task("root.importer-2"), OUTPUT)
    assert r1.artifact_id != r2.artifact_id  # reimport=True
    model = first.artifacts[r1.artifact_id]  # Go's url.Parse decodes the path's percent-escapes
    assert (model.name, model.uri) == ("model final.joblib", "gs://ml-models/iris%20v1/model%20final.joblib")
    evaluate = first.task("root.evaluate")
    assert sorted((lk.artifact_key, json.loads(lk.producer)["taskName"]) for lk in first.links(evaluate, TASK_OUTPUT_INPUT)) == [
        ("dataset", "importer"), ("model", "importer-2")]


def test_in_flight_run(mapped):
    v = view(mapped, "in-flight")
    train = v.task("root.train")
    assert (train.state, train.finished_at) == (RUNNING, 0)
    assert json.loads(train.state_history) == [{"state": "RUNNING", "updateTime": json.loads(train.state_history)[0]["updateTime"]}]
    assert v.task("root").state == RUNNING and v.links(train, OUTPUT) == []


def test_spec_only_in_pipeline_version(mapped):
    bundle, rows = mapped["spec-in-pipeline-version"]
    assert bundle.spec_source == "pipeline_version" and rows.skipped is None
    assert {t.scope_path for t in rows.tasks} == {"root", "root.preprocess", "root.train"}
    assert {t.namespace for t in rows.tasks} == {"kubeflow-user-example-com"}


def test_a_retried_task_with_the_same_input_on_each_attempt(mapped):
    """`train` failed and the run was retried: two attempts, each with an INPUT event for the dataset.
    One task, one TASK_OUTPUT_INPUT link (never COLLECTED_INPUTS), the second event `merged-link`."""
    v = view(mapped, "spec-in-pipeline-version")
    train, pre = v.task("root.train"), v.task("root.preprocess")
    assert len(train.mlmd_execution_ids) == 2 and train.state == SUCCEEDED
    assert [h["state"] for h in json.loads(train.state_history)] == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]
    [link] = [lk for lk in v.links(train) if lk.type not in (OUTPUT,)]
    assert (link.type, link.artifact_key, json.loads(link.producer)) == (TASK_OUTPUT_INPUT, "dataset",
                                                                         {"taskName": "preprocess"})
    assert [lk.artifact_id for lk in v.links(pre, OUTPUT) if lk.artifact_key == "output_dataset"] == [link.artifact_id]
    reasons = sorted((e.entity, e.reason) for e in v.rows.ledger if e.reason != "split")  # split: the metrics
    assert reasons == [("event", "merged-link"), ("execution", "superseded-attempt")]


def test_orphan_run_is_skipped(mapped):
    bundle, rows = mapped["orphan"]
    assert rows.skipped == "orphan-run" and rows.tasks == [] and rows.links == []
    assert len(rows.ledger) == 1 + len(bundle.executions) + len(bundle.events)
