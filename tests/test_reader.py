"""The MLMD reader: value decoding, spec loading, bounded queries per page."""

from __future__ import annotations

import base64

import pytest
from google.protobuf import struct_pb2
from sqlalchemy import create_engine

from mlmd2kfp.source.reader import MlmdReader, load_spec
from mlmd2kfp.source.values import BadValue, decode_value


def _struct(value: dict) -> str:
    s = struct_pb2.Struct()
    s.update(value)
    return "mlmd-struct::" + base64.b64encode(s.SerializeToString()).decode()


@pytest.mark.parametrize("columns,expected", [
    ((7, None, None, None, None), 7),
    ((None, 0.25, None, None, None), 0.25),
    ((None, None, "plain", None, None), "plain"),
    ((None, None, _struct({"list": [1, "a"]}), None, None), {"list": [1.0, "a"]}),
    ((None, None, "mlmd-struct::", None, None), {}),
    ((None, None, None, None, 1), True),
    ((None, None, None, None, None), None),
    ((0, 1.5, "x", None, None), 0),  # MLMD's own order: int first
])
def test_decode_value(columns, expected):
    assert decode_value(*columns) == expected


@pytest.mark.parametrize("raw", ["mlmd-struct::%%%notbase64", "mlmd-struct::" + base64.b64encode(b"\xff\x01").decode()])
def test_decode_value_marks_malformed_structs(raw):
    value = decode_value(None, None, raw, None, None)
    assert isinstance(value, BadValue) and "malformed" in value.reason


def test_load_spec_variants():
    spec, platform, error = load_spec("root:\n  dag: {}\npipelineInfo: {name: p}\n---\nplatforms: {k: 1}\n")
    assert spec["pipelineInfo"]["name"] == "p" and platform == {"platforms": {"k": 1}} and error is None
    wrapped, _, _ = load_spec('{"pipeline_spec": {"root": {"dag": {}}}, "platform_spec": {}}')
    assert wrapped == {"root": {"dag": {}}}
    assert load_spec("") == (None, None, None) and load_spec(None) == (None, None, None)
    assert load_spec("a: [")[2].startswith("the pipeline spec is not valid")
    assert load_spec("x: 1")[2] == "the pipeline spec has no `root` component"


def test_queries_are_bounded_per_page_not_per_run(tmp_path):
    pytest.importorskip("ml_metadata")
    from tests.samples import write_sample

    counts = {}
    for runs in (13, 52):
        m, k = f"sqlite:///{tmp_path}/m{runs}.sqlite", f"sqlite:///{tmp_path}/k{runs}.sqlite"
        write_sample(m, k, runs=runs, seed=9)
        me, ke = create_engine(m), create_engine(k)
        with me.connect() as mc, ke.connect() as kc:
            reader = MlmdReader(mc, kc, page_runs=1000)
            bundles = list(reader.run_bundles())
            counts[runs] = reader.queries
        assert len(bundles) == runs - runs // 13  # the v1 run is not a system.PipelineRun
    # one page either way: the same statements, whatever the number of runs (spec versions cached)
    assert counts[52] <= counts[13] + 2, counts


def test_a_page_reads_its_run_details_rows_once(tmp_path):
    """`marks` reads the page's `run_details` rows (manifests and all) and the page read that follows takes
    them, asking again only for the runs `marks` found no row for; a second read of the same runs fetches
    them all again (each row is used once)."""
    pytest.importorskip("ml_metadata")
    from sqlalchemy import event

    from tests.samples import write_sample

    m, k = f"sqlite:///{tmp_path}/m.sqlite", f"sqlite:///{tmp_path}/k.sqlite"
    write_sample(m, k, runs=13, seed=9)
    me, ke = create_engine(m), create_engine(k)
    asked: list[int] = []  # run ids asked for, per statement that reads manifests
    event.listen(ke, "before_cursor_execute", lambda conn, cursor, statement, parameters, *rest: asked.append(
        len(parameters)) if "PipelineSpecManifest" in statement else None)
    with me.connect() as mc, ke.connect() as kc:
        reader = MlmdReader(mc, kc, page_runs=1000)
        [page] = list(reader.pages())
        reader.marks(page)
        assert asked == [len(page)]
        first = list(reader.read_contexts(page))
        missing = sum(b.run is None for b in first)
        assert 0 < missing < len(page)  # the sample has runs without a `run_details` row
        assert asked == [len(page), missing]
        again = list(reader.read_contexts(page))
        assert asked == [len(page), missing, len(page)] and [b.run for b in again] == [b.run for b in first]


def test_light_marks_are_the_marks_and_ship_no_manifest(databases):
    """A true-up's `marks(light=True)` has the server hash the manifests (`text_sha256_sql`) instead of shipping
    them (issue #30): the marks equal those computed from the shipped text, also for a manifest with non-ASCII
    text and for an empty one; no statement of the light marks returns a manifest, and the page read that
    follows fetches the rows of the runs it reads."""
    pytest.importorskip("ml_metadata")
    from sqlalchemy import event

    from tests.helpers import Db
    from tests.samples import write_sample

    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, runs=13, seed=9)
    db = Db(k)
    first, second = (r["UUID"] for r in db.sql('SELECT "UUID" FROM run_details ORDER BY "UUID"')[:2])
    db.sql('UPDATE run_details SET "PipelineSpecManifest" = :t WHERE "UUID" = :u',
           t='{"pipelineInfo": {"name": "größe-✓"}, "root": {}}', u=first)
    db.sql('UPDATE run_details SET "PipelineSpecManifest" = \'\' WHERE "UUID" = :u', u=second)
    me, ke = create_engine(m), create_engine(k)
    shipped: list[bool] = []
    event.listen(ke, "after_cursor_execute", lambda conn, cursor, statement, *rest: shipped.append(
        "PipelineSpecManifest" in [c[0] for c in cursor.description or ()]) if "run_details" in statement else None)
    with me.connect() as mc, ke.connect() as kc:
        reader = MlmdReader(mc, kc, page_runs=1000)
        [page] = list(reader.pages())
        full = reader.marks(page)
        assert shipped == [True]
        light = reader.marks(page, light=True)
        assert light == full and len(set(full.values())) == len(page)
        assert shipped[1:] and not any(shipped[1:])  # the manifests stayed in the server
        shipped.clear()
        bundles = list(reader.read_contexts(page))
        assert shipped == [True] and any(b.spec is not None for b in bundles)
    me.dispose()
    ke.dispose()
    db.engine.dispose()
