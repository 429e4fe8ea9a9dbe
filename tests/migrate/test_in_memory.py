"""The library on engines the test made (issue #28): `write_batch`, `rollback` and the whole data pass on
in-memory SQLite, with no file, no URL and no second process.

The first two tests build their run by hand (no ml-metadata, no sample): they belong to the fast tier.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from mlmd2kfp import api
from mlmd2kfp.db import make_engine
from mlmd2kfp.mappers import MapOptions, map_run
from mlmd2kfp.migrate.staging import STAGING, prepare_schema
from mlmd2kfp.migrate.state import ensure_tool_tables, insert_state, load_state, new_state, update_state
from mlmd2kfp.migrate.writer import RunWork, TargetTables, write_batch
from mlmd2kfp.sample.kfp_db import create_legacy_tables
from tests.mappers.builders import RUN, BundleBuilder, container, spec_with

INPUT, OUTPUT = 3, 4


def _kfp_engine():
    """An in-memory KFP database before the upgrade: its old tables, one run in `run_details`."""
    engine = make_engine("sqlite://", "KFP")
    run = {"UUID": RUN, "DisplayName": "my run", "Name": "my run", "StorageState": "AVAILABLE",
           "Namespace": "team-a", "ExperimentUUID": "exp-1", "Conditions": "Succeeded", "State": "SUCCEEDED",
           "CreatedAtInSec": 1767225600, "ScheduledAtInSec": 1767225600, "FinishedAtInSec": 1767226500}
    with engine.begin() as conn:
        create_legacy_tables(conn)
        for column in inspect(conn).get_columns("run_details"):  # KFP's other NOT NULL columns: empty
            if not column["nullable"] and column["name"] not in run:
                run[column["name"]] = 0 if "INT" in str(column["type"]).upper() else ""
        columns = ", ".join(f'"{c}"' for c in run)
        values = ", ".join(f":{c}" for c in run)
        conn.execute(text(f"INSERT INTO run_details ({columns}) VALUES ({values})"), run)
    return engine


def _two_task_run():
    """A run of two containers: `a` writes a dataset, `b` reads it."""
    spec = spec_with({"a": container("a", artifacts_out={"out": "system.Dataset"}),
                      "b": container("b", artifacts_in={"data": {"taskOutputArtifact": {
                          "producerTask": "a", "outputArtifactKey": "out"}}})})
    b = BundleBuilder(spec)
    root = b.root()
    a, consumer = b.container("a", root), b.container("b", root)
    data = b.artifact("system.Dataset", "s3://bucket/a/out", first_key="out")
    b.event(a, data, OUTPUT, "out")
    b.event(consumer, data, INPUT, "data")
    return b.bundle()


def _staged(engine) -> TargetTables:
    """The tool's tables, a state row and the staging tables, as `migrate`'s schema phase leaves them."""
    with engine.begin() as conn:
        ensure_tool_tables(conn)
        insert_state(conn, new_state("", True, STAGING, "test"))
    staging, created = prepare_schema(engine)
    with engine.begin() as conn:
        update_state(conn, "", created_tables=json.dumps(created))
    return TargetTables(staging, "tasks")


def _count(engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f'SELECT COUNT(*) FROM "{table}"')).scalar() or 0)


def test_write_batch_on_an_in_memory_engine_writes_the_run_once():
    engine = _kfp_engine()
    targets = _staged(engine)
    assert targets.tasks_name == STAGING  # the old `tasks` is in place: the rows are staged beside it
    rows = map_run(_two_task_run(), MapOptions(multi_user=True))
    work = [RunWork(1, RUN, "marks-1", rows)]
    for _ in range(2):  # written, then written again: the same rows, not twice as many
        with engine.begin() as conn:
            result = write_batch(conn, targets, work, resume_after=1)
        # the root DAG and its two containers; one dataset; a's output link and b's input link
        assert (_count(engine, STAGING), _count(engine, "artifacts"), _count(engine, "artifact_tasks")) == (3, 1, 2)
        assert (result.runs, result.tasks, result.links) == (1, 3, 2)
    with engine.connect() as conn:
        state = load_state(conn, "")
        assert state is not None and state.last_context_id == 1  # the checkpoint, in the batch's transaction
        names = {r[0] for r in conn.execute(text(f'SELECT "Name" FROM "{STAGING}"'))}
        assert names == {"ROOT", "a", "b"}
    engine.dispose()


def test_rollback_on_an_in_memory_engine_removes_what_write_batch_wrote():
    engine = _kfp_engine()
    targets = _staged(engine)
    with engine.begin() as conn:
        write_batch(conn, targets, [RunWork(1, RUN, "marks-1", map_run(_two_task_run(), MapOptions(multi_user=True)))],
                    resume_after=1)
    with engine.connect() as conn:
        old_tasks = int(conn.execute(text("SELECT COUNT(*) FROM tasks")).scalar() or 0)
    report = api.rollback(engine)
    assert report.deleted == {"artifact_tasks": 2, "tasks": 3, "artifacts": 1}
    assert sorted(report.dropped) == sorted(["artifact_tasks", STAGING, "artifacts"])
    with engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
        assert not names & {"artifact_tasks", STAGING, "artifacts"}
        assert int(conn.execute(text("SELECT COUNT(*) FROM tasks")).scalar() or 0) == old_tasks  # KFP's, untouched
    assert api.status(engine).gate == (False, "the migration was rolled back (run `mlmd2kfp migrate` to migrate "
                                              "again)")
    engine.dispose()


@pytest.mark.mlmd
def test_the_whole_migration_on_in_memory_engines(tmp_path):
    """migrate (the data pass reads in the writer's thread), verify, the gate and rollback, on engines only."""
    from tests.samples import in_memory_copy, write_sample

    m, k = f"sqlite:///{tmp_path / 'mlmd.sqlite'}", f"sqlite:///{tmp_path / 'kfp.sqlite'}"
    sample = write_sample(m, k, seed=3)
    mlmd, kfp = in_memory_copy(m, "MLMD"), in_memory_copy(k, "KFP")
    with mlmd.connect() as conn:  # the run contexts (a v1 run of the sample has none)
        runs = int(conn.execute(text("SELECT COUNT(*) FROM Context c JOIN Type t ON t.id = c.type_id "
                                     "WHERE t.name = 'system.PipelineRun'")).scalar() or 0)
    assert runs == len(sample.runs) - 1
    with kfp.connect() as conn:
        before = sorted(inspect(conn).get_table_names())
        old_tasks = int(conn.execute(text("SELECT COUNT(*) FROM tasks")).scalar() or 0)
    events: list[str] = []
    report = api.migrate(mlmd, kfp, on_event=events.append)
    assert report.cutover and report.runs_seen == runs
    assert any(line.startswith("cutover:") for line in events)
    parity = api.verify(mlmd, kfp)
    assert parity.exit_code == 0 and parity.runs_checked == runs
    assert api.status(kfp).gate == (True, "migration finished and verified")
    again = api.migrate(mlmd, kfp)  # the true-up: nothing moved, nothing rewritten
    assert again.runs_unchanged == runs and again.runs_written == 0
    api.rollback(kfp)
    with kfp.connect() as conn:
        after = sorted(n for n in inspect(conn).get_table_names() if not n.startswith("mlmd2kfp_"))
        assert after == before
        assert int(conn.execute(text("SELECT COUNT(*) FROM tasks")).scalar() or 0) == old_tasks
    assert not Path("memory.mlmd2kfp.lock").exists()  # nothing to lock an in-memory database against
    mlmd.dispose()
    kfp.dispose()
