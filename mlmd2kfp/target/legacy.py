"""The pre-upgrade KFP tables the toolkit reads (and `sample` writes): kfp-native-schema.md §1.4, §5.1.

These are KFP master's tables as GORM creates them before MLMD removal. The toolkit never
changes their shape; `sample` creates them for fixtures and demos.
"""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ..dialects import Dialect, dialect_for, digest_prefix, hash_sum_sql, prepare_row_hashes, row_hash_of
from .old_cache import OldCacheRows
from .schema import OLD_TASKS_MARKERS, PRE_MIGRATION_TABLE, STAGING_TABLE, Column, ForeignKey, Index, Table

_C = "CASCADE"


def _cols(*spec: tuple[str, str, bool] | tuple[str, str, bool, str]) -> tuple[Column, ...]:
    return tuple(Column(s[0], s[1], s[2], s[3] if len(s) > 3 else None) for s in spec)


# KFP 2.17.0's models as GORM v1.31 creates them (kubeflow/pipelines backend/src/apiserver/model/).
# `string` is a Go string without a declared type: varchar(255) on MySQL, text on PostgreSQL.
EXPERIMENTS = Table(
    "experiments",
    _cols(
        ("UUID", "varchar(191)", False),
        ("Name", "varchar(128)", False),
        ("Description", "string", False),
        ("CreatedAtInSec", "int64", False),
        ("LastRunCreatedAtInSec", "int64", False),
        ("Namespace", "varchar(63)", False),
        ("StorageState", "string", False),
    ),
    ("UUID",),
    (Index("idx_name_namespace", (("Name", False), ("Namespace", False)), unique=True),),
    (),
)

PIPELINES = Table(
    "pipelines",
    _cols(
        # varchar(64): a longer UUID makes the API server take its legacy (<= 2.14) upgrade path.
        ("UUID", "varchar(64)", False),
        ("CreatedAtInSec", "int64", False),
        ("Name", "varchar(128)", False),
        ("DisplayName", "string", False),
        ("Description", "longtext", False),
        ("Parameters", "longtext", True),
        ("Status", "string", False),
        ("DefaultVersionId", "string", True),
        ("Namespace", "varchar(63)", True),
    ),
    ("UUID",),
    (Index("namespace_name", (("Name", False), ("Namespace", False)), unique=True),),
    (),
)

PIPELINE_VERSIONS = Table(
    "pipeline_versions",
    _cols(
        ("UUID", "varchar(191)", False),
        ("CreatedAtInSec", "int64", False),
        ("Name", "varchar(127)", False),
        ("DisplayName", "string", False),
        ("Parameters", "longtext", False),
        ("PipelineId", "varchar(64)", False),
        ("Status", "string", False),
        ("CodeSourceUrl", "string", True),
        ("Description", "longtext", True),
        ("PipelineSpec", "longtext", False),
        ("PipelineSpecURI", "longtext", False),
    ),
    ("UUID",),
    (
        Index("idx_pipeline_versions_CreatedAtInSec", (("CreatedAtInSec", False),)),
        Index("idx_pipelineid_name", (("Name", False), ("PipelineId", False)), unique=True),
        Index("idx_pipeline_versions_PipelineId", (("PipelineId", False),)),
    ),
    (ForeignKey("pipeline_versions_PipelineId_pipelines_UUID_foreign", ("PipelineId",), "pipelines", ("UUID",),
                _C, _C),),
)

RUN_DETAILS = Table(
    "run_details",
    _cols(
        ("UUID", "varchar(191)", False),
        ("DisplayName", "string", False),
        ("Name", "string", False),
        ("Description", "string", False),
        ("Namespace", "varchar(63)", False),
        ("ExperimentUUID", "varchar(64)", False),
        ("JobUUID", "string", True),
        ("StorageState", "string", False),
        ("ServiceAccount", "string", False),
        ("PipelineId", "string", False),
        ("PipelineVersionId", "string", True),
        ("PipelineName", "string", False),
        ("PipelineSpecManifest", "longtext", True),
        ("WorkflowSpecManifest", "longtext", True),
        ("Parameters", "longtext", True),
        ("RuntimeParameters", "longtext", True),
        ("PipelineRoot", "longtext", True),
        ("CreatedAtInSec", "int64", False),
        ("ScheduledAtInSec", "int64", True, "0"),
        ("FinishedAtInSec", "int64", True, "0"),
        ("Conditions", "varchar(125)", False),
        ("State", "string", True),
        ("StateHistory", "longtext", True),
        ("PluginsInput", "longtext", True),
        ("PluginsOutput", "longtext", True),
        ("PipelineRuntimeManifest", "longtext", False),
        ("WorkflowRuntimeManifest", "longtext", False),
        ("PipelineContextId", "int64", True, "0"),
        ("PipelineRunContextId", "int64", True, "0"),
    ),
    ("UUID",),
    (
        Index("namespace_createatinsec", (("Namespace", False), ("CreatedAtInSec", False))),
        Index("namespace_conditions_finishedatinsec",
              (("Namespace", False), ("Conditions", False), ("FinishedAtInSec", False))),
        Index("experimentuuid_createatinsec", (("ExperimentUUID", False), ("CreatedAtInSec", False))),
        Index("experimentuuid_conditions_finishedatinsec",
              (("ExperimentUUID", False), ("Conditions", False), ("FinishedAtInSec", False))),
    ),
    (),
)

OLD_TASKS = Table(
    "tasks",
    _cols(
        ("UUID", "varchar(191)", False),
        ("Namespace", "string", False),
        ("PipelineName", "string", False),
        ("RunUUID", "varchar(191)", False),
        ("PodName", "string", False),
        ("MLMDExecutionID", "string", False),
        ("CreatedTimestamp", "int64", False),
        ("StartedTimestamp", "int64", True, "0"),
        ("FinishedTimestamp", "int64", True, "0"),
        ("Fingerprint", "string", False),
        ("Name", "string", True),
        ("ParentTaskUUID", "string", True),
        ("State", "string", True),
        ("StateHistory", "longtext", True),
        ("MLMDInputs", "longtext", True),
        ("MLMDOutputs", "longtext", True),
        ("ChildrenPods", "longtext", True),
        ("Payload", "longtext", True),
    ),
    ("UUID",),
    (Index("tasks_RunUUID_run_details_UUID_foreign", (("RunUUID", False),)),),
    (ForeignKey("tasks_RunUUID_run_details_UUID_foreign", ("RunUUID",), "run_details", ("UUID",), _C, _C),),
)

LEGACY_TABLES: tuple[Table, ...] = (EXPERIMENTS, PIPELINES, PIPELINE_VERSIONS, RUN_DETAILS, OLD_TASKS)
"""Creation order of the pre-upgrade KFP tables."""


SERVER_DIGEST, SQLITE_DIGEST = "rowsum1:", "rowsum2:"
"""How a digest the server computed begins (`dialects.row_hash_of`, summed): `rowsum2:` on SQLite since issue
#30 (its faster row hash), `rowsum1:` elsewhere and on SQLite before; one without either is the SHA-256 over
the rows streamed to the client that releases before issue #29's second session recorded."""


STREAMED = {"stream_results": True, "yield_per": 5000}
"""Per statement (a connection's own options would stay set): rows streamed, not held whole."""


def old_tasks_digest(conn: Connection, table: str, recorded: str | None = None,
                     counts: dict[str, int | None] | None = None) -> tuple[int, str]:
    """Rows of an old-form `tasks` table and a digest over them (every column by name): what the cutover
    moved aside, so that `verify` and `rollback` can tell the copy is still whole (issue #27). The database
    computes it (a sum of row hashes, `dialects.row_hash_of`, `hash_sum_sql`: no row is shipped; a MySQL whose SHA2
    does not answer streams the rows as before, and that digest is then the one recorded); given the digest
    `recorded` to compare with, it is computed the way that one was (a release before issue #29 streamed the
    rows into a SHA-256). Stable on one backend, which is all it is compared on. `counts`, when given, gets the
    table's two populations from the same scan (`cache_rows`, `node_rows`: kfp-native-schema.md §5.2)."""
    recipe = _server_recipe(conn, table, recorded)
    if recipe is None:  # a MySQL without SHA2, or a digest streamed by an earlier release: streamed
        rows, digest, cache_rows = _streamed_digest(conn, table, _columns(conn, table))
        if counts is not None:
            counts.update(cache_rows=cache_rows, node_rows=rows - cache_rows)
        return rows, digest
    d, label, row_hash = recipe
    cache = f"SUM(CASE WHEN {d.q('MLMDExecutionID')} <> '' THEN 1 ELSE 0 END)"
    rows, total, cache_rows = conn.exec_driver_sql(
        f"SELECT COUNT(*), {hash_sum_sql(d, row_hash)}, {cache} FROM {d.q(table)}").one()
    if counts is not None:
        counts.update(cache_rows=int(cache_rows or 0), node_rows=int(rows) - int(cache_rows or 0))
    return int(rows), f"{label}{int(total)}"


def old_tasks_scan(conn: Connection, table: str, recorded: str) -> tuple[int, str, OldCacheRows] | None:
    """`old_tasks_digest` and `OldCacheRows.read` of the table in one scan (verify needs both; the table is
    read from disk on KFP's 128 MB pool, issue #30): each row's hash computed by the server and summed here,
    with the cache columns of each row. None where the digest `recorded` is not the server's (then
    `old_tasks_digest` streams the rows)."""
    recipe = _server_recipe(conn, table, recorded)
    if recipe is None:
        return None
    d, label, row_hash = recipe
    q = d.q
    rows, total, cache = 0, 0, []
    for execution, run, fingerprint, hashed in conn.exec_driver_sql(
            f"SELECT {q('MLMDExecutionID')}, {q('RunUUID')}, {q('Fingerprint')}, {row_hash} FROM {q(table)}",
            execution_options=STREAMED):
        rows, total = rows + 1, total + int(hashed)
        if execution:
            cache.append((execution, run, fingerprint))
    return rows, f"{label}{total}", OldCacheRows.of_rows(cache)


def _columns(conn: Connection, table: str) -> list[str]:
    return sorted(c["name"] for c in inspect(conn).get_columns(table))


def _server_recipe(conn: Connection, table: str, recorded: str | None) -> tuple[Dialect, str, str] | None:
    """How the server digests `table` the way `recorded` was (any way when None): the dialect, the digest's
    label (prefix and a hash of the column names) and the row hash over every column by name; None when the
    rows are streamed instead (a digest recorded before issue #29, a MySQL whose SHA2 does not answer)."""
    if recorded is not None and not recorded.startswith((SERVER_DIGEST, SQLITE_DIGEST)):
        return None
    if not prepare_row_hashes(conn):
        return None
    d, columns = dialect_for(conn), _columns(conn, table)
    md5 = recorded is not None and recorded.startswith(SERVER_DIGEST)  # SQLite's recipe before issue #30
    names = hashlib.sha256(json.dumps(columns).encode()).hexdigest()[:12]
    return d, f"{digest_prefix(d, md5)}{names}:", row_hash_of(d, [d.q(c) for c in columns], md5)


def _streamed_digest(conn: Connection, table: str, columns: list[str]) -> tuple[int, str, int]:
    """A SHA-256 over the rows in primary-key order, read by the client (digests recorded before issue #29, a
    MySQL whose SHA2 does not answer); with the rows and the cache rows among them."""
    d = dialect_for(conn)
    sql = (f"SELECT {', '.join(d.q(c) for c in columns)} FROM {d.q(table)} "
           f"ORDER BY {', '.join(d.q(c) for c in OLD_TASKS.primary_key)}")
    digest, rows, cache_rows = hashlib.sha256(json.dumps(columns).encode()), 0, 0
    execution = columns.index("MLMDExecutionID") if "MLMDExecutionID" in columns else None
    for row in conn.exec_driver_sql(sql, execution_options=STREAMED):
        digest.update(json.dumps([None if v is None else str(v) for v in row]).encode() + b"\n")
        rows += 1
        cache_rows += execution is not None and row[execution] not in (None, "")
    return rows, digest.hexdigest(), cache_rows


def old_tasks_present(conn: Connection) -> bool:
    """The pre-MLMD-removal `tasks` table is in place."""
    insp = inspect(conn)
    if "tasks" not in insp.get_table_names():
        return False
    return any(c["name"] in OLD_TASKS_MARKERS for c in insp.get_columns("tasks"))


def tasks_location(conn: Connection) -> str:
    """Where the migrated tasks are, as the database says (never the state, which a kill can leave behind):
    `tasks` once it has the new form (after the cutover, after a rollback that kept KFP's runs, or where KFP
    created it new), else the staging table. The one rule `migrate`, `rollback` and `verify` follow."""
    return "tasks" if "tasks" in inspect(conn).get_table_names() and not old_tasks_present(conn) else STAGING_TABLE


def old_tasks_location(conn: Connection) -> str | None:
    """Where the pre-MLMD-removal `tasks` table is: `tasks` before the cutover, `tasks_pre_migration` after
    it (until `cleanup` drops it), or None."""
    if old_tasks_present(conn):
        return "tasks"
    return PRE_MIGRATION_TABLE if PRE_MIGRATION_TABLE in inspect(conn).get_table_names() else None
