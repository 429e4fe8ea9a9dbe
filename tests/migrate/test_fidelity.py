"""Issue #14's and issue #26's (mapping version 3) shapes, migrated on every backend with and without a pipeline spec, read back from the
target tables and compared with values written out by hand from `../shared/spec/mapping.md` and the
runtime's rules (docs/mapping.md M1, M18, M19). The sample writes these shapes in its default (one
repetition) set: importer URIs with percent-escapes, a trailing slash and no path; a nested pipeline
input that falls back to its default; a FAILED run stopped inside its exit handler; a task retried
with the same input; `--no-spec` writes the same runs with no spec anywhere.
"""

from __future__ import annotations

import hashlib
import json

import pytest

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import Db  # noqa: E402

FAILED, SUCCEEDED = 4, 2
TASK_OUTPUT_INPUT, COLLECTED_INPUTS = 2, 5


@pytest.fixture(scope="module", params=["spec", "no-spec"])
def migrated(request, module_databases):
    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=3, no_spec=request.param == "no-spec")
    report = migrate(m, k, MigrateOptions())
    assert report.phase == "done"
    parity = run_verify(m, k, VerifyOptions(record=False))
    assert parity.passed, [f for c in parity.checks.values() for f in c.findings][:5]
    db = Db(k)
    yield request.param, db
    db.engine.dispose()


def _run(db: Db, scenario: str) -> dict:
    return db.one('SELECT * FROM run_details WHERE "DisplayName" LIKE :n', n=f"{scenario} run %")


def _task(db: Db, run: dict, scope: str) -> dict:
    row = db.one('SELECT * FROM tasks WHERE "RunUUID" = :r AND "ScopePath" = :s', r=run["UUID"], s=scope)
    for column in ("InputParameters", "OutputParameters", "StateHistory", "StatusMetadata", "TypeAttrs"):
        if isinstance(row[column], str):
            row[column] = json.loads(row[column])
    return row


def test_importer_names_are_the_runtimes(migrated):
    """Go's `path.Base(url.Parse(uri).Path)`: percent-escapes decoded, a trailing slash names the
    directory, a bucket without a path is `.` (the runtime's importer reuse finds these rows)."""
    _, db = migrated
    names = {r["URI"]: r["Name"] for r in db.sql('SELECT "URI", "Name" FROM artifacts WHERE "URI" LIKE \'%ml-%\'')}
    assert names["gs://ml-models/iris%20v1/model%20final.joblib"] == "model final.joblib"
    assert names["gs://ml-data/shared/iris/"] == "iris"
    assert names["s3://ml-data-wine"] == "."


def test_a_nested_pipelines_defaulted_input(migrated):
    mode, db = migrated
    run = _run(db, "control-flow")
    nested = _task(db, run, "root.report-pipeline")
    inner = _task(db, run, "root.report-pipeline.make-report")
    # with a spec the default is the component's (COMPONENT_DEFAULT_INPUT); without one every input is
    # COMPONENT_INPUT; the producer is ROOT either way (the parent, which has no entry of that key)
    title_type = "COMPONENT_DEFAULT_INPUT" if mode == "spec" else "COMPONENT_INPUT"
    assert nested["InputParameters"] == [
        {"parameterKey": "message", "producer": {"taskName": "ROOT"}, "type": "COMPONENT_INPUT", "value": "nested-0"},
        {"parameterKey": "title", "producer": {"taskName": "ROOT"}, "type": title_type, "value": "weekly report"}]
    assert inner["InputParameters"] == [
        {"parameterKey": "message", "producer": {"taskName": "ROOT"}, "type": "COMPONENT_INPUT", "value": "nested-0"},
        {"parameterKey": "title", "producer": {"taskName": "ROOT"}, "type": "COMPONENT_INPUT", "value": "weekly report"}]


def test_a_failed_run_stopped_inside_its_exit_handler(migrated):
    _, db = migrated
    run = _run(db, "failed")
    assert run["State"] == "FAILED" and run["FinishedAtInSec"] > 0
    exit_op, root = _task(db, run, "root.exit-op"), _task(db, run, "root")
    assert (exit_op["State"], exit_op["FinishedInSec"]) == (FAILED, run["FinishedAtInSec"])
    assert exit_op["StatusMetadata"] == {"message": "never finished (run FAILED)"}
    assert [h["state"] for h in exit_op["StateHistory"]] == ["RUNNING", "FAILED"]
    # ROOT never finished in MLMD; derived again from its children it is FAILED, at the run's end
    assert (root["State"], root["FinishedInSec"], root["StatusMetadata"]) == (FAILED, run["FinishedAtInSec"], None)
    assert [h["state"] for h in root["StateHistory"]] == ["RUNNING", "FAILED"]


def test_a_task_retried_with_the_same_input(migrated):
    """Two attempts of `train`, each with an INPUT event for the dataset: one task, one input link
    (never COLLECTED_INPUTS), the second event is `merged-link`, the first attempt `superseded-attempt`."""
    mode, db = migrated
    run = _run(db, "spec-in-pipeline-version")
    train = _task(db, run, "root.train")
    assert train["State"] == SUCCEEDED
    assert [h["state"] for h in train["StateHistory"]] == ["RUNNING", "FAILED", "RUNNING", "SUCCEEDED"]
    inputs = db.sql('SELECT "Type", "ArtifactKey", "Producer" FROM artifact_tasks WHERE "TaskID" = :t AND "Type" < 8',
                    t=train["UUID"])
    assert [(r["Type"], r["ArtifactKey"], _json(r["Producer"])) for r in inputs] == [
        (TASK_OUTPUT_INPUT, "dataset", {"taskName": "preprocess"})]
    ledger = db.sql("SELECT entity, reason FROM mlmd2kfp_ledger WHERE run_uuid = :r AND reason <> 'split' "
                    "ORDER BY entity", r=run["UUID"])
    assert [(e["entity"], e["reason"]) for e in ledger] == [("event", "merged-link"), ("execution", "superseded-attempt")] \
        + ([("run", "no-spec")] if mode == "no-spec" else [])


def test_loop_iterator_inputs_and_collected_links(migrated):
    _, db = migrated
    run = _run(db, "control-flow")
    loop = _task(db, run, "root.for-loop-1")
    iterator = [e for e in loop["InputParameters"] if e["type"] == "ITERATOR_INPUT"]
    assert iterator == [
        {"parameterKey": "pipelinechannel--items-loop-item", "producer": {"iteration": str(i), "taskName": "for-loop-1"},
         "type": "ITERATOR_INPUT", "value": i + 1} for i in range(3)]
    aggregate = _task(db, run, "root.aggregate")
    collected = db.sql('SELECT "Type", "ArtifactKey", "Producer" FROM artifact_tasks WHERE "TaskID" = :t AND "Type" = 5',
                       t=aggregate["UUID"])
    assert [(r["ArtifactKey"], _json(r["Producer"])) for r in collected] == [("datasets", {"taskName": "for-loop-1"})] * 3


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


# --- mapping version 3 (issue #26): the `loop-io` runs of `loop-io-pipeline` (docs/mapping.md F7) ---------------
ROOT, RUNTIME, LOOP, IMPORTER, DAG = 1, 2, 5, 7, 8
RUNNING = 1
ITERATOR_OUTPUT, OUTPUT = 8, 9


def _tasks(db: Db, run: dict, scope: str) -> list[dict]:
    """The tasks of `scope`, by iteration index."""
    found = db.sql('SELECT "UUID" FROM tasks WHERE "RunUUID" = :r AND "ScopePath" = :s', r=run["UUID"], s=scope)
    rows = [db.one('SELECT * FROM tasks WHERE "UUID" = :u', u=r["UUID"]) for r in found]
    for row in rows:
        for column in ("InputParameters", "OutputParameters", "StateHistory", "StatusMetadata", "TypeAttrs"):
            row[column] = _json(row[column])
    return sorted(rows, key=lambda r: (int((r["TypeAttrs"] or {}).get("iterationIndex", -1)), r["UUID"]))


def _links(db: Db, task: dict) -> list[tuple]:
    """(ArtifactKey, Type, Iteration, Producer) of a task's links, sorted."""
    rows = db.sql('SELECT * FROM artifact_tasks WHERE "TaskID" = :t', t=task["UUID"])
    return sorted((r["ArtifactKey"], r["Type"], r["Iteration"], _json(r["Producer"])) for r in rows)


def _artifact_of(db: Db, task: dict, key: str) -> set[str]:
    return {r["ArtifactID"] for r in db.sql('SELECT "ArtifactID" FROM artifact_tasks WHERE "TaskID" = :t AND '
                                            '"ArtifactKey" = :k', t=task["UUID"], k=key)}


def _at(i: int, name: str) -> dict:
    return {"iteration": str(i), "taskName": name}


def _logical_key(run: str, parent: str, scope: str, name: str, task_type: int, iteration: int | None) -> str:
    """kfp-native-schema.md §3.3 written out here: length-prefixed parts, the type, the optional iteration."""
    h = hashlib.sha256()
    for part in (run, parent, scope, name):
        h.update(len(part.encode()).to_bytes(4, "big") + part.encode())
    h.update(task_type.to_bytes(4, "big", signed=True))
    h.update(b"\x00" if iteration is None else b"\x01" + iteration.to_bytes(8, "big", signed=True))
    return h.hexdigest()


def test_v3_outputs_inside_a_loop_body_are_iterator_outputs(migrated):
    """Every OUTPUT event of a task with an iteration index: ITERATOR_OUTPUT with its own index (container
    outputs, executor logs, importer outputs)."""
    _, db = migrated
    run = _run(db, "loop-io")
    for i, shard in enumerate(_tasks(db, run, "root.for-loop-1.make-shard")):
        assert _links(db, shard) == [("executor-logs", ITERATOR_OUTPUT, i, _at(i, "make-shard")),
                                     ("shard", ITERATOR_OUTPUT, i, _at(i, "make-shard"))]
        [label] = shard["OutputParameters"]
        assert (label["parameterKey"], label["type"], label["producer"]) == ("Output", "ITERATOR_OUTPUT",
                                                                             _at(i, "make-shard"))
    importers = _tasks(db, run, "root.for-loop-1.importer")
    assert [(t["Type"], t["TypeAttrs"]) for t in importers] == [
        (IMPORTER, {"downloadToWorkspace": False, "iterationIndex": str(i)}) for i in range(2)]
    for i, importer in enumerate(importers):
        assert _links(db, importer) == [("artifact", ITERATOR_OUTPUT, i, _at(i, "importer"))]
    cells = _tasks(db, run, "root.for-loop-2.for-loop-4.make-cell")
    assert [c["TypeAttrs"] for c in cells] == [{"iterationIndex": "0"}] * 2 + [{"iterationIndex": "1"}] * 2
    for cell in cells:
        i = int(cell["TypeAttrs"]["iterationIndex"])
        assert _links(db, cell) == [("cell", ITERATOR_OUTPUT, i, _at(i, "make-cell")),
                                    ("executor-logs", ITERATOR_OUTPUT, i, _at(i, "make-cell"))]


def test_v3_a_sibling_in_the_same_iteration_is_read_as_a_collection(migrated):
    """The resolver collects a single ITERATOR_OUTPUT too: COLLECTED_INPUTS, producer the sibling at the
    consumer's index; a parameter so fed is the one-element list (STRING input: its JSON text). Without a
    spec parameters are COMPONENT_INPUT (the no-spec rule), links the same as with one."""
    mode, db = migrated
    run = _run(db, "loop-io")
    shards = _tasks(db, run, "root.for-loop-1.make-shard")
    importers = _tasks(db, run, "root.for-loop-1.importer")
    for i, check in enumerate(_tasks(db, run, "root.for-loop-1.check-shard")):
        assert [link for link in _links(db, check) if link[0] != "executor-logs"] == [
            ("reference", COLLECTED_INPUTS, i, _at(i, "importer")), ("shard", COLLECTED_INPUTS, i, _at(i, "make-shard"))]
        assert _artifact_of(db, check, "shard") == _artifact_of(db, shards[i], "shard")
        assert _artifact_of(db, check, "reference") == _artifact_of(db, importers[i], "artifact")
        produced = shards[i]["OutputParameters"][0]["value"]
        if mode == "spec":
            assert check["InputParameters"] == [{"parameterKey": "label", "producer": _at(i, "make-shard"),
                                                 "type": "COLLECTED_INPUTS", "value": f'["{produced}"]'}]
        else:
            assert check["InputParameters"] == [{"parameterKey": "label", "producer": _at(i, "for-loop-1"),
                                                 "type": "COMPONENT_INPUT", "value": produced}]


def test_v3_propagated_links_carry_the_leafs_iteration(migrated):
    """`propagatedProducer`: a LOOP's link keeps the body task's index; above a nested loop (DAG, OUTPUT at
    the first level, no index) the outer LOOP's ITERATOR_OUTPUT has none."""
    _, db = migrated
    run = _run(db, "loop-io")
    [loop] = _tasks(db, run, "root.for-loop-1")
    assert _links(db, loop) == sorted(
        [("pipelinechannel--importer-artifact", ITERATOR_OUTPUT, i, _at(i, "importer")) for i in range(2)]
        + [("pipelinechannel--make-shard-shard", ITERATOR_OUTPUT, i, _at(i, "make-shard")) for i in range(2)])
    shards = _tasks(db, run, "root.for-loop-1.make-shard")
    assert loop["OutputParameters"] == [
        {"parameterKey": "pipelinechannel--make-shard-Output", "producer": _at(i, "make-shard"),
         "type": "ITERATOR_OUTPUT", "value": shards[i]["OutputParameters"][0]["value"]} for i in range(2)]
    for inner in _tasks(db, run, "root.for-loop-2.for-loop-4"):
        assert _links(db, inner) == [("pipelinechannel--make-cell-cell", OUTPUT, -1, {"taskName": "make-cell"})] * 2
        assert [e["producer"] for e in inner["OutputParameters"]] == [{"taskName": "make-cell"}] * 2
        assert {e["type"] for e in inner["OutputParameters"]} == {"OUTPUT"}
    [outer] = _tasks(db, run, "root.for-loop-2")
    assert _links(db, outer) == [("pipelinechannel--make-cell-cell", ITERATOR_OUTPUT, -1, {"taskName": "for-loop-4"})] * 4


def test_v3_a_loop_inside_a_loop_body_is_a_dag(migrated):
    """The PR-head driver types LOOP only without an iteration index: the inner loop is DAG, its taskInfo
    name shown, `iterationCount` beside the outer `iterationIndex`, its LogicalKey taken with type DAG."""
    _, db = migrated
    run = _run(db, "loop-io")
    [outer] = _tasks(db, run, "root.for-loop-2")
    assert (outer["Type"], outer["DisplayName"], outer["TypeAttrs"]) == (LOOP, "Loop", {"iterationCount": "2"})
    inners = _tasks(db, run, "root.for-loop-2.for-loop-4")
    assert [(t["Type"], t["DisplayName"], t["State"], t["TypeAttrs"]) for t in inners] == [
        (DAG, "for-loop-4", SUCCEEDED, {"iterationCount": "2", "iterationIndex": str(i)}) for i in range(2)]
    for i, inner in enumerate(inners):
        assert inner["ParentTaskUUID"] == outer["UUID"]
        assert inner["LogicalKey"] == _logical_key(run["UUID"], outer["UUID"], "root.for-loop-2.for-loop-4",
                                                   "for-loop-4", DAG, i)
        assert inner["InputParameters"] == [
            {"parameterKey": "pipelinechannel--loop-item-param-3", "producer": _at(0, "for-loop-4"),
             "type": "ITERATOR_INPUT", "value": "a"},
            {"parameterKey": "pipelinechannel--loop-item-param-3", "producer": _at(1, "for-loop-4"),
             "type": "ITERATOR_INPUT", "value": "b"},
            {"parameterKey": "pipelinechannel--rows-loop-item", "producer": _at(i, "for-loop-2"),
             "type": "COMPONENT_INPUT", "value": i + 1}]


def test_v3_collected_consumers_name_the_loop_beside_them(migrated):
    """With or without a spec, a collected input's producer is the consumer's sibling that holds the
    producers: after nested loops the outer loop (docs/mapping.md M19, corrected)."""
    _, db = migrated
    run = _run(db, "loop-io")
    [collect] = _tasks(db, run, "root.collect-cells")
    assert [link for link in _links(db, collect) if link[0] != "executor-logs"] == [
        ("cells", COLLECTED_INPUTS, -1, {"taskName": "for-loop-2"})] * 4
    cells = _tasks(db, run, "root.for-loop-2.for-loop-4.make-cell")
    assert _artifact_of(db, collect, "cells") == set().union(*(_artifact_of(db, c, "cell") for c in cells))
    [aggregate] = _tasks(db, run, "root.aggregate-shards")
    assert [link for link in _links(db, aggregate) if link[0] != "executor-logs"] == [
        ("references", COLLECTED_INPUTS, -1, {"taskName": "for-loop-1"})] * 2 + [
        ("shards", COLLECTED_INPUTS, -1, {"taskName": "for-loop-1"})] * 2


def test_v3_a_failed_child_fails_its_parent_while_a_sibling_still_runs(migrated):
    _, db = migrated
    run = _run(db, "loop-io-in-flight")
    assert run["State"] == "RUNNING"
    [root], [aggregate], [collect] = (_tasks(db, run, s) for s in ("root", "root.aggregate-shards", "root.collect-cells"))
    assert (aggregate["State"], aggregate["StatusMetadata"]) == (FAILED, {
        "message": "failed (migrated from ML Metadata; no error text recorded)"})
    assert (collect["State"], collect["FinishedInSec"]) == (RUNNING, 0)
    # FAILED by propagation (no message), not RUNNING as version 2 had it; the run is not finished
    assert (root["State"], root["StatusMetadata"]) == (FAILED, None)
    assert [h["state"] for h in root["StateHistory"]] == ["RUNNING", "FAILED"]
    assert _tasks(db, run, "root.keyed-step") == []  # never started


def test_v3_a_custom_cache_key_gives_the_runtimes_fingerprint(migrated):
    """sha256(componentRef name, NUL, key), as the PR-head driver computes it: a live cache source."""
    _, db = migrated
    [keyed] = _tasks(db, _run(db, "loop-io"), "root.keyed-step")
    assert keyed["Fingerprint"] == hashlib.sha256(b"comp-keyed-step\x00keyed-step-v1").hexdigest()
    assert (keyed["State"], keyed["Type"]) == (SUCCEEDED, RUNTIME)


def test_v3_dag_driver_failures_are_one_ledger_note(migrated):
    _, db = migrated
    notes = db.sql("SELECT entity, mlmd_id, run_uuid FROM mlmd2kfp_ledger WHERE reason = 'dag-driver-failure-not-in-mlmd'")
    assert [(n["entity"], n["mlmd_id"], n["run_uuid"]) for n in notes] == [("migration", 0, "")]  # run-less, once


def test_v3_plugin_properties_are_where_the_plugins_write_them(migrated):
    """The `loop-io` run had the MLflow plugin (docs/mapping.md M27): ROOT and importers show none; containers
    and DAGs outside loop bodies their own; the nested loop (a DAG in a loop body) its parent loop's."""
    _, db = migrated
    run = _run(db, "loop-io")
    shown = {}
    for scope in ("root", "root.for-loop-1.importer", "root.for-loop-2", "root.for-loop-2.for-loop-4",
                  "root.for-loop-1.make-shard", "root.keyed-step"):
        shown[scope] = [((t["StatusMetadata"] or {}).get("customProperties") or {}).get("plugins.mlflow.run_id")
                        for t in _tasks(db, run, scope)]
    assert shown["root"] == [None] and shown["root.for-loop-1.importer"] == [None, None]
    [outer] = shown["root.for-loop-2"]
    assert len(outer) == 32 and shown["root.for-loop-2.for-loop-4"] == [outer, outer]
    shards, [keyed] = shown["root.for-loop-1.make-shard"], shown["root.keyed-step"]
    assert len({*shards, keyed, outer}) == 4 and all(len(v) == 32 for v in shards)
