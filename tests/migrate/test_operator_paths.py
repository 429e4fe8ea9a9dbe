"""Operator sequences that used to lose or hide data (issue #13), on every backend."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.admin import read_status, rollback  # noqa: E402
from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import Db, run_cli  # noqa: E402
from tests.migrate.helpers import add_second_source, digest  # noqa: E402


def _kfp_task_under_migrated_root(db: Db, runs: set[str] | None = None) -> tuple[str, str, str]:
    """The new API server retries a migrated run (of `runs`, if given): a task of its own (version-4 id)
    under the migrated ROOT."""
    root = next(r for r in db.sql('SELECT * FROM tasks WHERE "ParentTaskUUID" IS NULL ORDER BY "RunUUID"')
                if runs is None or r["RunUUID"] in runs)
    kfp_task = str(uuid.uuid4())
    db.insert("tasks", {**root, "UUID": kfp_task, "ParentTaskUUID": root["UUID"], "Name": "retried-by-kfp",
                        "ScopePath": "root.retried-by-kfp", "Type": 2, "LogicalKey": uuid.uuid4().hex * 2})
    return root["RunUUID"], root["UUID"], kfp_task


def test_rollback_keeps_rows_kfp_wrote_under_migrated_parents(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    db = Db(k)
    run, root, kfp_task = _kfp_task_under_migrated_root(db)
    kept_before = db.sql('SELECT "UUID" FROM tasks WHERE "RunUUID" = :r ORDER BY "UUID"', r=run)
    others = db.one('SELECT COUNT(*) AS n FROM tasks WHERE "RunUUID" <> :r', r=run)["n"]
    assert others > 0
    report = rollback(k)
    # KFP's task and the migrated rows it hangs under are all still there; other runs' rows are gone
    assert db.sql('SELECT "UUID" FROM tasks WHERE "RunUUID" = :r ORDER BY "UUID"', r=run) == kept_before
    assert db.one('SELECT "ParentTaskUUID" AS p FROM tasks WHERE "UUID" = :u', u=kfp_task)["p"] == root
    assert db.one('SELECT COUNT(*) AS n FROM tasks WHERE "RunUUID" <> :r', r=run)["n"] == 0
    assert report.kept_runs == [run]
    assert any("KFP wrote itself" in n and run in n for n in report.notes)
    assert "tasks" not in report.dropped  # a table holding KFP's rows is never dropped
    db.engine.dispose()


def test_a_second_rollback_after_kfp_rows_are_gone_restores_the_database(databases):
    """Rollback keeps a run KFP wrote into; once the operator deletes KFP's rows, the next rollback
    removes the kept migrated rows, drops the tool's tables and moves the old `tasks` back."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    before = digest(k, tables=None, exclude_prefix="mlmd2kfp_")
    migrate(m, k, MigrateOptions())
    db = Db(k)
    run, _, kfp_task = _kfp_task_under_migrated_root(db)
    first = rollback(k)
    assert first.kept_runs == [run] and not first.restored_old_tasks
    kept_links = db.one('SELECT COUNT(*) AS n FROM artifact_tasks WHERE "RunUUID" = :r', r=run)["n"]
    assert kept_links > 0
    db.sql('DELETE FROM tasks WHERE "UUID" = :u', u=kfp_task)  # the operator deletes KFP's retry
    second = rollback(k)
    assert second.kept_runs == [] and second.restored_old_tasks
    assert second.deleted["artifact_tasks"] == kept_links
    assert digest(k, tables=None, exclude_prefix="mlmd2kfp_") == before
    # the state no longer claims any table: a later migrate must not take the old `tasks` for its own
    state = db.one("SELECT created_tables, staging_table, moved_old_tasks FROM mlmd2kfp_state")
    assert (state["created_tables"], state["staging_table"], state["moved_old_tasks"]) == ("[]", "tasks_migration_tmp", 0)
    db.engine.dispose()


def test_rollback_from_the_cli_says_what_was_kept(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    db = Db(k)
    run, _, kfp_task = _kfp_task_under_migrated_root(db)
    result = run_cli("rollback", "--kfp-url", k, "--yes")
    assert result.code == 0, result.stderr
    assert run in result.stderr and "KFP wrote itself" in result.stderr  # warnings go to stderr
    assert db.one('SELECT COUNT(*) AS n FROM tasks WHERE "UUID" = :u', u=kfp_task)["n"] == 1
    db.engine.dispose()


def test_a_resume_with_other_filters_migrates_every_run(databases):
    m, k = databases.new("m"), databases.new("k")
    clean_m, clean_k = databases.new("cm"), databases.new("ck")
    write_sample(m, k, seed=8)
    write_sample(clean_m, clean_k, seed=8)
    migrate(clean_m, clean_k, MigrateOptions())
    killed = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--stage-only", "--namespace", "team-b",
                     "--batch-rows", "1", "--yes", env={"MLMD2KFP_FAULT_AT": "after-batch:2"})
    assert killed.code == -9, killed.stderr
    db = Db(k)
    assert db.one("SELECT phase, status, last_context_id FROM mlmd2kfp_state")["last_context_id"] > 0
    result = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes")
    assert result.code == 0, result.stderr
    assert "another selection of runs" in result.stdout + result.stderr
    assert digest(k) == digest(clean_k)  # every run, as a clean single migrate writes them
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k).code == 0
    db.engine.dispose()


def test_a_filtered_migrate_never_cuts_over(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    report = migrate(m, k, MigrateOptions(namespaces=("team-a",)))
    assert report.phase == "staged" and not report.cutover
    passed, why = read_status(k).gate
    assert not passed and "staged" in why
    report = migrate(m, k, MigrateOptions())
    assert report.phase == "done" and report.cutover


def test_the_lock_is_per_database_and_a_lost_lock_stops_before_the_next_batch(databases):
    from sqlalchemy import create_engine, text

    from mlmd2kfp.errors import LockHeldError, MigrationFailedError
    from mlmd2kfp.migrate.lock import MigrationLock
    from mlmd2kfp.migrate.state import ensure_tool_tables

    first, second = databases.new("k1"), databases.new("k2")
    one, two = create_engine(first), create_engine(second)
    with MigrationLock(one) as held:
        with MigrationLock(two):  # another KFP database on the same server: not blocked
            pass
        with pytest.raises(LockHeldError, match="already running"):
            with MigrationLock(create_engine(first)):
                pass
        held.check()  # still held
        if databases.backend == "sqlite":
            return  # a file lock has no connection a server could close
        with one.begin() as conn:
            ensure_tool_tables(conn)
        mine = held._conn.exec_driver_sql(
            "SELECT CONNECTION_ID()" if databases.backend == "mariadb" else "SELECT pg_backend_pid()").scalar()
        held._conn.commit()
        with one.connect() as admin:  # what `wait_timeout` or an administrator's KILL does
            admin.execute(text(f"KILL {int(mine)}" if databases.backend == "mariadb"
                               else f"SELECT pg_terminate_backend({int(mine)})"))
            admin.commit()
        with pytest.raises(MigrationFailedError, match="lock was lost.*rerun to resume"):
            held.check()
    one.dispose()
    two.dispose()


def test_a_value_over_the_servers_packet_limit_skips_its_run_and_the_rest_migrates(databases):
    if databases.backend != "mariadb":
        pytest.skip("max_allowed_packet is MySQL's and MariaDB's limit")
    from sqlalchemy import create_engine

    from mlmd2kfp.verify import VerifyOptions, run_verify

    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    mlmd = Db(m)
    run = Db(k).one('SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'importer %\' ORDER BY "UUID"')["UUID"]
    artifact = mlmd.one(
        "SELECT ev.artifact_id AS a FROM Event ev JOIN Association a ON a.execution_id = ev.execution_id JOIN "
        "Context c ON c.id = a.context_id JOIN Artifact ar ON ar.id = ev.artifact_id JOIN Type t ON "
        "t.id = ar.type_id WHERE c.name = :r AND ev.type = 4 AND t.name = 'system.Model'", r=run)["a"]
    admin = create_engine(databases.admin_url)
    with admin.begin() as conn:
        old = conn.exec_driver_sql("SELECT @@GLOBAL.max_allowed_packet").scalar()
        conn.exec_driver_sql("SET GLOBAL max_allowed_packet = 4194304")  # 4 MB: values up to 3 MB fit
    try:
        mlmd.sql("INSERT INTO ArtifactProperty (artifact_id, name, is_custom_property, string_value) "
                 "VALUES (:a, 'notes', 1, :v)", a=artifact, v="n" * (3 * 1024 * 1024 + 100))
        report = migrate(m, k, MigrateOptions())
        assert report.phase == "done"
        db = Db(k)
        skipped = db.one("SELECT reason, detail FROM mlmd2kfp_ledger WHERE run_uuid = :r AND entity = 'run'", r=run)
        assert skipped["reason"] == "value-too-long" and "artifacts.Metadata" in skipped["detail"]
        assert db.one("SELECT COUNT(*) AS n FROM mlmd2kfp_runs WHERE skipped = ''")["n"] == 10
        assert run_verify(m, k, VerifyOptions(record=False)).passed
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"SET GLOBAL max_allowed_packet = {int(old)}")
        admin.dispose()


def test_a_nul_character_bound_for_a_postgresql_target_skips_its_run(tmp_path):
    """MLMD on MariaDB can hold a NUL in an artifact URI; PostgreSQL cannot store it: the run is skipped
    with `unstorable-value` naming the column, the rest migrates and verify agrees."""
    from tests.conftest import BACKENDS, DatabaseFactory

    from mlmd2kfp.verify import VerifyOptions, run_verify

    if not {"mariadb", "postgresql"} <= set(BACKENDS):
        pytest.skip("needs a MariaDB source and a PostgreSQL target")
    sources, targets = DatabaseFactory("mariadb", tmp_path), DatabaseFactory("postgresql", tmp_path)
    try:
        m, k = sources.new("m"), targets.new("k")
        write_sample(m, k, seed=8)
        mlmd = Db(m)
        run = Db(k).one('SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'training%\' '
                        'ORDER BY "UUID"')["UUID"]
        artifact = mlmd.one(
            "SELECT MIN(ev.artifact_id) AS a FROM Event ev JOIN Association a ON a.execution_id = ev.execution_id "
            "JOIN Context c ON c.id = a.context_id WHERE c.name = :r AND ev.type = 4", r=run)["a"]
        mlmd.sql("UPDATE Artifact SET uri = CONCAT(uri, CHAR(0), 'x') WHERE id = :a", a=artifact)
        report = migrate(m, k, MigrateOptions())
        assert report.phase == "done"
        db = Db(k)
        skipped = db.one("SELECT reason, detail FROM mlmd2kfp_ledger WHERE run_uuid = :r AND entity = 'run'", r=run)
        assert skipped["reason"] == "unstorable-value" and "NUL" in skipped["detail"]
        assert db.one('SELECT COUNT(*) AS n FROM tasks WHERE "RunUUID" = :r', r=run)["n"] == 0
        using = {r["name"] for r in mlmd.sql(
            "SELECT DISTINCT c.name AS name FROM Event ev JOIN Association a ON a.execution_id = ev.execution_id "
            "JOIN Context c ON c.id = a.context_id JOIN Type t ON t.id = c.type_id "
            "WHERE ev.artifact_id = :a AND t.name = 'system.PipelineRun'", a=artifact)}
        skipped_runs = {r["run_uuid"]: r["skipped"] for r in db.sql("SELECT run_uuid, skipped FROM mlmd2kfp_runs "
                                                                    "WHERE skipped = 'unstorable-value'")}
        assert skipped_runs == {r: "unstorable-value" for r in using}  # every run holding it, and no other
        assert db.one("SELECT COUNT(*) AS n FROM mlmd2kfp_runs WHERE skipped = ''")["n"] == 11 - len(using)
        assert run_verify(m, k, VerifyOptions(record=False)).passed
        db.engine.dispose()
        mlmd.engine.dispose()
    finally:
        sources.drop_all()
        targets.drop_all()


def _huge_run(m: str, k: str, iterations: int) -> str:
    """One run of `iterations` loop iterations (iterations + 2 tasks), written through ml-metadata in a few
    batched calls; its `run_details` row is a copy of a sample run's without a spec."""
    from ml_metadata.proto import metadata_store_pb2 as pb
    from sqlalchemy.engine import make_url

    from mlmd2kfp.source.mlmd_api import open_store

    store = open_store(make_url(m))
    db = Db(k)
    template = db.one('SELECT * FROM run_details WHERE "DisplayName" LIKE \'training%\' ORDER BY "UUID"')
    run_id = str(uuid.uuid4())
    db.insert("run_details", {**template, "UUID": run_id, "DisplayName": "one huge run",
                              "PipelineSpecManifest": None, "PipelineVersionId": None})
    db.engine.dispose()
    run_type = store.get_context_type("system.PipelineRun")
    [ctx_id] = store.put_contexts([pb.Context(type_id=run_type.id, name=run_id)])
    dag, container = store.get_execution_type("system.DAGExecution"), store.get_execution_type("system.ContainerExecution")

    def execution(type_id: int, state: int, name: str | None = None, **props) -> pb.Execution:
        e = pb.Execution(type_id=type_id, last_known_state=state)
        if name:
            e.name = name
        for key, value in props.items():
            field = "int_value" if isinstance(value, int) else "string_value"
            setattr(e.custom_properties[key], field, value)
        return e

    def put(executions: list) -> list[int]:
        ids = store.put_executions(executions)
        store.put_attributions_and_associations([], [pb.Association(context_id=ctx_id, execution_id=i) for i in ids])
        return ids

    [root] = put([execution(dag.id, 3, f"run/{run_id}", task_name="ROOT")])
    [loop] = put([execution(dag.id, 3, task_name="for-loop-1", parent_dag_id=root, iteration_count=iterations)])
    bodies = put([execution(dag.id, 3, task_name="for-loop-1", parent_dag_id=loop, iteration_index=i)
                  for i in range(iterations)])
    put([execution(container.id, 3, task_name="work", parent_dag_id=body, pod_name=f"work-{n}")
         for n, body in enumerate(bodies)])
    return run_id


def test_one_huge_run_is_read_alone_and_migrated_whole(databases, monkeypatch):
    if databases.backend != "sqlite":
        pytest.skip("the reader's slicing is backend-independent; on the servers this costs CI 2.5 minutes")
    from mlmd2kfp.source.reader import PAGE_EXECUTIONS, MlmdReader
    from mlmd2kfp.verify import VerifyOptions, run_verify

    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    run_id = _huge_run(m, k, 10_000)
    read_at_once: list[tuple[int, int]] = []
    real = MlmdReader._read_page

    def recording(self, contexts):
        bundles = list(real(self, contexts))
        read_at_once.append((len(contexts), sum(len(b.executions) for b in bundles)))
        yield from bundles

    monkeypatch.setattr(MlmdReader, "_read_page", recording)
    report = migrate(m, k, MigrateOptions(reader_process=False))
    assert report.phase == "done"
    assert (1, 20_002) in read_at_once  # the huge run alone
    assert all(n <= PAGE_EXECUTIONS for runs, n in read_at_once if runs > 1)
    db = Db(k)
    assert db.one('SELECT COUNT(*) AS n FROM tasks WHERE "RunUUID" = :r', r=run_id)["n"] == 10_002
    db.engine.dispose()
    assert run_verify(m, k, VerifyOptions(record=False)).passed


def _tool_rows_of(db: Db, runs: set[str]) -> list[tuple]:
    """The tool's tasks and links of `runs` (ids included), for before/after comparisons."""
    out = []
    for table in ("tasks", "artifact_tasks"):
        out += sorted((table, r["UUID"], r["RunUUID"]) for r in db.sql(f'SELECT "UUID", "RunUUID" FROM {table}')
                      if r["RunUUID"] in runs and r["UUID"][14] in "85")
    used = {r["ArtifactID"] for r in db.sql('SELECT "ArtifactID", "RunUUID" FROM artifact_tasks') if r["RunUUID"] in runs}
    return out + sorted(("artifacts", r["UUID"], r["URI"]) for r in db.sql('SELECT "UUID", "URI" FROM artifacts')
                        if r["UUID"] in used)


def test_two_mlmd_sources_into_one_kfp_database(databases):
    """`--source-name`: two MLMD databases into one KFP database, each with its own state, verify and
    rollback; the gate opens once both are verified; the last rollback restores the database."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    m2, second_runs = add_second_source(databases, k)
    first_runs = {r["UUID"] for r in Db(k).sql('SELECT "UUID" FROM run_details')} - set(second_runs)
    before = digest(k, tables=None, exclude_prefix="mlmd2kfp_")
    migrate(m, k, MigrateOptions(stage_only=True))
    # the second source's full pass cuts over (the first one's staged rows move with the table)
    report = migrate(m2, k, MigrateOptions(source_name="second"))
    assert report.cutover and report.runs_written > 0
    passed, why = read_status(k).gate
    assert not passed and why.startswith("the default source (no --source-name): migration not finished")
    migrate(m, k, MigrateOptions())
    db = Db(k)
    tasks_of = {r["RunUUID"] for r in db.sql('SELECT "RunUUID" FROM tasks')}
    assert set(second_runs) & tasks_of and first_runs & tasks_of
    # verify needs to be told which source an MLMD database is, and checks only that source's runs
    ambiguous = run_cli("verify", "--mlmd-url", m, "--kfp-url", k)
    assert ambiguous.code == 3 and "--source-name" in ambiguous.stderr
    wrong = run_cli("verify", "--mlmd-url", m2, "--kfp-url", k, "--source-name", "")
    assert wrong.code == 1  # the second store's runs under the default source's ids: not found
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k, "--source-name", "").code == 0
    assert not read_status(k).gate[0]
    second = run_cli("verify", "--mlmd-url", m2, "--kfp-url", k, "--source-name", "second", "--json",
                     str(databases.tmp_path / "second.json"))
    assert second.code == 0, second.stdout[-2000:]
    assert read_status(k).gate == (True, "migration finished and verified for each of the 2 sources")
    # damage verify must see: tool rows of a source no state row names are not another source's
    db.sql("UPDATE mlmd2kfp_state SET id = 'migration:renamed', source_name = 'renamed' WHERE id = 'migration:second'")
    blind = run_verify(m, k, VerifyOptions(source_name="", record=False))
    assert not blind.passed
    assert {f.run for f in blind.checks["coverage"].failures if f.field == "extra rows"} == set(second_runs) & tasks_of
    db.sql("UPDATE mlmd2kfp_state SET id = 'migration:second', source_name = 'second' WHERE id = 'migration:renamed'")
    seen = run_verify(m, k, VerifyOptions(source_name="", record=False))
    assert seen.passed and seen.checks["coverage"].info["runs of other sources, not checked"] == len(
        set(second_runs) & tasks_of)
    status = run_cli("status", "--kfp-url", k)
    assert "runs second: migrated" in status.stdout and "runs (default): migrated" in status.stdout
    # the first store migrated again under another name is refused before anything is written
    states = db.sql("SELECT * FROM mlmd2kfp_state ORDER BY id")
    again = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--source-name", "third")
    assert again.code == 3 and "was migrated from the default source" in again.stderr
    assert "rerun without --source-name" in again.stderr
    assert db.sql("SELECT * FROM mlmd2kfp_state ORDER BY id") == states
    # a rolled-back source that keeps a run KFP wrote into holds the gate (and cleanup) closed until it is gone
    run, _, kfp_task = _kfp_task_under_migrated_root(db, runs=set(second_runs))
    held = run_cli("rollback", "--kfp-url", k, "--yes", "--source-name", "second")
    assert held.code == 0 and run in held.stderr
    passed, why = read_status(k).gate
    assert not passed and why.startswith("source `second`: the migration was rolled back but keeps the runs")
    refused = run_cli("cleanup", "--kfp-url", k, "--yes")
    assert refused.code == 3 and "cleanup refused" in refused.stderr
    db.sql('DELETE FROM tasks WHERE "UUID" = :u', u=kfp_task)
    assert run_cli("rollback", "--kfp-url", k, "--yes", "--source-name", "second").code == 0
    assert read_status(k).gate == (True, "migration finished and verified")  # the rolled-back source is out
    report = migrate(m2, k, MigrateOptions(source_name="second"))
    assert report.runs_written > 0
    assert run_cli("verify", "--mlmd-url", m2, "--kfp-url", k, "--source-name", "second").code == 0
    # rollback must be told which source; one source's rollback keeps the other's rows and the tables
    kept = _tool_rows_of(db, first_runs)
    refused = run_cli("rollback", "--kfp-url", k, "--yes")
    assert refused.code == 3 and "--source-name" in refused.stderr
    assert _tool_rows_of(db, first_runs) == kept
    undone = run_cli("rollback", "--kfp-url", k, "--yes", "--source-name", "second")
    assert undone.code == 0, undone.stderr
    assert "still in them" in undone.stderr
    assert _tool_rows_of(db, set(second_runs)) == [] and _tool_rows_of(db, first_runs) == kept
    assert not db.sql('SELECT run_uuid FROM mlmd2kfp_runs WHERE source_name = :s', s="second")
    assert not db.sql("SELECT id FROM mlmd2kfp_ledger WHERE run_uuid = '@second'")
    assert read_status(k).gate == (True, "migration finished and verified")  # the rolled-back source is out
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k, "--source-name", "").code == 0
    last = run_cli("rollback", "--kfp-url", k, "--yes")  # the only source left: no name needed
    assert last.code == 0, last.stderr
    assert "moved `tasks_pre_migration` back to `tasks`" in last.stdout
    assert digest(k, tables=None, exclude_prefix="mlmd2kfp_") == before
    db.engine.dispose()


def test_one_sources_rollback_leaves_the_other_sources_artifacts(databases):
    """After the new KFP deleted a run of the first source (its tasks and links go, its artifacts stay
    unused), rolling back the second source deletes only artifacts the second source's runs used."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    m2, second_runs = add_second_source(databases, k)
    migrate(m, k, MigrateOptions())
    migrate(m2, k, MigrateOptions(source_name="second"))
    db = Db(k)
    run = min(r["RunUUID"] for r in db.sql('SELECT "RunUUID" FROM artifact_tasks') if r["RunUUID"] not in second_runs)
    # as the API server deletes a run: its links and tasks go with it, the artifacts stay
    db.sql('DELETE FROM artifact_tasks WHERE "RunUUID" = :r', r=run)
    db.sql('UPDATE tasks SET "ParentTaskUUID" = NULL WHERE "RunUUID" = :r', r=run)
    db.sql('DELETE FROM tasks WHERE "RunUUID" = :r', r=run)
    unused = {r["UUID"] for r in db.sql('SELECT "UUID" FROM artifacts a WHERE NOT EXISTS '
                                        '(SELECT 1 FROM artifact_tasks l WHERE l."ArtifactID" = a."UUID")')}
    assert unused  # the deleted run's artifacts that no other run links
    report = rollback(k, "second")
    assert report.deleted["artifacts"] > 0
    assert unused <= {r["UUID"] for r in db.sql('SELECT "UUID" FROM artifacts')}
    db.engine.dispose()


def test_tool_tables_of_the_release_before_per_source_state_are_taken_over(databases):
    """An older release kept one migration per KFP database, its --source-name in the row `migration`,
    and no source on the runs: status reads it as it is, and the next command under the lock moves it to
    the source's own row, so a rerun with the same name resumes it."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions(source_name="x"))
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k, "--source-name", "x").code == 0
    db = Db(k)
    runless = len(db.sql("SELECT id FROM mlmd2kfp_ledger WHERE run_uuid = '@x'"))
    runs = len(db.sql("SELECT run_uuid FROM mlmd2kfp_runs"))
    db.sql("UPDATE mlmd2kfp_state SET id = 'migration' WHERE id = 'migration:x'")
    db.sql("UPDATE mlmd2kfp_ledger SET run_uuid = '' WHERE run_uuid = '@x'")
    db.sql("ALTER TABLE mlmd2kfp_runs DROP COLUMN source_name")
    gate = run_cli("status", "--kfp-url", k, "--check")
    assert gate.code == 0, gate.stdout
    shown = run_cli("status", "--kfp-url", k)
    assert shown.code == 0 and "runs migrated" in shown.stdout
    again = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--source-name", "x")
    assert again.code == 0, again.stderr
    assert [r["id"] for r in db.sql("SELECT id FROM mlmd2kfp_state")] == ["migration:x"]
    assert {r["source_name"] for r in db.sql("SELECT source_name FROM mlmd2kfp_runs")} == {"x"}
    assert len(db.sql("SELECT run_uuid FROM mlmd2kfp_runs")) == runs
    assert len(db.sql("SELECT id FROM mlmd2kfp_ledger WHERE run_uuid = '@x'")) == runless > 0
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k, "--source-name", "x").code == 0
    assert read_status(k).gate == (True, "migration finished and verified")
    db.engine.dispose()


def test_a_new_source_name_the_state_table_could_confuse_is_refused(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    before = digest(k, tables=None)
    for name, why in (("Prod", "lower-case"), ("p" * 55, "up to 54")):
        result = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--source-name", name)
        assert result.code == 2 and why in result.stderr and "nothing was written" in result.stderr
    assert digest(k, tables=None) == before
