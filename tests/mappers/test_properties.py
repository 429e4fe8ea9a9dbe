"""Hypothesis properties of `map_run` over generated run bundles (issue #3 acceptance).

Mapping is total, deterministic, accounts for every MLMD row (output or ledger), and every JSON
column is canonical protojson of the right shape.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlmd2kfp.mappers import MapOptions, map_run
from mlmd2kfp.mappers.enums import IO_TYPE_NAMES, STATE_NAMES
from mlmd2kfp.records import EVENT_INPUT, EVENT_OUTPUT
from tests.mappers.builders import BundleBuilder, spec_with

CONTAINER = st.tuples(st.just("c"), st.sampled_from([1, 2, 3, 4, 5, 6]), st.integers(1, 2), st.integers(0, 2),
                      st.booleans())
SHAPES = st.recursive(
    CONTAINER,
    lambda inner: st.one_of(
        st.tuples(st.just("d"), st.lists(inner, min_size=0, max_size=3)),
        st.tuples(st.just("l"), st.integers(0, 3), st.lists(inner, min_size=1, max_size=2)),
    ),
    max_leaves=8,
)
CAMEL = re.compile(r"^[a-z][A-Za-z0-9]*$")


def instantiate(shape_list: list[Any], with_spec: bool, run_state: str, inputs_from_siblings: bool):
    """Build a bundle (and a matching spec) from a list of root-level task shapes."""
    components: dict[str, Any] = {}
    b = BundleBuilder(None, run_state=run_state)
    root = b.root(inputs={"p": 1})

    def component_for(shapes: list[Any], path: str) -> dict[str, Any]:
        tasks = {}
        for i, shape in enumerate(shapes):
            key = f"{shape[0]}{i}"
            ref = f"comp-{path}-{key}"
            task: dict[str, Any] = {"taskInfo": {"name": key}, "componentRef": {"name": ref}}
            if shape[0] == "c":
                components[ref] = {"executorLabel": "e"}
            elif shape[0] == "d":
                components[ref] = component_for(shape[1], f"{path}-{key}")
            else:
                task["parameterIterator"] = {"itemInput": "item", "items": {"raw": "[]"}}
                components[ref] = component_for(shape[2], f"{path}-{key}")
            tasks[key] = task
        return {"dag": {"tasks": tasks}}

    def grow(shapes: list[Any], parent) -> None:
        produced = []
        for i, shape in enumerate(shapes):
            key = f"{shape[0]}{i}"
            if shape[0] == "c":
                _, state, attempts, n_out, metrics = shape
                for attempt in range(attempts):
                    final = attempt == attempts - 1
                    e = b.container(key, parent, state=state if final else 4,
                                    outputs={"o": f"v{i}"} if final and state in (3, 5) else None,
                                    cache_fingerprint=f"fp{i}")
                    for n in range(n_out):
                        title = "system.Metrics" if metrics and n == 0 else "system.Dataset"
                        props = {"acc": 0.5, "display_name": f"out{n}"} if title == "system.Metrics" else {"rows": n}
                        a = b.artifact(title, f"s3://b/{key}/{attempt}/{n}", f"out{n}", **props)
                        b.event(e, a, EVENT_OUTPUT, f"out{n}")
                        produced.append(a)
                    if inputs_from_siblings and produced[:-n_out or None]:
                        b.event(e, produced[0], EVENT_INPUT, "in")
            elif shape[0] == "d":
                grow(shape[1], b.dag(key, parent))
            else:
                loop = b.dag(key, parent, iteration_count=shape[1])
                for index in range(shape[1]):
                    grow(shape[2], b.dag(key, loop, iteration_index=index, inputs={"item": index}))

    grow(shape_list, root)
    bundle = b.bundle()
    if with_spec:
        comp = component_for(shape_list, "root")
        bundle.spec = spec_with(comp["dag"]["tasks"], components)
        bundle.spec_source = "manifest"
    return bundle


BUNDLES = st.builds(instantiate, st.lists(SHAPES, min_size=1, max_size=3), st.booleans(),
                    st.sampled_from(["SUCCEEDED", "FAILED", "RUNNING", "CANCELED"]), st.booleans())
COMMON = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@COMMON
@given(BUNDLES, st.booleans())
def test_mapping_is_total_and_deterministic(bundle, multi):
    options = MapOptions(multi_user=multi)
    first, second = map_run(bundle, options), map_run(bundle, options)
    assert first == second
    assert first.skipped is None, first.ledger[:1]


@COMMON
@given(BUNDLES)
def test_every_source_row_is_represented_or_in_the_ledger(bundle):
    rows = map_run(bundle, MapOptions(multi_user=True))
    ledgered = {(e.entity, e.mlmd_id) for e in rows.ledger}
    in_tasks = {i for t in rows.tasks for i in t.mlmd_execution_ids}
    for e in bundle.executions:
        assert e.id in in_tasks or ("execution", e.id) in ledgered, e
    linked = {lk.mlmd_event_id for lk in rows.links}
    for ev in bundle.events:
        assert ev.id in linked or ("event", ev.id) in ledgered, ev
    mapped = {a.mlmd_artifact_id for a in rows.artifacts}
    for ev in bundle.events:
        assert ev.artifact_id in mapped or ("artifact", ev.artifact_id) in ledgered


def _check_keys(value: Any) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            assert CAMEL.match(k), k
            if k not in ("value", "customProperties"):
                _check_keys(v)
    elif isinstance(value, list):
        for v in value:
            _check_keys(v)


@COMMON
@given(BUNDLES)
def test_json_columns_follow_protojson_rules(bundle):
    rows = map_run(bundle, MapOptions(multi_user=True))
    for t in rows.tasks:
        for column, shape in (("pods", list), ("state_history", list), ("input_parameters", list),
                              ("output_parameters", list), ("status_metadata", dict), ("type_attrs", dict)):
            text = getattr(t, column)
            assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            value = json.loads(text)
            assert value is None or isinstance(value, shape), (column, value)
            _check_keys(value)
        for entry in json.loads(t.input_parameters) or []:
            assert entry["type"] in IO_TYPE_NAMES.values() and "taskName" in entry["producer"]
            assert isinstance(entry["producer"].get("iteration", "0"), str)
        for status in json.loads(t.state_history):
            assert status["state"] in STATE_NAMES.values()
            assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", status["updateTime"])
        for attr in ("iterationIndex", "iterationCount"):
            value = (json.loads(t.type_attrs) or {}).get(attr)
            assert value is None or isinstance(value, str)
    for link in rows.links:
        producer = json.loads(link.producer)
        assert 1 <= link.type <= 11 and "taskName" in producer
        assert link.iteration == int(producer.get("iteration", -1))


@COMMON
@given(BUNDLES)
def test_tree_invariants(bundle):
    rows = map_run(bundle, MapOptions(multi_user=True))
    ids = {t.uuid for t in rows.tasks}
    roots = [t for t in rows.tasks if t.parent_task_uuid is None]
    assert len(roots) == 1 and roots[0].type == 1 and roots[0].name == "ROOT" and roots[0].scope_path == "root"
    assert all(t.parent_task_uuid in ids for t in rows.tasks if t.parent_task_uuid)
    assert len({t.logical_key for t in rows.tasks}) == len(rows.tasks)
    assert len({lk.uuid for lk in rows.links}) == len(rows.links)
    assert len({(lk.artifact_id, lk.task_id, lk.type, lk.iteration, lk.artifact_key) for lk in rows.links}) == \
        len(rows.links)
    artifact_ids = {a.uuid for a in rows.artifacts}
    assert all(lk.task_id in ids and lk.artifact_id in artifact_ids for lk in rows.links)
    by_id = {t.uuid: t for t in rows.tasks}
    for t in rows.tasks:
        if t.parent_task_uuid:
            assert t.scope_path == f"{by_id[t.parent_task_uuid].scope_path}.{t.name}"
