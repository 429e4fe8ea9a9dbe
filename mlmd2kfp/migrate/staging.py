"""The schema phase and the cutover (mapping.md §7).

While the old API server may still run, tasks are staged in `tasks_migration_tmp` (references to
`tasks` written against it, no `fk_run_details_tasks` so the old server can still delete runs). The
cutover adds that key and swaps the tables in one atomic step.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import dataclasses
import json

from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from ..dialects import add_checked_foreign_key, can_add_foreign_key, dialect_for, missing_privilege, read_indexes, rename_statements
from ..errors import PrivilegeError, TargetSchemaError
from ..faults import fault_point
from ..target.legacy import old_tasks_present, tasks_location
from ..target.schema import (ARTIFACT_TASKS, ARTIFACTS, PRE_MIGRATION_TABLE, STAGING_TABLE, TASKS,
                             ForeignKey, Table, check_table, deferrable_indexes, extra_table_warning, extra_tables,
                             render_create, render_indexes)

STAGING, PRE_MIGRATION = STAGING_TABLE, PRE_MIGRATION_TABLE
RUN_FK = "fk_run_details_tasks"


def staged_tables(staging: str, with_run_fk: bool) -> tuple[Table, Table, Table]:
    """The three target tables with every reference to `tasks` pointing at `staging`."""
    def point(fk: ForeignKey) -> ForeignKey:
        return dataclasses.replace(fk, ref_table=staging) if fk.ref_table == "tasks" else fk

    tasks = dataclasses.replace(TASKS, name=staging, foreign_keys=tuple(
        point(fk) for fk in TASKS.foreign_keys if with_run_fk or fk.name != RUN_FK))
    links = dataclasses.replace(ARTIFACT_TASKS, foreign_keys=tuple(point(fk) for fk in ARTIFACT_TASKS.foreign_keys))
    return ARTIFACTS, tasks, links


def privilege_error(exc: DBAPIError, what: str) -> Exception:
    privilege = missing_privilege(exc)
    if privilege:
        return PrivilegeError(
            f"the KFP database user lacks the {privilege} privilege needed to {what}; nothing was written. "
            "Grant it DDL on the KFP database (CREATE, ALTER, DROP, INDEX, REFERENCES) and DML "
            "(SELECT, INSERT, UPDATE, DELETE), or run the migration as KFP's own database user")
    return TargetSchemaError(f"could not {what}: {' '.join(str(exc.orig).split())[:300]}")


def old_tasks_counts(conn: Connection, table: str) -> dict[str, int | None]:
    """The old table's two populations (kfp-native-schema.md §5.2)."""
    from sqlalchemy import Column, MetaData, String, Table as SaTable, case, func, select

    t = SaTable(table, MetaData(), Column("MLMDExecutionID", String))
    row = conn.execute(select(func.sum(case((t.c.MLMDExecutionID != "", 1), else_=0)),
                              func.sum(case((t.c.MLMDExecutionID == "", 1), else_=0)))).one()
    return {"cache_rows": int(row[0] or 0), "node_rows": int(row[1] or 0)}


def check_existing_targets(engine: Engine, tool_created: Collection[str] = ()
                           ) -> tuple[str, tuple[Any, ...], set[str], Any, list[str]]:
    """The table tasks go to, the table specs to have, the tables present, the dialect and the extra
    objects accepted on the existing tables (nullable or defaulted columns, non-unique indexes: mapping.md
    S4; the writer names only KFP's columns and leaves them alone).

    On the tables in `tool_created` (made by an earlier pass of this tool) the indexes a load builds
    after its rows may be missing: an interrupted first pass builds them when it completes (W14).

    Raises:
        TargetSchemaError: an existing new-form table differs from the spec (every difference listed).
    """
    with engine.begin() as conn:
        d = dialect_for(conn)
        names = set(inspect(conn).get_table_names())
        staging = tasks_location(conn)
        new_form_tasks = staging == "tasks"
        # SQLite cannot add a constraint later; no KFP server runs on SQLite to delete runs meanwhile.
        tables = (ARTIFACTS, TASKS, ARTIFACT_TASKS) if new_form_tasks else staged_tables(
            STAGING, with_run_fk=not can_add_foreign_key(d))
        differences, warnings = [], []
        for spec in tables:
            if spec.name in names:
                status = check_table(conn, d, spec, spec.name)
                expected = {f"`{RUN_FK}`"} if spec.name == STAGING else set()  # added at cutover
                if spec.name in tool_created:
                    expected |= {f"index `{ix.name}` is missing" for ix in deferrable_indexes(spec)}
                status.differences = [x for x in status.differences if not any(e in x for e in expected)]
                differences += status.differences
                warnings += status.warnings
        warnings += [extra_table_warning(n) for n in extra_tables(names)]
        if differences:
            raise TargetSchemaError(
                "the KFP database already has target tables that differ from KFP's schema, so nothing was "
                "written:\n  " + "\n  ".join(differences) + "\nFix or drop them (`mlmd2kfp schema check` lists them)")
    return staging, tables, names, d, warnings


def prepare_schema(engine: Engine, before_create: Callable[[str], None] | None = None,
                   tool_created: Collection[str] = ()) -> tuple[str, list[str]]:
    """Create what is missing; return (table tasks are written to, tables created now).

    `before_create(name)` is called before each CREATE, so the state can list a table as this tool's
    before it exists (MySQL commits DDL at once: a kill between two CREATEs must not leave a table
    that rollback does not know it made). A table created here has only the indexes the load needs;
    `build_deferred_indexes` adds the rest after the data pass (W14).

    Raises:
        TargetSchemaError: an existing new-form table differs from the spec (every difference listed).
        PrivilegeError: the user may not create tables.
    """
    staging, tables, names, d, _ = check_existing_targets(engine, tool_created)
    created: list[str] = []
    try:
        with engine.begin() as conn:  # one transaction on PostgreSQL and SQLite; MySQL DDL auto-commits
            for spec in tables:
                if spec.name not in names:
                    if before_create is not None:
                        before_create(spec.name)
                    for stmt in render_create(spec, d, without=deferrable_indexes(spec)):
                        conn.exec_driver_sql(stmt)
                    created.append(spec.name)
                    fault_point("schema")
    except DBAPIError as exc:
        raise privilege_error(exc, "create the target tables") from None
    return staging, created


def build_deferred_indexes(engine: Engine, tool_created: Collection[str]) -> list[str]:
    """Add the indexes `prepare_schema` left out to the tables in `tool_created` that lack them; return
    their names. Idempotent (what exists is left alone), so a pass killed here builds the rest on rerun.

    Raises:
        TargetSchemaError / PrivilegeError: an index could not be built (the message says which).
    """
    staging, tables, names, d, _ = check_existing_targets(engine, tool_created)
    built: list[str] = []
    for spec in tables:
        if spec.name not in tool_created or spec.name not in names:
            continue
        with engine.begin() as conn:
            present = {ix.name for ix in read_indexes(conn, d, spec.name)}
            todo = tuple(ix for ix in deferrable_indexes(spec) if ix.name not in present)
            try:
                for stmt in render_indexes(spec, d, todo):
                    conn.exec_driver_sql(stmt)
            except DBAPIError as exc:
                raise privilege_error(exc, f"build the indexes of `{spec.name}` "
                                            f"({', '.join(ix.name for ix in todo)})") from None
        built += [ix.name for ix in todo]
        fault_point("indexes")
    return built


def cutover(engine: Engine, staging: str) -> dict[str, object]:
    """Add `fk_run_details_tasks` and swap `tasks` → `tasks_pre_migration`, staging → `tasks`.

    Raises:
        TargetSchemaError: a foreign key still references `tasks_pre_migration` afterwards, or a
            staged row's run no longer exists (the old server must be stopped first).
    """
    report: dict[str, object] = {"moved_old_tasks": False}
    if staging == "tasks":
        return report
    with engine.begin() as conn:
        d = dialect_for(conn)
        moved = old_tasks_present(conn)
        add: list[str] = []
        restore: list[str] = []
        fks = {fk["name"] for fk in inspect(conn).get_foreign_keys(staging)}
        if RUN_FK not in fks:
            _refuse_runs_gone(conn, staging)
            add, restore = add_checked_foreign_key(d, staging, RUN_FK, "RunUUID", "run_details", "UUID")
        renames = ([("tasks", PRE_MIGRATION)] if moved else []) + [(staging, "tasks")]
        try:
            _execute(conn, add, restore)  # the session's checks are back on before the swap
            _execute(conn, rename_statements(d, renames), [])
        except DBAPIError as exc:
            raise privilege_error(exc, "add `fk_run_details_tasks` and swap the tasks tables") from None
        for table in inspect(conn).get_table_names():
            for fk in inspect(conn).get_foreign_keys(table):
                if fk.get("referred_table") == PRE_MIGRATION and table != PRE_MIGRATION:
                    raise TargetSchemaError(f"after the swap, `{table}`.`{fk['name']}` still references "
                                            f"`{PRE_MIGRATION}`; the tables were not swapped cleanly")
        report["moved_old_tasks"] = moved
    return report


def _execute(conn: Connection, statements: list[str], restore: list[str]) -> None:
    """`statements` in order (a fault point after each), then `restore` whatever happened: the session goes
    back to the pool as it came."""
    try:
        for stmt in statements:
            conn.exec_driver_sql(stmt)
            fault_point("cutover")
    finally:
        for stmt in restore:
            conn.exec_driver_sql(stmt)


def _refuse_runs_gone(conn: Connection, staging: str) -> None:
    """The one query that validates `fk_run_details_tasks` before it is added unchecked: every staged task's
    run is still in `run_details`.

    Raises:
        TargetSchemaError: naming a run whose `run_details` row is gone (nothing was changed).
    """
    q = dialect_for(conn).q
    orphan = conn.exec_driver_sql(
        f"SELECT t.{q('RunUUID')} FROM {q(staging)} t WHERE NOT EXISTS (SELECT 1 FROM {q('run_details')} r "
        f"WHERE r.{q('UUID')} = t.{q('RunUUID')}) LIMIT 1").first()
    if orphan is not None:
        raise TargetSchemaError(
            f"cutover refused: staged tasks of run {orphan[0]} have no `run_details` row any more (the old API server "
            "deleted the run while the tasks were staged, or still runs); nothing was changed. Stop the old API "
            "server and rerun `mlmd2kfp migrate`: the true-up drops the rows of deleted runs")


def created_tables_json(previous: str | None, created: list[str]) -> str:
    """Merge the tables created now into the state's list (for rollback)."""
    before = json.loads(previous or "[]")
    return json.dumps(sorted(set(before) | set(created)))
