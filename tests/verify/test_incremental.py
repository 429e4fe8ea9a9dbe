"""Incremental verify and the MLMD check of the startup gate (issue #30), on every backend: the window an
operator runs (stage, verify while the old KFP serves, an in-flight run finishes through ml-metadata, the
true-up and cutover, verify), with what each step compares written out."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ml_metadata")

from sqlalchemy.engine import make_url  # noqa: E402

from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import Db, run_cli  # noqa: E402
from tests.migrate.helpers import rows  # noqa: E402
from tests.samples import write_sample  # noqa: E402

RUNS = 12
"""Run contexts of the sample (seed 8)."""


def _finish_in_flight(m: str, k: str) -> str:
    """An in-flight run's `train` execution finishes, written through ml-metadata as the launcher would; returns
    the run id."""
    from mlmd2kfp.source.mlmd_api import open_store

    writer = open_store(make_url(m))
    run_id = rows(k, 'SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'in-flight%\' ORDER BY "UUID"')[0]["UUID"]
    ctx = writer.get_context_by_type_and_name("system.PipelineRun", run_id)
    [train] = [e for e in writer.get_executions_by_context(ctx.id)
               if e.custom_properties["task_name"].string_value == "train"]
    train.last_known_state = 3  # RUNNING -> COMPLETE
    writer.put_executions([train])
    del writer
    return run_id


def _coverage(report) -> dict:
    return {k: v for k, v in report.checks["coverage"].info.items() if k.startswith(("runs", "verify kind"))}


def test_the_window_compares_in_full_only_what_changed_and_the_gate_checks_mlmd(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions(stage_only=True))
    pre = run_verify(m, k)  # outside the window: every run compared, the records written
    assert (pre.kind, pre.passed, pre.runs_checked) == ("full", True, RUNS)
    assert len(rows(k, "SELECT run_uuid FROM mlmd2kfp_verified")) == RUNS
    assert run_cli("status", "--kfp-url", k, "--check", "--mlmd-url", m).code == 1  # staged: the gate is closed

    run_id = _finish_in_flight(m, k)  # while the old KFP still runs
    stale = run_verify(m, k, VerifyOptions(record=False))  # the staged rows no longer match MLMD for that run
    assert (stale.kind, stale.runs_checked, stale.passed) == ("incremental", 1, False)
    assert set(stale.failing_runs) == {run_id}

    migrate(m, k, MigrateOptions())  # the window: the true-up of that run, then the cutover
    window = run_verify(m, k)
    assert (window.kind, window.passed, window.runs_checked) == ("incremental", True, 1)
    assert _coverage(window) == {
        "verify kind": "incremental",
        "runs unchanged since their record (sums and mark recomputed, not re-derived)": RUNS - 1,
        "runs compared in full (changed, added, or without a record)": 1}
    gate = run_cli("status", "--kfp-url", k, "--check", "--mlmd-url", m)
    assert gate.code == 0 and gate.stdout.strip() == (
        f"OK: migration finished and verified; MLMD unchanged since the last verify ({RUNS} runs compared)")
    plain = run_cli("status", "--kfp-url", k, "--check")
    assert plain.code == 0 and "MLMD not compared" in plain.stdout
    from mlmd2kfp.settings import PART_ENVS

    no_parts = {p: "" for p in PART_ENVS}
    by_env = run_cli("status", "--kfp-url", k, "--check", "--with-mlmd", env={"MLMD2KFP_MLMD_URL": m, **no_parts})
    assert by_env.code == 0 and "MLMD unchanged" in by_env.stdout, by_env.stdout
    nowhere = run_cli("status", "--kfp-url", k, "--check", "--with-mlmd", env={"MLMD2KFP_MLMD_URL": "", **no_parts})
    assert nowhere.code == 2 and "--mlmd-url is required" in nowhere.stderr, nowhere.stderr

    later = _finish_in_flight_again(m, run_id)  # an in-flight pod finishing after verify
    gate = run_cli("status", "--kfp-url", k, "--check", "--mlmd-url", m)
    assert gate.code == 1 and gate.stdout.strip() == (
        f"NOT READY: MLMD changed since the last verify: 1 run(s) changed or added, 0 gone (run {later}); "
        "run `mlmd2kfp migrate`, then `mlmd2kfp verify`")
    assert run_cli("status", "--kfp-url", k, "--check").code == 0  # without MLMD the gate cannot see it

    full = run_verify(m, k, VerifyOptions(full=True, record=False))
    assert (full.kind, full.runs_checked, full.passed) == ("full", RUNS, False)


def _finish_in_flight_again(m: str, run_id: str) -> str:
    """Another execution of the same run changes through ml-metadata; returns the run id."""
    from mlmd2kfp.source.mlmd_api import open_store

    writer = open_store(make_url(m))
    ctx = writer.get_context_by_type_and_name("system.PipelineRun", run_id)
    execution = sorted(writer.get_executions_by_context(ctx.id), key=lambda e: e.id)[-1]
    execution.custom_properties["late"].string_value = "written after verify"
    writer.put_executions([execution])
    del writer
    return run_id


def test_a_failing_full_verify_ends_the_chain_and_an_incremental_one_keeps_it(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions(stage_only=True))  # staged rows: no KFP may own them, damage stays damage
    assert run_verify(m, k).kind == "full"
    staged = rows(k, "SELECT staging_table FROM mlmd2kfp_state")[0]["staging_table"]
    db = Db(k)
    task = db.one(f'SELECT "UUID", "RunUUID" FROM {staged} WHERE "Name" = \'train\' ORDER BY "UUID"')
    undo = db.set(staged, "UUID", task["UUID"], "Name", "renamed")
    failed = run_verify(m, k)  # incremental, failing: the records stay, the damaged run has none renewed
    assert (failed.kind, failed.passed, failed.runs_checked, set(failed.failing_runs)) == (
        "incremental", False, 1, {task["RunUUID"]})
    assert len(rows(k, "SELECT run_uuid FROM mlmd2kfp_verified")) == RUNS - 1
    assert run_verify(m, k, VerifyOptions(full=True)).passed is False  # a failing full verify ends the chain
    assert rows(k, "SELECT run_uuid FROM mlmd2kfp_verified") == []
    assert rows(k, "SELECT verify_chain FROM mlmd2kfp_state") == [{"verify_chain": None}]
    undo()
    db.engine.dispose()
    again = run_verify(m, k)
    assert (again.kind, again.passed, again.runs_checked) == ("full", True, RUNS)
    assert run_verify(m, k).kind == "incremental"


def test_the_window_command_runs_the_sequence_and_says_what_it_covered(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions(stage_only=True))
    assert run_verify(m, k).passed
    run_id = _finish_in_flight(m, k)
    window = run_cli("window", "--mlmd-url", m, "--kfp-url", k, "--yes")
    assert window.code == 0, window.stderr[-2000:]
    assert [line for line in window.stderr.splitlines() if line in (
        "true-up and cutover (migrate)", "verify", "startup gate, MLMD compared")] == [
        "true-up and cutover (migrate)", "verify", "startup gate, MLMD compared"]
    last = window.stdout.strip().splitlines()[-1]
    assert last.startswith("window: ") and (
        f"(1 run(s) re-read, {RUNS - 1} unchanged, cut over); verify " in last
        and "(incremental, 1 run(s) compared in full); gate OK: MLMD unchanged since the last verify "
            f"({RUNS} runs compared)" in last), last
    assert run_verify(m, k, VerifyOptions(run_ids=(run_id,), record=False)).passed


def test_a_window_whose_verify_fails_leaves_the_gate_closed(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions(stage_only=True))
    assert run_verify(m, k).passed
    db = Db(k)  # an old cache row no migrate writes (the true-up repairs what it wrote itself)
    old = db.one('SELECT "UUID" FROM tasks WHERE "MLMDExecutionID" <> \'\' AND "Fingerprint" <> \'\' ORDER BY "UUID"')
    db.set("tasks", "UUID", old["UUID"], "Fingerprint", "tampered")
    db.engine.dispose()
    window = run_cli("window", "--mlmd-url", m, "--kfp-url", k, "--yes", "--report", str(databases.tmp_path / "w.json"))
    assert window.code == 1, (window.stdout[-2000:], window.stderr[-2000:])
    verified = json.loads((databases.tmp_path / "w.json").read_text())["verify"]
    assert (verified["kind"], verified["passed"], verified["runs_checked"]) == ("incremental", False, 1)
    assert window.stdout.strip().splitlines()[-1].endswith(
        "gate NOT READY: verify found differences (see its report); fix them, rerun `mlmd2kfp window`")
    assert run_cli("status", "--kfp-url", k, "--check").code == 1


def test_a_verify_in_another_install_mode_compares_every_run_again(databases):
    """The expected rows depend on the mode verified in: records made in one prove nothing in the other."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k).kind == "full"
    other = run_verify(m, k, VerifyOptions(multi_user=False, record=False))
    assert (other.kind, other.passed, other.runs_checked) == ("full", False, RUNS)
    assert run_verify(m, k, VerifyOptions(record=False)).kind == "incremental"


def test_rollback_forgets_the_records_and_another_source_verifies_the_same_runs(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k).passed
    assert run_cli("rollback", "--kfp-url", k, "--yes").code == 0
    assert rows(k, "SELECT run_uuid FROM mlmd2kfp_verified") == []
    assert rows(k, "SELECT verify_chain FROM mlmd2kfp_state") == [{"verify_chain": None}]
    migrate(m, k, MigrateOptions(source_name="again"))
    again = run_verify(m, k, VerifyOptions(source_name="again"))
    assert (again.kind, again.passed, again.not_recorded) == ("full", True, None)
    assert {r["source_name"] for r in rows(k, "SELECT source_name FROM mlmd2kfp_verified")} == {"again"}
    assert run_verify(m, k, VerifyOptions(source_name="again")).kind == "incremental"
