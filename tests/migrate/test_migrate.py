"""`migrate` on every backend (issue #4 acceptance): correctness, idempotence, true-up, staging,
kill-and-resume, the lock, rollback, cleanup, the status gate, missing privileges."""

from __future__ import annotations

import json

import os
import signal
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.lock import MigrationLock  # noqa: E402
from mlmd2kfp.migrate.plan import build_plan  # noqa: E402
from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import execute, run_cli  # noqa: E402
from tests.migrate.helpers import check_invariants, digest, rows  # noqa: E402
from tests.migrate.helpers import quote as _q  # noqa: E402


def sample(databases, **kw):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=kw.pop("seed", 3), **kw)
    return m, k


def cli_migrate(m, k, *extra, env=None):
    return run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", *extra, env=env)


def test_sample_migrates_with_invariants_and_planned_counts(databases, tmp_path):
    m, k = sample(databases)
    plan = build_plan(m, k)
    result = cli_migrate(m, k, "--batch-rows", "50", "--report", str(tmp_path / "report.json"))
    assert result.code == 0, result.stderr
    # every old cache row (47: one per finished caching container; the failed run's exit task never
    # finished; loop-io 11, its in-flight run 8: `aggregate-shards` failed, `collect-cells` never finished)
    # is checked against the migrated fingerprints, across all batches
    assert json.loads((tmp_path / "report.json").read_text())["fingerprints"] == {"agree": 47, "differ": 0}
    counts = check_invariants(k)
    assert counts == {"tasks": plan.target_rows["tasks"], "artifacts": plan.target_rows["artifacts"],
                      "artifact_tasks": plan.target_rows["artifact_tasks"]}
    # loop-io: 18 tasks, 19 artifacts, 43 links; its in-flight run 17, 17, 41 (docs/mapping.md F7)
    assert counts == {"tasks": 98, "artifacts": 96, "artifact_tasks": 174}
    assert run_cli("schema", "check", "--kfp-url", k).code == 0
    assert rows(k, 'SELECT COUNT(*) AS n FROM tasks_pre_migration WHERE "MLMDExecutionID" <> \'\'')[0]["n"] == 47
    assert "cutover" in result.stdout and "tasks_pre_migration" in result.stdout


def test_old_cache_rows_agree_differ_and_are_not_counted(databases, tmp_path):
    """§7.3's cross-check counts each old cache row under the run of its execution: one edited fingerprint
    differs; a copy under another run, one whose execution id is written with a leading zero, and node rows
    are not counted (issue #29: the cache rows are read in one scan, not by run)."""
    from tests.helpers import Db

    m, k = sample(databases)
    db = Db(k)
    cache = db.sql('SELECT * FROM tasks WHERE "MLMDExecutionID" <> \'\' ORDER BY "UUID"')
    assert len(cache) == 47
    db.sql('UPDATE tasks SET "Fingerprint" = \'edited\' WHERE "UUID" = :u', u=cache[0]["UUID"])
    other_run = next(r["RunUUID"] for r in cache if r["RunUUID"] != cache[1]["RunUUID"])
    db.insert("tasks", {**cache[1], "UUID": str(uuid.uuid4()), "RunUUID": other_run})
    db.insert("tasks", {**cache[2], "UUID": str(uuid.uuid4()), "MLMDExecutionID": "0" + cache[2]["MLMDExecutionID"]})
    # one batch: the copy's run is in it, and still the copy is not its execution's run
    result = cli_migrate(m, k, "--batch-rows", "100000", "--report", str(tmp_path / "report.json"))
    assert result.code == 0, result.stderr
    assert json.loads((tmp_path / "report.json").read_text())["fingerprints"] == {"agree": 46, "differ": 1}
    # verify reads the old cache rows its own way and names the one that differs, with its text
    report = run_verify(m, k, VerifyOptions(record=False))
    cache_check = report.checks["cache"]
    assert (cache_check.checked, cache_check.info["old cache rows agreeing"], cache_check.info["differing"]) == (47, 46, 1)
    [finding] = cache_check.failures
    assert (finding.field, finding.expected, finding.found) == ("Fingerprint", "edited", cache[0]["Fingerprint"])
    assert f"(MLMD execution {cache[0]['MLMDExecutionID']})" in finding.row
    db.engine.dispose()


def test_rerun_changes_nothing_and_reads_nothing(databases):
    m, k = sample(databases)
    migrate(m, k, MigrateOptions())
    before = digest(k)
    again = migrate(m, k, MigrateOptions())
    assert again.runs_read == 0 and again.runs_unchanged == 12 and again.runs_written == 0
    assert digest(k) == before


def test_true_up_rewrites_only_changed_runs(databases):
    m, k = sample(databases)
    migrate(m, k, MigrateOptions())
    # 1. one MLMD execution's state changes (through ml-metadata, as KFP would)
    from mlmd2kfp.source.mlmd_api import open_store

    writer = open_store(make_url(m))
    run_id = [r["UUID"] for r in rows(k, 'SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'in-flight%\'')][0]
    ctx = writer.get_context_by_type_and_name("system.PipelineRun", run_id)
    [train] = [e for e in writer.get_executions_by_context(ctx.id)
               if e.custom_properties["task_name"].string_value == "train"]
    train.last_known_state = 3  # RUNNING → COMPLETE
    writer.put_executions([train])
    del writer
    report = migrate(m, k, MigrateOptions())
    assert (report.runs_read, report.runs_written) == (1, 1)
    [task] = rows(k, 'SELECT "State" FROM tasks WHERE "RunUUID" = :r AND "Name" = \'train\'', r=run_id)
    assert task["State"] == 2
    # 2. one run_details.State changes
    other = [r["UUID"] for r in rows(k, 'SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'failed%\'')][0]
    execute(k, f"UPDATE run_details SET {_q(k, 'State')} = 'SUCCEEDED' WHERE {_q(k, 'UUID')} = '{other}'")
    report = migrate(m, k, MigrateOptions())
    assert (report.runs_read, report.runs_written) == (1, 1)
    check_invariants(k)


def test_stage_only_then_cutover_equals_one_plain_migrate(databases):
    m1, k1 = sample(databases, seed=5)
    m2, k2 = sample(databases, seed=5)
    staged = migrate(m1, k1, MigrateOptions(stage_only=True))
    assert staged.phase == "staged" and not staged.cutover
    # the old tasks table stays in place and working for the old server
    assert rows(k1, 'SELECT COUNT(*) AS n FROM tasks WHERE "MLMDExecutionID" <> \'\'')[0]["n"] == 47
    execute(k1, f"INSERT INTO tasks ({_q(k1, 'UUID')}, {_q(k1, 'Namespace')}, {_q(k1, 'PipelineName')}, "
                f"{_q(k1, 'RunUUID')}, {_q(k1, 'PodName')}, {_q(k1, 'MLMDExecutionID')}, {_q(k1, 'CreatedTimestamp')}, "
                f"{_q(k1, 'Fingerprint')}) SELECT 'new-old-row', 'team-a', '', {_q(k1, 'UUID')}, 'pod', '', 1, '' "
                f"FROM run_details WHERE {_q(k1, 'DisplayName')} LIKE 'training%'")
    execute(k1, f"DELETE FROM tasks WHERE {_q(k1, 'UUID')} = 'new-old-row'")
    assert rows(k1, "SELECT COUNT(*) AS n FROM tasks_migration_tmp")[0]["n"] == 98
    done = migrate(m1, k1, MigrateOptions())
    assert done.cutover and done.runs_read == 0
    migrate(m2, k2, MigrateOptions())
    assert digest(k1) == digest(k2)


def test_run_deleted_while_staged_is_dropped_by_the_next_pass(databases):
    m, k = sample(databases)
    migrate(m, k, MigrateOptions(stage_only=True))
    run_id = rows(k, 'SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'training%\'')[0]["UUID"]
    execute(k, f"DELETE FROM run_details WHERE {_q(k, 'UUID')} = '{run_id}'")  # as the old server does
    report = migrate(m, k, MigrateOptions())
    assert report.runs_read == 1 and report.cutover
    assert rows(k, 'SELECT COUNT(*) AS n FROM tasks WHERE "RunUUID" = :r', r=run_id)[0]["n"] == 0
    assert rows(k, 'SELECT COUNT(*) AS n FROM artifact_tasks WHERE "RunUUID" = :r', r=run_id)[0]["n"] == 0
    check_invariants(k)
    # its artifacts the cache-hit run still links stay; the others are gone
    assert check_invariants(k)["tasks"] == 95  # 98 less the training run's 3


@pytest.mark.parametrize("point", ["schema:2", "mid-batch:1", "mid-batch:3", "after-batch:2", "cutover:1"])
def test_sigkill_then_rerun_gives_a_clean_runs_digest(databases, point):
    m_clean, k_clean = sample(databases, seed=6)
    migrate(m_clean, k_clean, MigrateOptions(batch_rows=40))
    m, k = sample(databases, seed=6)
    killed = cli_migrate(m, k, "--batch-rows", "40", env={"MLMD2KFP_FAULT_AT": point})
    assert killed.code == -signal.SIGKILL, (killed.code, killed.stderr[-500:])
    resumed = cli_migrate(m, k, "--batch-rows", "40")
    assert resumed.code == 0, resumed.stderr
    assert digest(k) == digest(k_clean)
    check_invariants(k)


def _index_names(url, table):
    return {ix["name"] for ix in inspect(create_engine(url)).get_indexes(table)}


DEFERRED = {
    "artifacts": {"idx_type_namespace", "idx_namespace_urihash", "idx_artifact_created_timestamp",
                  "idx_artifact_last_update_timestamp"},
    "tasks_migration_tmp": {"idx_task_cache_lookup", "idx_task_created_timestamp", "idx_task_started_timestamp",
                            "idx_task_finished_timestamp", "idx_task_type"},
}
KEPT = {
    "artifacts": {"idx_artifact_identity"},
    "tasks_migration_tmp": {"idx_tasks_uuid_run", "idx_parent_run", "idx_parent_task_uuid", "idx_tasks_logical_key"},
    "artifact_tasks": {"idx_link_artifact_id", "UniqueLink", "idx_link_task_run", "idx_link_run_id"},
}


def test_tables_the_migration_creates_get_the_servers_read_indexes_after_the_rows(databases):
    """W14: during the first data pass the tables it created lack the indexes only KFP's queries read; a
    pass killed there is accepted by the rerun's schema check, which then builds them (and so does a kill
    between two index builds)."""
    m, k = sample(databases, seed=6)
    killed = cli_migrate(m, k, "--batch-rows", "40", env={"MLMD2KFP_FAULT_AT": "after-batch:2"})
    assert killed.code == -signal.SIGKILL, killed.stderr[-500:]
    for table, kept in KEPT.items():
        present = _index_names(k, table)
        assert kept <= present and not DEFERRED.get(table, set()) & present, (table, present)
    assert run_cli("schema", "check", "--kfp-url", k).code != 0  # not KFP's schema yet, and it says so
    again = cli_migrate(m, k, "--batch-rows", "40", env={"MLMD2KFP_FAULT_AT": "indexes:1"})
    assert again.code == -signal.SIGKILL, again.stderr[-500:]
    assert DEFERRED["artifacts"] <= _index_names(k, "artifacts")
    assert not DEFERRED["tasks_migration_tmp"] & _index_names(k, "tasks_migration_tmp")
    resumed = cli_migrate(m, k, "--batch-rows", "40")
    assert resumed.code == 0, resumed.stderr
    assert "secondary index" in resumed.stdout + resumed.stderr
    assert run_cli("schema", "check", "--kfp-url", k).code == 0
    assert DEFERRED["tasks_migration_tmp"] | KEPT["tasks_migration_tmp"] <= _index_names(k, "tasks")


def test_a_table_that_existed_before_keeps_every_index_during_the_pass(databases):
    m, k = sample(databases, seed=6)
    assert run_cli("schema", "create", "--kfp-url", k).code == 0  # `artifacts` (the old tasks table stays)
    killed = cli_migrate(m, k, "--batch-rows", "40", env={"MLMD2KFP_FAULT_AT": "after-batch:2"})
    assert killed.code == -signal.SIGKILL, killed.stderr[-500:]
    assert DEFERRED["artifacts"] | KEPT["artifacts"] <= _index_names(k, "artifacts")
    assert not DEFERRED["tasks_migration_tmp"] & _index_names(k, "tasks_migration_tmp")
    assert cli_migrate(m, k, "--batch-rows", "40").code == 0
    assert run_cli("schema", "check", "--kfp-url", k).code == 0


def test_a_second_migrator_is_refused_and_writes_nothing(databases):
    m, k = sample(databases)
    before = digest(k, tables=None)
    engine = create_engine(k)
    with MigrationLock(engine):
        result = cli_migrate(m, k)
        checking = run_cli("verify", "--mlmd-url", m, "--kfp-url", k)  # verify never reads a migration mid-write
    engine.dispose()
    assert result.code == 3
    assert "already running" in result.stderr and "by host" in result.stderr
    assert checking.code == 3 and "already running" in checking.stderr
    assert digest(k, tables=None) == before


def test_rollback_restores_the_pre_migration_database_and_cleanup_needs_verify(databases):
    m, k = sample(databases)
    before = digest(k, tables=None, exclude_prefix="mlmd2kfp_")
    assert cli_migrate(m, k).code == 0
    refused = run_cli("cleanup", "--kfp-url", k, "--yes")
    assert refused.code == 3 and "verify" in refused.stderr
    result = run_cli("rollback", "--kfp-url", k, "--yes")
    assert result.code == 0, result.stderr
    assert "moved `tasks_pre_migration` back to `tasks`" in result.stdout
    assert digest(k, tables=None, exclude_prefix="mlmd2kfp_") == before
    status = run_cli("status", "--kfp-url", k, "--check")
    assert status.code == 1 and "rolled back" in status.stdout
    # and it migrates again after a rollback
    assert cli_migrate(m, k).code == 0
    check_invariants(k)


def test_rollback_keeps_rows_kfp_wrote_itself(databases):
    m, k = sample(databases)
    migrate(m, k, MigrateOptions())
    root = rows(k, 'SELECT * FROM tasks WHERE "Name" = \'ROOT\'')[0]
    live_id = str(uuid.uuid4())
    execute(k, f"INSERT INTO tasks ({_q(k, 'UUID')}, {_q(k, 'Namespace')}, {_q(k, 'RunUUID')}, {_q(k, 'pods')}, "
               f"{_q(k, 'CreatedAtInSec')}, {_q(k, 'Fingerprint')}, {_q(k, 'Name')}, {_q(k, 'State')}, "
               f"{_q(k, 'Type')}, {_q(k, 'TypeAttrs')}) VALUES ('{live_id}', 'team-a', '{root['RunUUID']}', '[]', 1, "
               f"'', 'live-root', 1, 1, '{{}}')")
    result = run_cli("rollback", "--kfp-url", k, "--yes")
    assert result.code == 0, result.stderr
    assert rows(k, 'SELECT "UUID" FROM tasks WHERE "UUID" = :u', u=live_id) == [{"UUID": live_id}]
    # the run KFP wrote into keeps its rows (issue #13); every other run's migrated rows are gone
    assert {r["RunUUID"] for r in rows(k, 'SELECT "RunUUID" FROM tasks')} == {root["RunUUID"]}
    assert "written by KFP itself" in result.stderr or "KFP wrote itself" in result.stderr


def test_a_migrate_while_verify_reads_keeps_the_gate_closed(databases):
    """A pass that starts while verify is reading makes its result describe no single state: verify stops
    with exit 3's error, records that, and the gate stays closed."""
    m, k = sample(databases)
    migrate(m, k, MigrateOptions())
    ran = []

    def meanwhile(done: int, total: int) -> None:
        if not ran:
            ran.append(migrate(m, k, MigrateOptions()))

    report = run_verify(m, k, on_progress=meanwhile)
    assert ran and report.not_recorded and "while verify was reading" in report.not_recorded
    gate = run_cli("status", "--kfp-url", k, "--check")
    assert gate.code == 1 and "while verify was reading" in gate.stdout


def test_a_verify_ending_while_a_migrator_holds_the_lock_records_nothing(databases):
    """A migrator that took the lock after verify started may not have written its state yet: the result
    is not recorded (the gate stays closed), and the CLI prints the report, then exits 3."""
    m, k = sample(databases)
    migrate(m, k, MigrateOptions())
    engine = create_engine(k)
    held = []

    def meanwhile(done: int, total: int) -> None:
        if not held:
            held.append(MigrationLock(engine).__enter__())

    try:
        report = run_verify(m, k, on_progress=meanwhile)
    finally:
        for lock in held:
            lock.__exit__(None, None, None)
        engine.dispose()
    assert report.passed and report.not_recorded and "running now" in report.not_recorded
    gate = run_cli("status", "--kfp-url", k, "--check")
    assert gate.code == 1 and "not verified" in gate.stdout


def test_status_gate(databases):
    m, k = sample(databases)
    assert run_cli("status", "--kfp-url", k, "--check").code == 1  # before
    migrate(m, k, MigrateOptions(stage_only=True))
    during = run_cli("status", "--kfp-url", k, "--check")
    assert during.code == 1 and "not finished" in during.stdout
    migrate(m, k, MigrateOptions())
    after = run_cli("status", "--kfp-url", k, "--check")
    assert after.code == 1 and "not verified" in after.stdout
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k).code == 0
    ok = run_cli("status", "--kfp-url", k, "--check")
    assert ok.code == 0 and ok.stdout.startswith("OK")
    shown = run_cli("status", "--kfp-url", k, "--json")
    assert '"phase": "done"' in shown.stdout
    state = json.loads(shown.stdout)["state"]  # issue #27 item 7: JSON values, not strings holding JSON
    assert isinstance(state["created_tables"], list) and "tasks_migration_tmp" in state["created_tables"]
    assert state["verify_result"]["passed"] is True and state["verify_result"]["phase"] == "after cutover"
    assert isinstance(state["gate_opened_at"], int)


def test_the_same_store_under_another_source_name_is_refused_before_any_write(databases):
    """mapping.md §2: a rerun with another --source-name would write every run again under other ids; its
    runs were migrated from the default source, so it is refused before anything (its state row too)."""
    m, k = sample(databases)
    migrate(m, k, MigrateOptions(stage_only=True))
    before = digest(k, tables=None)
    result = cli_migrate(m, k, "--source-name", "second")
    assert result.code == 3 and "was migrated from the default source (no --source-name)" in result.stderr
    assert "rerun without --source-name" in result.stderr and result.stderr.count("\n") == 1
    assert digest(k, tables=None) == before


def test_user_without_ddl_rights_gets_a_clear_error(databases):
    if databases.backend == "sqlite":
        pytest.skip("SQLite has no database users")
    m, k = sample(databases)
    parsed = make_url(k)
    user, password = f"dml_{uuid.uuid4().hex[:8]}", "Dml-0nly-pass"
    if databases.backend == "mariadb":
        execute(k, *[f"CREATE USER '{user}'@'{h}' IDENTIFIED BY '{password}'" for h in ("127.0.0.1", "localhost")],
                *[f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{parsed.database}`.* TO '{user}'@'{h}'"
                  for h in ("127.0.0.1", "localhost")])
    else:
        execute(k, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
                f"GRANT USAGE ON SCHEMA public TO {user}",
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user}")
    dml_url = parsed.set(username=user, password=password).render_as_string(hide_password=False)
    before = digest(k, tables=None)
    result = cli_migrate(m, dml_url)
    assert result.code == 3, result.stderr
    assert "privilege" in result.stderr and "CREATE" in result.stderr and "nothing was written" in result.stderr
    assert password not in result.stderr
    assert digest(k, tables=None) == before


def _migrating(m: str, k: str, rows_per_second: str) -> subprocess.Popen:
    """A throttled `migrate` in a process of its own, once its first batch is committed."""
    import time

    proc = subprocess.Popen([sys.executable, "-m", "mlmd2kfp", "migrate", "--mlmd-url", m, "--kfp-url", k, "--yes",
                             "--batch-rows", "20", "--max-rows-per-second", rows_per_second],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    deadline = time.time() + 60
    while time.time() < deadline:
        if rows(k, "SELECT COUNT(*) AS n FROM mlmd2kfp_runs")[0]["n"] if _has_runs_table(k) else 0:
            break
        time.sleep(0.2)
    return proc


def test_sigterm_finishes_the_batch_and_exits_130(databases, tmp_path):
    m, k = sample(databases, runs=44)
    proc = _migrating(m, k, "150")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-800:]
    assert "finishing the current batch" in err and "resume" in err
    state = rows(k, "SELECT status, last_context_id FROM mlmd2kfp_state")[0]
    assert state["status"] == "interrupted" and state["last_context_id"] > 0
    assert cli_migrate(m, k).code == 0
    check_invariants(k)


def test_item_7_a_second_ctrl_c_stops_at_once_and_records_it(databases):
    """Issue #27 item 7: the second Ctrl-C aborted with a traceback and left the state `running`. Now: one line,
    exit 130, the state `interrupted` with the reason, and the rerun resumes to the same rows."""
    import time

    m, k = sample(databases, runs=44)
    proc = _migrating(m, k, "30")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.02)  # an impatient operator: the second press while the first batch is still being finished
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-800:]
    assert "Traceback" not in err and "Aborted" not in err, err[-1500:]
    assert [line for line in err.splitlines() if line.startswith("Error: ")] == [
        "Error: stopped at once by a second SIGINT: what was being written was rolled back, what was committed "
        "before is kept; rerun `mlmd2kfp migrate` with the same options to resume"], err[-1500:]
    state = rows(k, "SELECT status, last_error FROM mlmd2kfp_state")[0]
    assert state["status"] == "interrupted" and "second SIGINT" in state["last_error"], state
    assert cli_migrate(m, k).code == 0
    check_invariants(k)


def _has_runs_table(url):
    from sqlalchemy import inspect

    engine = create_engine(url)
    try:
        return "mlmd2kfp_runs" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_stage_only_after_the_cutover_keeps_the_migration_done(databases):
    m, k = sample(databases)
    migrate(m, k, MigrateOptions())
    again = migrate(m, k, MigrateOptions(stage_only=True))
    assert again.phase == "done" and again.runs_read == 0
    assert rows(k, "SELECT phase FROM mlmd2kfp_state")[0]["phase"] == "done"


def test_a_rerun_by_another_release_says_so_and_records_it(databases):
    from mlmd2kfp import __version__

    m, k = sample(databases)
    assert cli_migrate(m, k).code == 0
    execute(k, "UPDATE mlmd2kfp_state SET tool_version = '0.0.1'")
    again = cli_migrate(m, k)
    assert again.code == 0, again.stderr
    assert f"last run by mlmd2kfp 0.0.1; mlmd2kfp {__version__} continues it" in " ".join((again.stdout + again.stderr).split())
    assert rows(k, "SELECT tool_version FROM mlmd2kfp_state")[0]["tool_version"] == __version__


def test_a_first_pass_reports_every_mlmd_row_as_read_once(databases, tmp_path):
    """"source rows read" are MLMD's rows (issue #16): an artifact several runs use counts once, and rows
    of no run (run-less executions, their events, unlinked artifacts) are read by the run-less pass."""
    m, k = sample(databases)
    assert cli_migrate(m, k, "--report", str(tmp_path / "first.json")).code == 0
    read = {name: t["read"] for name, t in json.loads((tmp_path / "first.json").read_text())["tables"].items()}
    counts = {name: rows(m, f"SELECT COUNT(*) AS n FROM {q}")[0]["n"] for name, q in (
        ("tasks", _mlmd(m, "Execution")), ("artifacts", _mlmd(m, "Artifact")), ("artifact_tasks", _mlmd(m, "Event")))}
    # the sample's MLMD rows, written out: the loop-io run 26 executions, 19 artifacts, 31 events; its in-flight
    # run 25, 17, 29 (no `keyed-step`; `collect-cells` stopped before it logged)
    assert counts == {"tasks": 130, "artifacts": 99, "artifact_tasks": 145}
    assert read == counts
    assert cli_migrate(m, k, "--report", str(tmp_path / "again.json")).code == 0
    again = json.loads((tmp_path / "again.json").read_text())["tables"]
    # nothing changed: only what no run holds is read again: the v1 run's 2 executions (a KfpRun context is
    # no run), their 3 events, and the 5 artifacts no run's execution has an event for (counted with
    # NOT EXISTS queries over Event/Association/Context on the sample's store, not with the tool)
    assert {name: t["read"] for name, t in again.items()} == {"tasks": 2, "artifacts": 5, "artifact_tasks": 3}


def _mlmd(url, name):
    if url.startswith("postgresql"):
        return name.lower()
    return f"`{name}`" if url.startswith("mysql") else f'"{name}"'


def test_extra_columns_indexes_and_tables_of_a_later_kfp_are_accepted_and_left_alone(databases):
    """Issue #26: the new API server made its tables before migrate (new-form `tasks` in place) and a later KFP
    release added a nullable `tasks` column, a defaulted `artifacts` column, a plain index and a table. `schema
    check` warns and exits 0; an extra unique index is refused before any write; migrate and verify pass and
    the extras keep their defaults."""
    m, k = sample(databases)
    q = lambda name: _q(k, name)  # noqa: E731
    execute(k, f"DROP TABLE {q('tasks')}")  # the old table, here moved out of the way for good
    assert run_cli("schema", "create", "--kfp-url", k).code == 0
    execute(k, f"ALTER TABLE {q('tasks')} ADD COLUMN {q('RetryPolicy')} varchar(64)",
            f"ALTER TABLE {q('artifacts')} ADD COLUMN {q('StorageClass')} varchar(32) NOT NULL DEFAULT 'standard'",
            f"CREATE INDEX {q('idx_link_type')} ON {q('artifact_tasks')} ({q('Type')}, {q('Iteration')})",
            f"CREATE TABLE {q('task_annotations')} ({q('UUID')} varchar(64) NOT NULL PRIMARY KEY)",
            f"INSERT INTO {q('task_annotations')} ({q('UUID')}) VALUES ('kept')",
            f"CREATE UNIQUE INDEX {q('idx_artifact_name_unique')} ON {q('artifacts')} ({q('Namespace')}, {q('Name')})")
    warnings = [
        "`artifacts`: extra column `StorageClass` (default 'standard'; this tool's rows leave it to its default)",
        "`tasks`: extra column `RetryPolicy` (nullable; this tool's rows leave it NULL)",
        "`artifact_tasks`: extra index `idx_link_type` on (Type, Iteration) (not unique, so it cannot refuse "
        "a row)",
    ]
    refused = cli_migrate(m, k)
    assert refused.code == 3, refused.stderr
    assert ("`artifacts`: extra unique index `idx_artifact_name_unique` on (Namespace, Name) is not KFP's and could "
            "refuse rows this tool writes; drop it or make it non-unique") in refused.stderr
    assert rows(k, "SELECT COUNT(*) AS n FROM tasks")[0]["n"] == 0
    drop = (f"DROP INDEX {q('idx_artifact_name_unique')}" + (f" ON {q('artifacts')}" if k.startswith("mysql") else ""))
    execute(k, drop)

    checked = run_cli("schema", "check", "--kfp-url", k)
    assert checked.code == 0, checked.stdout
    table = "extra table `task_annotations` (not one of KFP's tables; this tool neither reads nor writes it)"
    warnings.append(table)
    assert checked.stdout.splitlines()[:4] == [f"warning: {w}" for w in warnings]
    assert "(4 extra object(s) accepted, listed above)" in checked.stdout
    assert "run_details" not in checked.stdout and "mlmd2kfp_" not in checked.stdout  # KFP's and the tool's
    planned = build_plan(m, k)
    assert (planned.target_schema, planned.target_warnings) == ("new form", warnings)

    result = cli_migrate(m, k)
    assert result.code == 0, result.stderr
    for w in warnings:
        assert f"warning: {w}" in result.stderr
    assert "target schema extra (left alone)" in result.stdout
    assert check_invariants(k) == {"tasks": 98, "artifacts": 96, "artifact_tasks": 174}  # the whole sample
    assert rows(k, 'SELECT COUNT(*) AS n FROM tasks WHERE "RetryPolicy" IS NOT NULL')[0]["n"] == 0
    assert rows(k, 'SELECT DISTINCT "StorageClass" FROM artifacts') == [{"StorageClass": "standard"}]
    assert rows(k, "SELECT * FROM task_annotations") == [{"UUID": "kept"}]
    verified = run_cli("verify", "--mlmd-url", m, "--kfp-url", k)
    assert verified.code == 0, verified.stdout + verified.stderr
    assert run_cli("schema", "check", "--kfp-url", k).code == 0


def test_extras_on_artifacts_survive_staging_and_the_cutover(databases):
    """Issue #26 with the old `tasks` in place: `schema create` made `artifacts`, KFP added to it; migrate stages
    `tasks`, writes around the extras and swaps the tables; verify passes."""
    m, k = sample(databases)
    q = lambda name: _q(k, name)  # noqa: E731
    assert run_cli("schema", "create", "--kfp-url", k).code == 0
    execute(k, f"ALTER TABLE {q('artifacts')} ADD COLUMN {q('Labels')} text",
            f"CREATE INDEX {q('idx_artifact_name')} ON {q('artifacts')} ({q('Name')})")
    result = cli_migrate(m, k)
    assert result.code == 0, result.stderr
    assert "warning: `artifacts`: extra column `Labels` (nullable; this tool's rows leave it NULL)" in result.stderr
    assert "tasks_pre_migration" in result.stdout
    assert rows(k, 'SELECT COUNT(*) AS n FROM artifacts WHERE "Labels" IS NOT NULL')[0]["n"] == 0
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k).code == 0
    checked = run_cli("schema", "check", "--kfp-url", k)
    assert checked.code == 0, checked.stdout
    assert checked.stdout.splitlines()[:2] == [
        "warning: `artifacts`: extra column `Labels` (nullable; this tool's rows leave it NULL)",
        "warning: `artifacts`: extra index `idx_artifact_name` on (Name) (not unique, so it cannot refuse a row)",
    ]
