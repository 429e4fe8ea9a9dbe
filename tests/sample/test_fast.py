"""`sample --fast` (bulk SQL copies of a library-written repetition) reads back through ml-metadata's
API exactly like library-written runs of the same shape (issue #6)."""

from __future__ import annotations

from collections import Counter

import pytest

pytest.importorskip("ml_metadata")

from mlmd2kfp.sample import write_sample  # noqa: E402
from mlmd2kfp.sample.fast import write_fast_sample  # noqa: E402
from tests.helpers import run_cli  # noqa: E402
from tests.sample.conftest import open_reader, props  # noqa: E402


def shape(store, run_id: str, context_type: str = "system.PipelineRun") -> dict:
    """What the API shows of one run, with ids, run ids and times abstracted away."""
    ctx = store.get_context_by_type_and_name(context_type, run_id)
    executions = sorted(store.get_executions_by_context(ctx.id), key=lambda e: e.id)
    index = {e.id: i for i, e in enumerate(executions)}
    events = store.get_events_by_execution_ids([e.id for e in executions])
    artifacts = {a.id: a for a in store.get_artifacts_by_id(sorted({ev.artifact_id for ev in events}))}
    first_exec = executions[0].id

    def prop_kinds(node):
        return sorted((k, v.WhichOneof("value")) for k, v in node.custom_properties.items())

    return {
        "context": (ctx.type, sorted(props(ctx)) if context_type == "system.PipelineRun" else None,
                    [p.type for p in store.get_parent_contexts_by_context(ctx.id)]),
        "executions": [(e.type, e.last_known_state, prop_kinds(e),
                        index.get(props(e).get("parent_dag_id")), props(e).get("task_name"))
                       for e in executions],
        "events": sorted((index[ev.execution_id], ev.type, ev.path.steps[0].key, artifacts[ev.artifact_id].type,
                          tuple(prop_kinds(artifacts[ev.artifact_id]))) for ev in events),
        "cached_points_inside": sorted(int(props(e)["cached_execution_id"]) - first_exec for e in executions
                                       if "cached_execution_id" in props(e)),
        "attributions": Counter(len(store.get_contexts_by_artifact(a)) for a in artifacts),
    }


def test_fast_copies_look_like_library_runs(databases):
    lib_m, lib_k = databases.new("lm"), databases.new("lk")
    fast_m, fast_k = databases.new("fm"), databases.new("fk")
    library = write_sample(lib_m, lib_k, seed=4)
    records = write_fast_sample(fast_m, fast_k, runs=26, seed=4)
    assert len(records) == 26
    lib_store, fast_store = open_reader(lib_m), open_reader(fast_m)
    lib_runs = {r.scenario: r for r in library.runs}
    second_rep = records[13:]
    assert {r.run_id for r in second_rep}.isdisjoint({r.run_id for r in records[:13]})
    for record in second_rep:
        reference = lib_runs[record.scenario]
        if record.scenario == "v1":
            assert shape(fast_store, record.workflow_name, "KfpRun")["executions"] == \
                shape(lib_store, reference.workflow_name, "KfpRun")["executions"]
            continue
        fast_shape, lib_shape = shape(fast_store, record.run_id), shape(lib_store, reference.run_id)
        assert fast_shape["executions"] == lib_shape["executions"], record.scenario
        assert fast_shape["events"] == lib_shape["events"], record.scenario
        assert fast_shape["context"] == lib_shape["context"], record.scenario
        assert fast_shape["attributions"] == lib_shape["attributions"], record.scenario
        assert fast_shape["cached_points_inside"] == lib_shape["cached_points_inside"], record.scenario
    assert sorted(t.name for t in fast_store.get_execution_types()) == sorted(t.name for t in lib_store.get_execution_types())
    assert len(fast_store.get_contexts_by_type("system.PipelineRun")) == 24
    # the copies have their own run ids everywhere a run id appears
    ctx = fast_store.get_context_by_type_and_name("system.PipelineRun", second_rep[0].run_id)
    assert props(ctx)["pipeline_root"].endswith(second_rep[0].run_id)


def test_fast_sample_through_the_cli_then_plan(databases, tmp_path):
    m, k = databases.new("m"), databases.new("k")
    result = run_cli("sample", "--mlmd-url", m, "--kfp-url", k, "--fast", "--runs", "39")
    assert result.code == 0, result.stderr
    assert "wrote 39 runs" in result.stdout
    plan = run_cli("plan", "--mlmd-url", m, "--kfp-url", k, "--json", str(tmp_path / "p.json"))
    assert plan.code == 0, plan.stderr
    import json

    report = json.loads((tmp_path / "p.json").read_text())
    # the default sample's rows (tests/migrate/test_migrate.py), three times
    assert report["target_rows"] == {"tasks": 98 * 3, "artifacts": 96 * 3, "artifact_tasks": 174 * 3}
