"""The cutover without a table copy (issue #29 item 2): `fk_run_details_tasks` is added after one validating
query, in place on MySQL/MariaDB (`foreign_key_checks` off for the statement, then on again) and `NOT VALID` +
`VALIDATE CONSTRAINT` on PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

from mlmd2kfp.dialects import add_checked_foreign_key, dialect_named
from mlmd2kfp.errors import TargetSchemaError
from mlmd2kfp.migrate.runner import MigrateOptions, migrate
from mlmd2kfp.migrate.staging import STAGING, cutover
from tests.helpers import Db


def test_the_statements_on_each_backend_compile_only():
    mysql = add_checked_foreign_key(dialect_named("mysql"), "tasks_migration_tmp", "fk_run_details_tasks",
                                    "RunUUID", "run_details", "UUID")
    assert mysql == (["SET SESSION foreign_key_checks = 0",
                      "ALTER TABLE `tasks_migration_tmp` ADD CONSTRAINT `fk_run_details_tasks` FOREIGN KEY "
                      "(`RunUUID`) REFERENCES `run_details`(`UUID`)"],
                     ["SET SESSION foreign_key_checks = 1"])
    postgresql = add_checked_foreign_key(dialect_named("postgresql"), "tasks_migration_tmp", "fk_run_details_tasks",
                                         "RunUUID", "run_details", "UUID")
    assert postgresql == (['ALTER TABLE "tasks_migration_tmp" ADD CONSTRAINT "fk_run_details_tasks" FOREIGN KEY '
                           '("RunUUID") REFERENCES "run_details"("UUID") NOT VALID',
                           'ALTER TABLE "tasks_migration_tmp" VALIDATE CONSTRAINT "fk_run_details_tasks"'], [])


def _staged(databases):
    pytest.importorskip("ml_metadata")
    if databases.backend == "sqlite":
        pytest.skip("SQLite stages with the foreign key in place (it cannot add one later)")
    from tests.samples import write_sample

    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions(stage_only=True))
    return m, k


def test_a_staged_run_whose_run_details_is_gone_refuses_the_cutover_and_changes_nothing(databases):
    _, k = _staged(databases)
    db = Db(k)
    run = db.one(f'SELECT "RunUUID" FROM {db.q(STAGING)} ORDER BY "RunUUID"')["RunUUID"]
    db.sql('DELETE FROM run_details WHERE "UUID" = :u', u=run)  # the old server deleted it meanwhile
    engine = create_engine(k)
    with pytest.raises(TargetSchemaError, match=f"cutover refused: staged tasks of run {run} have no `run_details`"):
        cutover(engine, STAGING)
    with engine.connect() as conn:  # no foreign key, nothing renamed
        names = {r[0] for r in conn.execute(text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = "
            + ("DATABASE()" if databases.backend == "mariadb" else "current_schema()")))}
    assert STAGING in names and "tasks_pre_migration" not in names
    engine.dispose()
    db.engine.dispose()


def test_the_foreign_key_is_in_force_after_the_cutover_and_the_session_checks_again(databases):
    _, k = _staged(databases)
    engine = create_engine(k, pool_size=1, max_overflow=0)  # one session: the cutover's, handed back to the pool
    assert cutover(engine, STAGING) == {"moved_old_tasks": True}
    if databases.backend == "mariadb":
        with engine.connect() as conn:
            assert conn.execute(text("SELECT @@SESSION.foreign_key_checks")).scalar() == 1
    engine.dispose()
    db = Db(k)
    task = db.one('SELECT * FROM tasks ORDER BY "UUID"')
    with pytest.raises(Exception, match="(?i)foreign key"):  # a task of no run is refused by the key itself
        db.insert("tasks", {**task, "UUID": str(uuid.uuid4()), "RunUUID": str(uuid.uuid4()), "ParentTaskUUID": None,
                            "LogicalKey": None})
    db.engine.dispose()
