"""Every scenario of the sample, asserted by reading MLMD back through ml-metadata's API (issue #2).

Event.Type: 3 INPUT, 4 OUTPUT. Execution.State: 2 RUNNING, 3 COMPLETE, 4 FAILED, 5 CACHED, 6 CANCELED.
"""

from __future__ import annotations

import json

import yaml
from sqlalchemy import create_engine, text

from tests.helpers import sql_rows
from tests.sample.conftest import props

INPUT, OUTPUT = 3, 4
RUNNING, COMPLETE, FAILED, CACHED, CANCELED = 2, 3, 4, 5, 6


def _kfp(sample, sql: str, **params):
    return sql_rows(sample.kfp_url, sql, **params)


def test_schema_version_10_read_back_by_ml_metadata(sample):
    engine = create_engine(sample.mlmd_url)
    table = "mlmdenv" if sample.backend == "postgresql" else "MLMDEnv"
    with engine.connect() as conn:
        assert conn.execute(text(f"SELECT schema_version FROM {table}")).scalar() == 10
    engine.dispose()
    # The library refuses a store of another schema version (no upgrade): reading proves it is 10.
    runs = sample.store.get_contexts_by_type("system.PipelineRun")
    assert len(runs) == 12
    assert {t.name for t in sample.store.get_execution_types()} >= {
        "system.DAGExecution", "system.ContainerExecution", "system.ImporterExecution",
        "system.ImporterWorkspaceExecution"}


def test_contexts_and_namespaces_multi_user(sample):
    runs = sample.store.get_contexts_by_type("system.PipelineRun")
    namespaces = {props(c)["namespace"] for c in runs}
    assert namespaces == {"team-a", "team-b", "kubeflow-user-example-com"}
    for ctx in runs:
        p = props(ctx)
        assert p["resource_name"] == "run-resource"
        assert p["pipeline_root"].endswith(f"/{ctx.name}")
        assert json.loads(p["store_session_info"])["Provider"] == "minio"
        assert list(json.loads(p["store_session_info"])) == ["Provider", "Params"]
        [parent] = sample.store.get_parent_contexts_by_context(ctx.id)
        assert parent.type == "system.Pipeline" and p["pipeline_root"].split("/")[-2] == parent.name
    rows = _kfp(sample, "SELECT r.\"UUID\" AS u, r.\"Namespace\" AS ns, e.\"Namespace\" AS ens FROM run_details r "
                        "JOIN experiments e ON e.\"UUID\" = r.\"ExperimentUUID\"")
    assert rows and all(r["ns"] == r["ens"] != "" for r in rows)
    assert {r["ns"] for r in rows} == namespaces


def test_single_user_has_empty_namespaces(single_user_sample):
    s = single_user_sample
    rows = _kfp(s, "SELECT r.\"Namespace\" AS ns, e.\"Namespace\" AS ens FROM run_details r "
                   "JOIN experiments e ON e.\"UUID\" = r.\"ExperimentUUID\"")
    assert rows and all(r["ns"] == "" and r["ens"] == "" for r in rows)
    assert {props(c)["namespace"] for c in s.store.get_contexts_by_type("system.PipelineRun")} == {"kubeflow"}
    # Cache rows keep the launcher pod's namespace even in single-user mode.
    cache_ns = _kfp(s, "SELECT DISTINCT \"Namespace\" AS ns FROM tasks WHERE \"MLMDExecutionID\" <> ''")
    assert [r["ns"] for r in cache_ns] == ["kubeflow"]


def test_plain_container_tasks(sample):
    run = sample.run("training")
    root = run.root()
    assert root.name == f"run/{run.context.name}" and root.type == "system.DAGExecution"
    assert props(root)["task_name"] == "" and root.last_known_state == RUNNING  # ≥ 2.17: never updated
    assert props(root)["inputs"]["rows"] == 100
    for task in ("preprocess", "train"):
        execution = run.one(task)
        p = props(execution)
        assert execution.type == "system.ContainerExecution" and execution.last_known_state == COMPLETE
        assert p["parent_dag_id"] == root.id and p["display_name"] == task
        assert p["pod_name"].startswith(run.context.name[:0]) and p["pod_name"] and p["pod_uid"]
        assert p["namespace"] == "team-a" and p["image"] == ""
        assert len(p["cache_fingerprint"]) == 64
        assert "outputs" in p
        keys = [e.path.steps[0].key for e in run.events_of(execution, OUTPUT)]
        assert "executor-logs" in keys
    train = run.one("train")
    [inp] = run.events_of(train, INPUT)
    assert inp.path.steps[0].key == "dataset"
    [produced] = [e for e in run.events_of(run.one("preprocess"), OUTPUT) if e.path.steps[0].key == "output_dataset"]
    assert produced.artifact_id == inp.artifact_id
    # every v2 execution has exactly two associations (pipeline and run context)
    for execution in run.executions:
        assert len(sample.store.get_contexts_by_execution(execution.id)) == 2


def test_system_metrics_with_several_keys(sample):
    run = sample.run("training")
    [event] = [e for e in run.events_of(run.one("train"), OUTPUT) if e.path.steps[0].key == "metrics"]
    [metrics] = run.artifacts([event.artifact_id])
    assert metrics.type == "system.Metrics" and metrics.state == 2
    p = props(metrics)
    numeric = {k: v for k, v in p.items() if k not in ("display_name", "store_session_info")}
    assert len(numeric) >= 4 and all(isinstance(v, float) for v in numeric.values())
    assert all(round(v, 6) == v for v in numeric.values())  # MLMD keeps 6 decimals
    assert p["display_name"] == "metrics"


def test_classification_metrics(sample):
    run = sample.run("training")
    [event] = [e for e in run.events_of(run.one("train"), OUTPUT)
               if e.path.steps[0].key == "classification_metrics"]
    [artifact] = run.artifacts([event.artifact_id])
    assert artifact.type == "system.ClassificationMetrics"
    p = props(artifact)
    assert set(p["confusionMatrix"]) == {"struct"} and "annotationSpecs" in p["confusionMatrix"]["struct"]
    assert set(p["confidenceMetrics"]) == {"list"} and len(p["confidenceMetrics"]["list"]) == 3
    model_event = [e for e in run.events_of(run.one("train"), OUTPUT) if e.path.steps[0].key == "model"][0]
    [model] = run.artifacts([model_event.artifact_id])
    assert model.custom_properties["calibrated"].int_value == 1  # bools become int_value 0/1


def test_cache_hit_points_at_another_runs_artifacts(sample):
    source, hit = sample.run("training"), sample.run("cache-hit")
    for task in ("preprocess", "train"):
        cached = hit.one(task)
        p = props(cached)
        assert cached.last_known_state == CACHED
        assert p["cached_execution_id"] == str(source.one(task).id)
        assert p["pod_name"] == "" and p["cache_fingerprint"] == props(source.one(task))["cache_fingerprint"]
        assert p["outputs"] == props(source.one(task))["outputs"]
        hit_outputs = {e.artifact_id for e in hit.events_of(cached, OUTPUT)}
        assert hit_outputs == {e.artifact_id for e in source.events_of(source.one(task), OUTPUT)}
        for artifact_id in hit_outputs:  # attributed to both runs now
            runs = {c.name for c in sample.store.get_contexts_by_artifact(artifact_id) if c.type == "system.PipelineRun"}
            assert runs == {source.context.name, hit.context.name}


def test_nested_pipeline_and_dag_outputs(sample):
    run = sample.run("control-flow")
    dag = run.one("report-pipeline")
    p = props(dag)
    assert dag.type == "system.DAGExecution" and p["parent_dag_id"] == run.root().id
    assert p["total_dag_tasks"] == 1
    assert json.loads(p["parameter_producer_task"]["summary"]) == {
        "valueFromParameter": {"producerSubtask": "make-report", "outputParameterKey": "Output"}}
    assert json.loads(p["artifact_producer_task"]) == {
        "report": {"artifact_selectors": [{"producer_subtask": "make-report", "output_artifact_key": "report"}]}}
    [child] = run.children(dag)
    assert props(child)["task_name"] == "make-report"
    consumer = run.one("consume-report")
    [inp] = run.events_of(consumer, INPUT)
    [out] = [e for e in run.events_of(child, OUTPUT) if e.path.steps[0].key == "report"]
    assert inp.artifact_id == out.artifact_id and inp.path.steps[0].key == "report"
    assert props(consumer)["inputs"]["summary"] == props(child)["outputs"]["Output"]


def test_parallel_for_with_three_iterations(sample):
    run = sample.run("control-flow")
    loops = run.by_task("for-loop-1")
    [loop] = [e for e in loops if "iteration_count" in props(e)]
    assert props(loop)["iteration_count"] == 3 and props(loop)["total_dag_tasks"] == 3
    iterations = run.children(loop)
    assert [props(i)["iteration_index"] for i in iterations] == [0, 1, 2]
    for index, it in enumerate(iterations):
        assert props(it)["task_name"] == "for-loop-1"
        assert props(it)["inputs"]["pipelinechannel--items-loop-item"] == index + 1
        assert {props(c)["task_name"] for c in run.children(it)} == {"process-item", "condition-2", "for-loop-4"}
    # dsl.Collected: the consumer gets one INPUT event per iteration's artifact, same key
    aggregate = run.one("aggregate")
    keys = [e.path.steps[0].key for e in run.events_of(aggregate, INPUT)]
    assert keys == ["datasets"] * 3
    assert len(props(aggregate)["inputs"]["labels"]) == 3
    # the condition inside the loop body: not taken for item 1
    states = {props(i)["iteration_index"]: [c.last_known_state for c in run.children(i)
                                             if props(c)["task_name"] == "condition-2"][0] for i in iterations}
    assert states == {0: CANCELED, 1: COMPLETE, 2: COMPLETE}


def test_nested_parallel_for(sample):
    run = sample.run("control-flow")
    inner_loops = [e for e in run.by_task("for-loop-4") if "iteration_count" in props(e)]
    assert len(inner_loops) == 3
    for loop in inner_loops:
        assert props(loop)["iteration_count"] == 2
        iterations = run.children(loop)
        assert [props(i)["iteration_index"] for i in iterations] == [0, 1]
        for it in iterations:
            [combine] = run.children(it)
            assert props(combine)["task_name"] == "combine" and combine.last_known_state == COMPLETE


def test_parallel_for_over_an_empty_list(sample):
    run = sample.run("control-flow")
    [loop] = run.by_task("for-loop-5")
    assert props(loop)["iteration_count"] == 0
    assert props(loop)["inputs"]["pipelinechannel--empty_items"] == []
    assert run.children(loop) == []


def test_if_elif_else_with_branches_not_taken(sample):
    run = sample.run("control-flow")
    group = run.one("condition-branches-6")
    assert group.last_known_state == COMPLETE
    branches = {props(c)["task_name"]: c for c in run.children(group)}
    assert set(branches) == {"condition-7", "condition-8", "condition-9"}
    assert branches["condition-7"].last_known_state == COMPLETE
    assert [props(c)["task_name"] for c in run.children(branches["condition-7"])] == ["print-heads"]
    for name in ("condition-8", "condition-9"):
        assert branches[name].last_known_state == CANCELED
        assert run.children(branches[name]) == []


def test_exit_handler(sample):
    # the retried run's exit handler ran once, after the first failure, and finished
    run = sample.run("retried")
    exit_op = run.one("exit-op")
    assert props(exit_op)["parent_dag_id"] == run.root().id  # a sibling of the handler DAG
    assert exit_op.last_known_state == COMPLETE
    status = props(exit_op)["inputs"]["status"]
    assert status["pipelineTaskName"] == "exit-handler-1" and status["state"] == "FAILED"
    assert status["pipelineJobResourceName"].startswith("exit-handler-pipeline-")


def test_a_failed_run_stopped_inside_its_exit_handler(sample):
    """Repetition 0's failed run is terminated while `exit-op` runs: FAILED in `run_details`, while in
    MLMD `exit-op` and the root DAG never finished."""
    run = sample.run("failed")
    handler = run.one("exit-handler-1")
    assert props(handler)["display_name"] == "cleanup-handler" and handler.last_known_state == FAILED
    exit_op = run.one("exit-op")
    assert props(exit_op)["parent_dag_id"] == run.root().id
    assert exit_op.last_known_state == RUNNING and "outputs" not in props(exit_op)
    assert run.root().last_known_state == RUNNING
    [row] = _kfp(sample, "SELECT \"State\" AS s FROM run_details WHERE \"UUID\" = :u", u=run.context.name)
    assert row["s"] == "FAILED"


def test_failed_task(sample):
    run = sample.run("failed")
    [fail] = run.by_task("fail-op")
    p = props(fail)
    assert fail.last_known_state == FAILED and "outputs" not in p
    outputs = run.events_of(fail, OUTPUT)
    assert [e.path.steps[0].key for e in outputs] == ["executor-logs"] * 3  # 1 + 2 Argo retries
    uris = sorted(a.uri for a in run.artifacts([e.artifact_id for e in outputs]))
    assert [u.rsplit("/", 1)[1] for u in uris] == ["executor-logs", "executor-logs-1", "executor-logs-2"]
    assert run.by_task("print-op") == []  # never created
    [row] = _kfp(sample, "SELECT \"State\" AS s, \"Conditions\" AS c FROM run_details WHERE \"UUID\" = :u",
                 u=run.context.name)
    assert (row["s"], row["c"]) == ("FAILED", "Failed")


def test_retried_run_has_two_attempts(sample):
    run = sample.run("retried")
    attempts = run.by_task("fail-op")
    assert [a.last_known_state for a in attempts] == [FAILED, COMPLETE]
    assert len({props(a)["parent_dag_id"] for a in attempts}) == 1
    assert run.one("print-op").last_known_state == COMPLETE
    # the DAG update errors out on duplicate task names: the handler stays FAILED (kubeflow/pipelines#13591)
    assert run.one("exit-handler-1").last_known_state == FAILED
    [row] = _kfp(sample, "SELECT \"State\" AS s FROM run_details WHERE \"UUID\" = :u", u=run.context.name)
    assert row["s"] == "SUCCEEDED"


def test_importer_artifact_reused_by_a_second_run(sample):
    first, second = sample.run("importer"), sample.run("importer-reuse")
    a = first.one("importer")
    b = second.one("importer")
    assert a.type == b.type == "system.ImporterExecution"
    assert props(a)["display_name"] == "" and "inputs" not in props(a) and "pod_name" not in props(a)
    [ea], [eb] = first.events_of(a, OUTPUT), second.events_of(b, OUTPUT)
    assert ea.artifact_id == eb.artifact_id and ea.path.steps[0].key == "artifact"
    [artifact] = first.artifacts([ea.artifact_id])
    p = props(artifact)
    assert artifact.uri == "gs://ml-data/shared/iris/" and "display_name" not in p
    assert p["source"] == "gcs" and p["rows"] == 150.0
    assert json.loads(p["store_session_info"]) == {"Provider": "gs", "Params": {"fromEnv": "true"}}
    # reimport=True: a new artifact every run
    [r1], [r2] = first.events_of(first.one("importer-2"), OUTPUT), second.events_of(second.one("importer-2"), OUTPUT)
    assert r1.artifact_id != r2.artifact_id
    evaluate = first.one("evaluate")
    assert sorted(e.path.steps[0].key for e in first.events_of(evaluate, INPUT)) == ["dataset", "model"]


def test_workspace_importer(sample):
    run = sample.run("importer")
    workspace = run.one("importer-3")
    assert workspace.type == "system.ImporterWorkspaceExecution" and workspace.last_known_state == COMPLETE
    [count] = run.events_of(run.one("count-rows"), INPUT)
    assert count.artifact_id == run.events_of(workspace, OUTPUT)[0].artifact_id
    [artifact] = run.artifacts([count.artifact_id])
    assert artifact.uri == "s3://ml-data-wine"  # a bucket, no path
    assert json.loads(props(artifact)["store_session_info"])["Provider"] == "s3"


def test_run_in_flight(sample):
    run = sample.run("in-flight")
    train = run.one("train")
    assert train.last_known_state == RUNNING and props(train)["pod_name"]
    assert run.events_of(train, OUTPUT) == [] and "outputs" not in props(train)
    # its recorded outputs were never published: orphan artifacts (no event, no attribution)
    orphans = [a for a in sample.store.get_artifacts()
               if run.context.name in a.uri and not sample.store.get_events_by_artifact_ids([a.id])]
    assert {a.uri.rsplit("/", 1)[1] for a in orphans} >= {"model", "metrics", "classification_metrics"}
    from ml_metadata import errors

    for orphan in orphans:
        try:
            contexts = sample.store.get_contexts_by_artifact(orphan.id)
        except errors.NotFoundError:  # the library's answer for "no contexts"
            contexts = []
        assert contexts == []
    [row] = _kfp(sample, "SELECT \"State\" AS s, \"FinishedAtInSec\" AS f FROM run_details WHERE \"UUID\" = :u",
                 u=run.context.name)
    assert row["s"] == "RUNNING" and row["f"] == 0


def test_orphan_run(sample):
    run = sample.run("orphan")
    assert run.executions  # MLMD holds the run...
    rows = _kfp(sample, "SELECT \"UUID\" FROM run_details WHERE \"UUID\" = :u", u=run.context.name)
    assert rows == []  # ...KFP does not
    assert _kfp(sample, "SELECT \"UUID\" FROM tasks WHERE \"RunUUID\" = :u", u=run.context.name) == []


def test_spec_only_in_pipeline_versions(sample):
    record = sample.report.runs_of("spec-in-pipeline-version")[0]
    [row] = _kfp(sample, "SELECT r.\"PipelineSpecManifest\" AS m, v.\"PipelineSpec\" AS s FROM run_details r "
                         "JOIN pipeline_versions v ON v.\"UUID\" = r.\"PipelineVersionId\" WHERE r.\"UUID\" = :u",
                 u=record.run_id)
    assert row["m"] is None
    spec = yaml.safe_load(row["s"])
    assert spec["pipelineInfo"]["name"] == "training-pipeline"
    run = sample.run("spec-in-pipeline-version")
    first, second = run.by_task("train")  # failed, then the retried run re-drove it
    assert (first.last_known_state, second.last_known_state) == (FAILED, COMPLETE)
    [a], [b] = run.events_of(first, INPUT), run.events_of(second, INPUT)
    assert (a.artifact_id, a.path.steps[0].key) == (b.artifact_id, b.path.steps[0].key) == (a.artifact_id, "dataset")
    others = _kfp(sample, "SELECT \"PipelineSpecManifest\" AS m FROM run_details WHERE \"UUID\" <> :u "
                          "AND \"PipelineSpecManifest\" IS NOT NULL", u=record.run_id)
    assert len(others) == 10  # every other v2 run embeds its spec


def test_specs_are_real_kfp_ir(sample):
    rows = _kfp(sample, "SELECT \"Name\" AS n, \"PipelineSpec\" AS s FROM pipeline_versions")
    by_name = {r["n"]: list(yaml.safe_load_all(r["s"])) for r in rows}
    assert set(by_name) == {f"{p}-v1" for p in ("training-pipeline", "control-flow-pipeline",
                                                 "exit-handler-pipeline", "importer-pipeline", "loop-io-pipeline")}
    for docs in by_name.values():
        assert docs[0]["schemaVersion"] == "2.1.0" and docs[0]["sdkVersion"].startswith("kfp-")
    # the workspace importer needs its platform spec, stored as a second document
    assert "platforms" in by_name["importer-pipeline-v1"][1]
    # task keys in MLMD agree with the spec
    control = by_name["control-flow-pipeline-v1"][0]
    run = sample.run("control-flow")
    root_keys = set(control["root"]["dag"]["tasks"])
    assert {props(c)["task_name"] for c in run.children(run.root())} == root_keys


def test_v1_run(sample):
    record = sample.report.runs_of("v1")[0]
    [ctx] = sample.store.get_contexts_by_type("KfpRun")
    assert ctx.name == record.workflow_name
    assert ctx.properties["run_id"].string_value == record.workflow_name
    executions = sample.store.get_executions_by_context(ctx.id)
    assert len(executions) == 2 and all(e.type.startswith("components.") for e in executions)
    assert all(not e.HasField("last_known_state") for e in executions)
    [row] = _kfp(sample, "SELECT \"Name\" AS n, \"PipelineSpecManifest\" AS m, \"WorkflowSpecManifest\" AS w "
                         "FROM run_details WHERE \"UUID\" = :u", u=record.run_id)
    assert row["n"] == ctx.name and row["m"] is None and json.loads(row["w"])["kind"] == "Workflow"


def test_old_tasks_table_has_both_populations(sample):
    cache_rows = _kfp(sample, "SELECT \"MLMDExecutionID\" AS e, \"Fingerprint\" AS f, \"PipelineName\" AS p, "
                              "\"State\" AS s FROM tasks WHERE \"MLMDExecutionID\" <> ''")
    assert cache_rows
    executions = {e.id: e for e in sample.store.get_executions_by_id([int(r["e"]) for r in cache_rows])}
    for r in cache_rows:
        execution = executions[int(r["e"])]
        assert execution.last_known_state == COMPLETE
        assert props(execution)["cache_fingerprint"] == r["f"]
        assert r["p"].startswith("pipeline/") and r["s"] == "RUNTIME_STATE_UNSPECIFIED"
    node_rows = _kfp(sample, "SELECT \"PodName\" AS pod, \"Name\" AS n, \"State\" AS s FROM tasks "
                             "WHERE \"MLMDExecutionID\" = ''")
    assert len(node_rows) > len(cache_rows)
    names = {r["n"] for r in node_rows}
    assert {"root-driver", "root", "executor", "iteration-item", "iteration-iterations(2:2)"} <= names
    assert all(r["pod"] for r in node_rows)
    # executor pod names in MLMD are the old table's executor rows
    pods = {r["pod"] for r in node_rows if r["n"] == "executor"}
    assert props(sample.run("training").one("train"))["pod_name"] in pods
