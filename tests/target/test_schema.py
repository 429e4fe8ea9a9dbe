"""`schema create` / `schema check` on every backend (kfp-native-schema.md §1.8, §1.9)."""

from __future__ import annotations

import pytest

from mlmd2kfp.dialects import dialect_named
from mlmd2kfp.target.legacy import OLD_TASKS, RUN_DETAILS
from mlmd2kfp.target.schema import ARTIFACT_TASKS, ARTIFACTS, TASKS, render_create
from tests.helpers import execute, run_cli


def _kfp_db(databases, *, old_tasks: bool = False) -> str:
    url = databases.new("kfp")
    d = dialect_named(databases.backend)
    tables = [RUN_DETAILS] + ([OLD_TASKS] if old_tasks else [])
    execute(url, *[stmt for t in tables for stmt in render_create(t, d)])
    return url


def test_create_then_check_passes(databases):
    url = _kfp_db(databases)
    created = run_cli("schema", "create", "--kfp-url", url)
    assert created.code == 0, created.stderr
    for table in ("artifacts", "tasks", "artifact_tasks"):
        assert f"created table `{table}`" in created.stderr
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 0, checked.stdout + checked.stderr
    assert "schema OK" in checked.stdout
    again = run_cli("schema", "create", "--kfp-url", url)
    assert again.code == 0 and "nothing to create" in again.stderr


def _alter_column(backend: str) -> str:
    return {
        "sqlite": None,  # SQLite cannot ALTER a column type; see the rebuild below
        "mariadb": "ALTER TABLE `tasks` MODIFY `Fingerprint` varchar(128) NOT NULL",
        "postgresql": 'ALTER TABLE "tasks" ALTER COLUMN "Fingerprint" TYPE varchar(128)',
    }[backend]


def test_check_names_a_changed_column(databases):
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    if databases.backend == "sqlite":
        # Rebuild `artifacts` with one column typed differently (SQLite has no ALTER COLUMN).
        d = dialect_named("sqlite")
        ddl = render_create(ARTIFACTS, d)
        ddl[0] = ddl[0].replace('"URIHash" varchar(64)', '"URIHash" varchar(32)')
        execute(url, "PRAGMA foreign_keys=OFF", 'DROP TABLE "artifacts"', *ddl)
        expected = "`artifacts`: column `URIHash` has type varchar(32), expected varchar(64)"
    else:
        execute(url, _alter_column(databases.backend))
        expected = "`tasks`: column `Fingerprint` has type varchar(128), expected varchar(255)"
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert expected in checked.stdout


def test_check_names_a_nullability_and_default_change(databases):
    if databases.backend == "sqlite":
        pytest.skip("SQLite cannot alter a column in place; covered by the type rebuild test")
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    if databases.backend == "mariadb":
        execute(url, "ALTER TABLE `artifact_tasks` MODIFY `Iteration` bigint NOT NULL DEFAULT 0")
    else:
        execute(url, 'ALTER TABLE "artifact_tasks" ALTER COLUMN "Iteration" SET DEFAULT 0')
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert "`artifact_tasks`: column `Iteration` has default 0, expected -1" in checked.stdout


def _drop_cache_lookup_index(backend: str) -> str:
    q = dialect_named(backend).q
    if backend == "mariadb":
        return f"DROP INDEX {q('idx_task_cache_lookup')} ON {q('tasks')}"
    return f"DROP INDEX {q('idx_task_cache_lookup')}"


def test_check_names_a_missing_index(databases):
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    execute(url, _drop_cache_lookup_index(databases.backend))
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert "`tasks`: index `idx_task_cache_lookup` is missing" in checked.stdout


def test_check_names_a_wrong_index_order(databases):
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    q = dialect_named(databases.backend).q
    # Same columns, but ascending CreatedAtInSec: only the sort order differs.
    execute(url, _drop_cache_lookup_index(databases.backend), f"CREATE INDEX {q('idx_task_cache_lookup')} ON {q('tasks')} "
                       f"({q('Fingerprint')}, {q('State')}, {q('Namespace')}, {q('CreatedAtInSec')})")
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert ("`tasks`: index `idx_task_cache_lookup` is on (Fingerprint, State, Namespace, CreatedAtInSec), "
            "expected (Fingerprint, State, Namespace, CreatedAtInSec DESC)") in checked.stdout


def test_check_names_a_missing_foreign_key(databases):
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    if databases.backend == "sqlite":
        ddl = render_create(ARTIFACT_TASKS, dialect_named("sqlite"))
        ddl[0] = ddl[0].replace(
            ',\n  CONSTRAINT "fk_artifact_tasks_runs" FOREIGN KEY ("RunUUID") REFERENCES "run_details"("UUID") '
            "ON DELETE CASCADE ON UPDATE CASCADE", "")
        assert "fk_artifact_tasks_runs" not in ddl[0]
        execute(url, "PRAGMA foreign_keys=OFF", 'DROP TABLE "artifact_tasks"', *ddl)
    elif databases.backend == "mariadb":
        execute(url, "ALTER TABLE `artifact_tasks` DROP FOREIGN KEY `fk_artifact_tasks_runs`")
    else:
        execute(url, 'ALTER TABLE "artifact_tasks" DROP CONSTRAINT "fk_artifact_tasks_runs"')
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert "`artifact_tasks`: foreign key `fk_artifact_tasks_runs` is missing" in checked.stdout


def test_check_names_a_changed_referential_action(databases):
    if databases.backend == "sqlite":
        pytest.skip("SQLite cannot alter a constraint in place")
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    q = dialect_named(databases.backend).q
    drop = ("ALTER TABLE `tasks` DROP FOREIGN KEY `fk_tasks_parent_task`" if databases.backend == "mariadb"
            else 'ALTER TABLE "tasks" DROP CONSTRAINT "fk_tasks_parent_task"')
    execute(url, drop, f"ALTER TABLE {q('tasks')} ADD CONSTRAINT {q('fk_tasks_parent_task')} FOREIGN KEY "
                       f"({q('ParentTaskUUID')}) REFERENCES {q('tasks')}({q('UUID')}) ON UPDATE CASCADE")
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert "`tasks`: foreign key `fk_tasks_parent_task` has ON DELETE NO ACTION, expected CASCADE" in checked.stdout


def test_check_reports_missing_tables(databases):
    url = _kfp_db(databases)
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    for table in ("artifacts", "tasks", "artifact_tasks"):
        assert f"table `{table}` is missing" in checked.stdout


def test_old_tasks_table_is_recognised_and_left_alone(databases):
    url = _kfp_db(databases, old_tasks=True)
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert "old tasks table present" in checked.stdout
    created = run_cli("schema", "create", "--kfp-url", url)
    assert created.code == 0, created.stdout + created.stderr
    assert "created table `artifacts`" in created.stderr
    assert "old tasks table present" in created.stderr and "migrate" in created.stderr
    assert "created table `tasks`" not in created.stderr
    from sqlalchemy import create_engine, inspect

    engine = create_engine(url)
    cols = {c["name"] for c in inspect(engine).get_columns("tasks")}
    tables = set(inspect(engine).get_table_names())
    engine.dispose()
    assert "MLMDExecutionID" in cols, "the old tasks table must be untouched"
    assert "artifact_tasks" not in tables


def test_create_refuses_a_database_without_run_details(databases):
    url = databases.new("empty")
    if databases.backend == "sqlite":  # an empty file: a missing one is refused before (test below)
        execute(url, "CREATE TABLE unrelated (id integer)")
    created = run_cli("schema", "create", "--kfp-url", url)
    assert created.code == 3
    assert "no `run_details` table" in created.stderr
    assert "Traceback" not in created.stderr


@pytest.mark.parametrize("table", [ARTIFACTS, TASKS, ARTIFACT_TASKS], ids=lambda t: t.name)
def test_mysql8_ddl_matches_the_spec_text(table):
    """Compile-only: the MySQL DDL is GORM's (kfp-native-schema.md §1.8), no server needed."""
    [ddl] = render_create(table, dialect_named("mysql"))
    expected = {
        "artifacts": ["`URI` varchar(2048)", "`Metadata` json DEFAULT NULL", "`NumberValue` double DEFAULT NULL",
                      "UNIQUE INDEX `idx_artifact_identity` (`Namespace`,`IdentityKey`)"],
        "tasks": ["`pods` json NOT NULL", "`TypeAttrs` json NOT NULL", "`StartedInSec` bigint DEFAULT 0",
                  "INDEX `idx_task_cache_lookup` (`Fingerprint`,`State`,`Namespace`,`CreatedAtInSec` DESC)",
                  "CONSTRAINT `fk_tasks_parent_task` FOREIGN KEY (`ParentTaskUUID`) REFERENCES `tasks`(`UUID`) "
                  "ON DELETE CASCADE ON UPDATE CASCADE",
                  "CONSTRAINT `fk_run_details_tasks` FOREIGN KEY (`RunUUID`) REFERENCES `run_details`(`UUID`)\n"],
        "artifact_tasks": ["`Iteration` bigint NOT NULL DEFAULT -1", "`ArtifactKey` varchar(191) NOT NULL DEFAULT ''",
                           "UNIQUE INDEX `UniqueLink` (`ArtifactID`,`TaskID`,`Type`,`Iteration`,`ArtifactKey`)",
                           "CONSTRAINT `fk_artifact_tasks_task_run` FOREIGN KEY (`TaskID`,`RunUUID`) REFERENCES "
                           "`tasks`(`UUID`,`RunUUID`) ON DELETE CASCADE ON UPDATE CASCADE"],
    }[table.name]
    for fragment in expected:
        assert fragment in ddl + "\n", fragment


def test_postgres_ddl_uses_gorm_types():
    stmts = render_create(ARTIFACTS, dialect_named("postgresql"))
    assert '"NumberValue" decimal' in stmts[0] and '"Type" integer' in stmts[0]
    assert 'CREATE UNIQUE INDEX "idx_artifact_identity" ON "artifacts" ("Namespace","IdentityKey")' in stmts


def test_a_bulk_load_defers_only_the_indexes_kfps_own_queries_read():
    """W14, written out: unique indexes, foreign-key-led and RunUUID-led ones stay during the load."""
    from mlmd2kfp.target.schema import deferrable_indexes

    assert [ix.name for ix in deferrable_indexes(ARTIFACTS)] == [
        "idx_type_namespace", "idx_namespace_urihash", "idx_artifact_created_timestamp",
        "idx_artifact_last_update_timestamp"]
    assert [ix.name for ix in deferrable_indexes(TASKS)] == [
        "idx_task_cache_lookup", "idx_task_created_timestamp", "idx_task_started_timestamp",
        "idx_task_finished_timestamp", "idx_task_type"]
    assert deferrable_indexes(ARTIFACT_TASKS) == ()


def test_indexes_built_later_are_the_ones_create_table_would_have_made():
    from mlmd2kfp.target.schema import deferrable_indexes, render_indexes

    mysql, pg = dialect_named("mysql"), dialect_named("postgresql")
    [alter] = render_indexes(TASKS, mysql, deferrable_indexes(TASKS)[:2])
    assert alter == ("ALTER TABLE `tasks` ADD INDEX `idx_task_cache_lookup` "
                     "(`Fingerprint`,`State`,`Namespace`,`CreatedAtInSec` DESC), "
                     "ADD INDEX `idx_task_created_timestamp` (`CreatedAtInSec`)")
    assert render_indexes(ARTIFACTS, pg, deferrable_indexes(ARTIFACTS)[:1]) == [
        'CREATE INDEX "idx_type_namespace" ON "artifacts" ("Namespace","Type")']
    assert render_indexes(TASKS, pg, ()) == []
    whole = render_create(TASKS, pg)
    split = render_create(TASKS, pg, without=deferrable_indexes(TASKS))
    assert sorted(split + render_indexes(TASKS, pg, deferrable_indexes(TASKS))) == sorted(whole)


# --- extra objects (mapping.md S4, issue #26) -----------------------------------------------------------


def test_check_accepts_extra_nullable_columns_and_plain_indexes_with_a_warning_each(databases):
    """What a later KFP release adds (a nullable or defaulted column, a non-unique index, a table of its
    own) cannot refuse a row this tool writes: exit 0, one warning line per extra; KFP's own tables
    (`run_details`, …) are not extras."""
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    q = dialect_named(databases.backend).q
    execute(url, f"ALTER TABLE {q('tasks')} ADD COLUMN {q('RetryPolicy')} varchar(64)",
            f"ALTER TABLE {q('artifacts')} ADD COLUMN {q('StorageClass')} varchar(32) NOT NULL DEFAULT 'standard'",
            f"CREATE INDEX {q('idx_link_type')} ON {q('artifact_tasks')} ({q('Type')}, {q('Iteration')})",
            f"CREATE TABLE {q('task_annotations')} ({q('UUID')} varchar(64) NOT NULL PRIMARY KEY)")
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 0, checked.stdout + checked.stderr
    label = "sqlite" if databases.backend == "sqlite" else checked.stdout.split("schema OK (")[1].split(")")[0]
    assert checked.stdout.splitlines() == [
        "warning: `artifacts`: extra column `StorageClass` (default 'standard'; this tool's rows leave it to its "
        "default)",
        "warning: `tasks`: extra column `RetryPolicy` (nullable; this tool's rows leave it NULL)",
        "warning: `artifact_tasks`: extra index `idx_link_type` on (Type, Iteration) (not unique, so it cannot refuse "
        "a row)",
        "warning: extra table `task_annotations` (not one of KFP's tables; this tool neither reads nor writes it)",
        f"schema OK ({label}): artifacts, tasks, artifact_tasks (4 extra object(s) accepted, listed above)",
    ]


def test_check_refuses_extras_that_could_refuse_a_row(databases):
    """A NOT NULL column without a default, a unique index and a foreign key that are not KFP's stay differences."""
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    q = dialect_named(databases.backend).q
    fk = (f"CONSTRAINT {q('fk_artifacts_owner')} FOREIGN KEY ({q('Owner')}) "
          f"REFERENCES {q('run_details')}({q('UUID')})")
    if databases.backend == "sqlite":
        # SQLite adds neither a NOT NULL column without a default nor a constraint: rebuild `artifacts`.
        ddl = render_create(ARTIFACTS, dialect_named("sqlite"))
        ddl[0] = ddl[0].replace('PRIMARY KEY ("UUID")', f'"Owner" varchar(191) NOT NULL,\n  PRIMARY KEY ("UUID"),\n  {fk}')
        execute(url, "PRAGMA foreign_keys=OFF", 'DROP TABLE "artifacts"', *ddl)
    else:
        execute(url, f"ALTER TABLE {q('artifacts')} ADD COLUMN {q('Owner')} varchar(191) NOT NULL",
                f"ALTER TABLE {q('artifacts')} ADD {fk}")
    execute(url, f"CREATE UNIQUE INDEX {q('idx_artifact_urihash_unique')} ON {q('artifacts')} ({q('URIHash')})")
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert checked.stdout.splitlines() == [
        "DIFF `artifacts`: extra column `Owner` is NOT NULL without a default, so this tool's INSERTs (which name "
        "only KFP's columns) would fail; give it a default, make it nullable or drop it",
        "DIFF `artifacts`: extra unique index `idx_artifact_urihash_unique` on (URIHash) is not KFP's and could "
        "refuse rows this tool writes; drop it or make it non-unique",
        "DIFF `artifacts`: extra foreign key `fk_artifacts_owner` (Owner) → run_details(UUID) is not KFP's and "
        "could refuse rows this tool writes or cascade its deletes; drop it",
    ]
    assert "3 difference(s) from the KFP target schema" in checked.stderr


def test_check_names_an_unnamed_extra_foreign_key(databases):
    if databases.backend != "sqlite":
        pytest.skip("MySQL and PostgreSQL name every constraint")
    url = _kfp_db(databases)
    assert run_cli("schema", "create", "--kfp-url", url).code == 0
    execute(url, 'ALTER TABLE "tasks" ADD COLUMN "PipelineRef" varchar(191) REFERENCES "run_details"("UUID")')
    checked = run_cli("schema", "check", "--kfp-url", url)
    assert checked.code == 1
    assert checked.stdout.splitlines() == [
        "warning: `tasks`: extra column `PipelineRef` (nullable; this tool's rows leave it NULL)",
        "DIFF `tasks`: extra foreign key `(unnamed 1)` (PipelineRef) → run_details(UUID) is not KFP's and could "
        "refuse rows this tool writes or cascade its deletes; drop it",
    ]


def test_item_7_create_on_a_path_it_cannot_use_leaves_no_file(tmp_path):
    """Issue #27 item 7: `schema create` on a SQLite path with no KFP database behind it failed and left a
    0-byte file there (which a later `sample` or `migrate` then took for an empty database)."""
    target = tmp_path / "kfp.sqlite"
    result = run_cli("schema", "create", "--kfp-url", f"sqlite:///{target}")
    assert result.code == 3 and "does not exist" in result.stderr, result.stderr
    assert not target.exists()
