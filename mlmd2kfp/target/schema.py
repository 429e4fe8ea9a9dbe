"""The MLMD-free KFP schema (`artifacts`, `tasks`, `artifact_tasks`), exactly as GORM creates it.

The definition below is kfp-native-schema.md §1.8 (MySQL) and §1.9 (PostgreSQL, SQLite) as data:
`render_create` turns it into DDL per backend and `check_schema` compares a live database with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Inspector, inspect
from sqlalchemy.types import UserDefinedType
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import ReflectedForeignKeyConstraint
from sqlalchemy.exc import DBAPIError

from ..dialects import Dialect, IndexInfo, dialect_for, json_checked_columns, read_indexes
from ..errors import TargetSchemaError


class JsonText(UserDefinedType):  # type: ignore[type-arg]
    """A `json` column written from canonical JSON text, with no client-side encoding or casts."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "json"


@dataclass(frozen=True)
class Column:
    """One column of the target schema."""

    name: str
    kind: str
    """`varchar(N)`, `int32`, `int64`, `text`, `json`, `double`, `longtext` or `string` (a Go string
    without a declared type: varchar(255) on MySQL, text elsewhere); see `Dialect.column_type`."""
    nullable: bool
    default: str | None = None
    """SQL literal of the default, or None for none / NULL."""
    explicit_null_default: bool = False
    """GORM writes `DEFAULT null` (MySQL DDL only; same meaning as no default)."""


@dataclass(frozen=True)
class Index:
    """A secondary index; `columns` are (name, descending)."""

    name: str
    columns: tuple[tuple[str, bool], ...]
    unique: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """A foreign key with its referential actions (None = the backend default, NO ACTION)."""

    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str | None = None
    on_update: str | None = None


@dataclass(frozen=True)
class Table:
    """One table: columns in DDL order, primary key, indexes, foreign keys."""

    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[Index, ...]
    foreign_keys: tuple[ForeignKey, ...]


def _ix(name: str, *cols: str, unique: bool = False) -> Index:
    return Index(name, tuple((c.removesuffix(" DESC"), c.endswith(" DESC")) for c in cols), unique)


_CASCADE = "CASCADE"

ARTIFACTS = Table(
    "artifacts",
    (
        Column("UUID", "varchar(191)", False),
        Column("Namespace", "varchar(63)", False),
        Column("Type", "int32", True, explicit_null_default=True),
        Column("URI", "varchar(2048)", True),
        Column("URIHash", "varchar(64)", True),
        Column("Name", "varchar(128)", True, explicit_null_default=True),
        Column("Description", "text", True, explicit_null_default=True),
        Column("CreatedAtInSec", "int64", False, "0"),
        Column("LastUpdateInSec", "int64", False, "0"),
        Column("Metadata", "json", True, explicit_null_default=True),
        Column("NumberValue", "double", True, explicit_null_default=True),
        Column("IdentityKey", "varchar(64)", True, explicit_null_default=True),
    ),
    ("UUID",),
    (
        _ix("idx_type_namespace", "Namespace", "Type"),
        _ix("idx_namespace_urihash", "Namespace", "URIHash"),
        _ix("idx_artifact_identity", "Namespace", "IdentityKey", unique=True),
        _ix("idx_artifact_created_timestamp", "CreatedAtInSec"),
        _ix("idx_artifact_last_update_timestamp", "LastUpdateInSec"),
    ),
    (),
)

TASKS = Table(
    "tasks",
    (
        Column("UUID", "varchar(191)", False),
        Column("Namespace", "varchar(63)", False),
        Column("RunUUID", "varchar(191)", False),
        Column("pods", "json", False),
        Column("CreatedAtInSec", "int64", False),
        Column("StartedInSec", "int64", True, "0"),
        Column("FinishedInSec", "int64", True, "0"),
        Column("Fingerprint", "varchar(255)", False),
        Column("Name", "varchar(128)", True, explicit_null_default=True),
        Column("DisplayName", "varchar(128)", True, explicit_null_default=True),
        Column("ParentTaskUUID", "varchar(191)", True, explicit_null_default=True),
        Column("State", "int32", False),
        Column("StatusMetadata", "json", True, explicit_null_default=True),
        Column("StateHistory", "json", True),
        Column("InputParameters", "json", True),
        Column("OutputParameters", "json", True),
        Column("Type", "int32", False),
        Column("TypeAttrs", "json", False),
        Column("ScopePath", "text", True, explicit_null_default=True),
        Column("LogicalKey", "varchar(64)", True, explicit_null_default=True),
    ),
    ("UUID",),
    (
        _ix("idx_tasks_uuid_run", "UUID", "RunUUID", unique=True),
        _ix("idx_task_cache_lookup", "Fingerprint", "State", "Namespace", "CreatedAtInSec DESC"),
        _ix("idx_parent_run", "RunUUID", "ParentTaskUUID"),
        _ix("idx_task_created_timestamp", "CreatedAtInSec"),
        _ix("idx_task_started_timestamp", "StartedInSec"),
        _ix("idx_task_finished_timestamp", "FinishedInSec"),
        _ix("idx_parent_task_uuid", "ParentTaskUUID"),
        _ix("idx_task_type", "Type"),
        _ix("idx_tasks_logical_key", "LogicalKey", unique=True),
    ),
    (
        ForeignKey("fk_tasks_parent_task", ("ParentTaskUUID",), "tasks", ("UUID",), _CASCADE, _CASCADE),
        # No ON DELETE/UPDATE: GORM drops the tag's CASCADE (kfp-native-schema.md §1.3, Q1).
        ForeignKey("fk_run_details_tasks", ("RunUUID",), "run_details", ("UUID",)),
    ),
)

ARTIFACT_TASKS = Table(
    "artifact_tasks",
    (
        Column("UUID", "varchar(191)", False),
        Column("ArtifactID", "varchar(191)", False),
        Column("TaskID", "varchar(191)", False),
        Column("Type", "int32", False),
        Column("Iteration", "int64", False, "-1"),
        Column("RunUUID", "varchar(191)", False),
        Column("Producer", "json", True, explicit_null_default=True),
        Column("ArtifactKey", "varchar(191)", False, "''"),
    ),
    ("UUID",),
    (
        _ix("idx_link_artifact_id", "ArtifactID"),
        _ix("UniqueLink", "ArtifactID", "TaskID", "Type", "Iteration", "ArtifactKey", unique=True),
        _ix("idx_link_task_run", "TaskID", "RunUUID"),
        _ix("idx_link_run_id", "RunUUID"),
    ),
    (
        ForeignKey("fk_artifact_tasks_artifacts", ("ArtifactID",), "artifacts", ("UUID",), _CASCADE, _CASCADE),
        ForeignKey("fk_artifact_tasks_task_run", ("TaskID", "RunUUID"), "tasks", ("UUID", "RunUUID"), _CASCADE, _CASCADE),
        ForeignKey("fk_artifact_tasks_runs", ("RunUUID",), "run_details", ("UUID",), _CASCADE, _CASCADE),
    ),
)

TARGET_TABLES: tuple[Table, ...] = (ARTIFACTS, TASKS, ARTIFACT_TASKS)
"""In creation order: parents before children (kfp-native-schema.md §1.8)."""

# Columns only the old (pre-MLMD-removal) `tasks` table has (kfp-native-schema.md §5.1).
OLD_TASKS_MARKERS = ("MLMDExecutionID", "PipelineName", "PodName")


def deferrable_indexes(table: Table) -> tuple[Index, ...]:
    """The secondary indexes a bulk load into a new `table` may build after its rows (mapping.md W14).

    Kept during the load: unique indexes (MySQL's upsert and duplicate detection depend on them), every
    index a foreign key's columns lead (MySQL needs it for the key, cascades look children up with it,
    `idx_tasks_uuid_run` is the links' referenced key) and every index led by `RunUUID` (the writer's
    per-run deletes and live-row checks). What is left is only read by the API server's own queries.
    """
    fk_columns = [fk.columns for fk in table.foreign_keys]

    def needed(ix: Index) -> bool:
        names = tuple(c for c, _ in ix.columns)
        return (ix.unique or names[0] == "RunUUID"
                or any(names[:len(cols)] == cols for cols in fk_columns))

    return tuple(ix for ix in table.indexes if not needed(ix))


def render_indexes(table: Table, d: Dialect, indexes: tuple[Index, ...]) -> list[str]:
    """Statements that add `indexes` to the existing `table` (one ALTER on MySQL: one pass over the rows)."""
    if not indexes:
        return []
    q = d.q
    if d.inline_indexes:
        return [f"ALTER TABLE {q(table.name)} " + ", ".join(
            f"ADD {'UNIQUE ' if ix.unique else ''}INDEX {q(ix.name)} ({_index_columns(ix, d)})" for ix in indexes)]
    return [f"CREATE {'UNIQUE ' if ix.unique else ''}INDEX {q(ix.name)} ON {q(table.name)} ({_index_columns(ix, d)})"
            for ix in indexes]


def _index_columns(ix: Index, d: Dialect) -> str:
    return ",".join(d.q(c) + (" DESC" if desc else "") for c, desc in ix.columns)


def render_create(table: Table, d: Dialect, without: tuple[Index, ...] = ()) -> list[str]:
    """CREATE statements for `table` on dialect `d`, in execution order; the indexes in `without` are
    left out (a bulk load builds them afterwards with `render_indexes`)."""
    q = d.q
    lines = []
    for col in table.columns:
        line = f"{q(col.name)} {d.column_type(col.kind)}"
        if not col.nullable:
            line += " NOT NULL"
        if col.default is not None:
            line += f" DEFAULT {col.default}"
        elif col.explicit_null_default and d.ddl_default_null:
            line += " DEFAULT NULL"
        lines.append(line)
    lines.append(f"PRIMARY KEY ({', '.join(q(c) for c in table.primary_key)})")
    indexes = tuple(ix for ix in table.indexes if ix not in without)
    if d.inline_indexes:
        lines += [f"{'UNIQUE ' if ix.unique else ''}INDEX {q(ix.name)} ({_index_columns(ix, d)})" for ix in indexes]
    for fk in table.foreign_keys:
        clause = (
            f"CONSTRAINT {q(fk.name)} FOREIGN KEY ({','.join(q(c) for c in fk.columns)}) "
            f"REFERENCES {q(fk.ref_table)}({','.join(q(c) for c in fk.ref_columns)})"
        )
        if fk.on_delete:
            clause += f" ON DELETE {fk.on_delete}"
        if fk.on_update:
            clause += f" ON UPDATE {fk.on_update}"
        lines.append(clause)
    body = ",\n  ".join(lines)
    return [f"CREATE TABLE {q(table.name)} (\n  {body}\n)", *([] if d.inline_indexes else render_indexes(table, d, indexes))]


# --- checking a live database -------------------------------------------------------------


@dataclass
class TableStatus:
    """What `check_schema` found for one table."""

    name: str
    present: bool
    differences: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Extra objects that cannot reject or change a row this tool writes: accepted (mapping.md S4)."""
    old_form: bool = False
    """Only for `tasks`: the pre-MLMD-removal table (§5.1) is in place."""


KFP_TABLES = frozenset({"db_statuses", "default_experiments", "experiments", "pipelines", "pipeline_versions",
                        "pipeline_tags", "pipeline_version_tags", "jobs", "run_details", "run_metrics", "tasks",
                        "artifacts", "artifact_tasks", "resource_references"})
"""The tables the MLMD-free API server's AutoMigrate makes (`pr:apiserver/model/common.go:76-93`, GORM's names)."""
STAGING_TABLE, PRE_MIGRATION_TABLE = "tasks_migration_tmp", "tasks_pre_migration"
"""The table a migration stages `tasks` in, and the one it moves the old `tasks` to (mapping.md §7)."""
MIGRATION_TABLES = frozenset({STAGING_TABLE, PRE_MIGRATION_TABLE})
TOOL_TABLE_PREFIX = "mlmd2kfp_"
"""The prefix of the tool's own tables (state, runs, ledger: mapping.md §8)."""


def extra_tables(names: set[str]) -> list[str]:
    """Tables of the KFP database that are neither KFP's, nor the migration's, nor the tool's: a later KFP
    release's, or somebody's; accepted and left alone, with a warning each (docs/mapping.md S4)."""
    return sorted(n for n in names if n not in KFP_TABLES and n not in MIGRATION_TABLES
                  and not n.startswith(TOOL_TABLE_PREFIX))


def extra_table_warning(name: str) -> str:
    """The warning line for an extra table."""
    return f"extra table `{name}` (not one of KFP's tables; this tool neither reads nor writes it)"


@dataclass
class SchemaStatus:
    """The target schema's state on one database (a report, data only)."""

    dialect: str
    tables: list[TableStatus]
    extra_tables: list[str] = field(default_factory=list)
    """Tables beside KFP's, the migration's and the tool's (`extra_tables`)."""

    @property
    def differences(self) -> list[str]:
        """Every difference, each naming its table and object."""
        out: list[str] = []
        for t in self.tables:
            if not t.present:
                out.append(f"table `{t.name}` is missing")
            elif t.old_form:
                out.append("old tasks table present: `tasks` has the pre-MLMD-removal form "
                           "(`mlmd2kfp migrate` moves it aside to `tasks_pre_migration`)")
            out.extend(t.differences)
        return out

    @property
    def warnings(self) -> list[str]:
        """Every extra object accepted beside the target schema (mapping.md S4), each naming its table."""
        return [w for t in self.tables for w in t.warnings] + [extra_table_warning(n) for n in self.extra_tables]

    @property
    def old_tasks_present(self) -> bool:
        """The old-form `tasks` table exists."""
        return any(t.old_form for t in self.tables)

    @property
    def ok(self) -> bool:
        """True when every table exists as specified (extra objects listed in `warnings` allowed)."""
        return not self.differences


def _normalise_type(type_obj: object, d: Dialect) -> str:
    name = type(type_obj).__name__.lower()
    length = getattr(type_obj, "length", None)
    if name in ("varchar", "string", "nvarchar"):
        return f"varchar({length})"
    return d.catalog_type(name)


def _normalise_default(raw: object) -> str | None:
    if raw is None:
        return None
    value = str(raw).strip()
    if value.upper() == "NULL":
        return None
    for cast in ("::character varying", "::text", "::bigint", "::integer"):
        value = value.replace(cast, "")
    value = value.strip("()")
    if value.upper() == "NULL":  # PostgreSQL's `NULL::character varying`: no default either
        return None
    if len(value) >= 2 and value[0] == value[-1] == "'":
        inner = value[1:-1]
        # MariaDB reports numeric defaults of numeric columns unquoted, PostgreSQL quotes '-1'.
        try:
            float(inner)
            return inner
        except ValueError:
            return f"'{inner}'"
    return value


def check_table(conn: Connection, d: Dialect, spec: Table, physical_name: str) -> TableStatus:
    """Compare the live table `physical_name` with `spec`: differences, and the extras accepted (S4)."""
    insp = inspect(conn)
    status = TableStatus(spec.name, present=True)
    where = f"`{physical_name}`"
    actual_cols = {c["name"]: c for c in insp.get_columns(physical_name)}
    if spec.name == "tasks" and any(m in actual_cols for m in OLD_TASKS_MARKERS):
        status.old_form = True
        return status
    json_cols = json_checked_columns(conn, d, physical_name)
    for col in spec.columns:
        got = actual_cols.get(col.name)
        if got is None:
            status.differences.append(f"{where}: column `{col.name}` is missing")
        else:
            status.differences.extend(_column_differences(where, d, col, got, col.name in json_cols))
    for name in sorted(actual_cols.keys() - {c.name for c in spec.columns}):
        _extra_column(status, where, name, actual_cols[name])
    pk = tuple(insp.get_pk_constraint(physical_name).get("constrained_columns") or ())
    if pk != spec.primary_key:
        status.differences.append(f"{where}: primary key is ({', '.join(pk)}), "
                                  f"expected ({', '.join(spec.primary_key)})")
    actual_ix = {ix.name: ix for ix in read_indexes(conn, d, physical_name)}
    for ix in spec.indexes:
        got_ix = actual_ix.pop(ix.name, None)
        if got_ix is None:
            status.differences.append(f"{where}: index `{ix.name}` is missing")
        else:
            status.differences.extend(_index_differences(where, ix, got_ix))
    actual_fk = _reflect_foreign_keys(insp, physical_name)
    # MySQL creates an index named after a FK when no index covers it; that is not an object of its own.
    fk_backing = {fk.name for fk in spec.foreign_keys} | set(actual_fk)
    for name in sorted(actual_ix.keys() - fk_backing):
        _extra_index(status, where, name, actual_ix[name])
    for fk in spec.foreign_keys:
        got_fk = actual_fk.pop(fk.name, None)
        if got_fk is None:
            status.differences.append(f"{where}: foreign key `{fk.name}` is missing")
        else:
            status.differences.extend(_foreign_key_differences(where, fk, got_fk))
    for name in sorted(actual_fk):
        got_fk = actual_fk[name]
        # An extra key could refuse our rows or cascade our deletes into other tables (mapping.md S4).
        status.differences.append(
            f"{where}: extra foreign key `{name}` ({', '.join(got_fk['constrained_columns'])}) → "
            f"{got_fk['referred_table']}({', '.join(got_fk['referred_columns'])}) is not KFP's and could "
            "refuse rows this tool writes or cascade its deletes; drop it")
    return status


def _column_differences(where: str, d: Dialect, col: Column, got: Mapping[str, Any], json_checked: bool) -> list[str]:
    """How the live column `got` differs from `col`: type, nullability, default."""
    diffs: list[str] = []
    want_type = d.column_type(col.kind)
    have_type = _normalise_type(got["type"], d)
    if want_type == "json" and d.mariadb and have_type == "longtext" and json_checked:
        have_type = "json"  # MariaDB's JSON is LONGTEXT CHECK (json_valid(col)); only there.
    if have_type != want_type:
        diffs.append(f"{where}: column `{col.name}` has type {have_type}, expected {want_type}")
    if bool(got["nullable"]) != col.nullable:
        diffs.append(
            f"{where}: column `{col.name}` is {'NULL' if got['nullable'] else 'NOT NULL'}, "
            f"expected {'NULL' if col.nullable else 'NOT NULL'}"
        )
    have_default = _normalise_default(got.get("default"))
    if have_default != col.default:
        diffs.append(
            f"{where}: column `{col.name}` has default {have_default or 'none'}, "
            f"expected {col.default or 'none'}"
        )
    return diffs


def _index_differences(where: str, ix: Index, got_ix: IndexInfo) -> list[str]:
    """How the live index `got_ix` differs from `ix`: columns, uniqueness."""
    diffs: list[str] = []
    if got_ix.columns != ix.columns:
        diffs.append(f"{where}: index `{ix.name}` is on {_cols(got_ix.columns)}, expected {_cols(ix.columns)}")
    if got_ix.unique != ix.unique:
        diffs.append(f"{where}: index `{ix.name}` is {'' if got_ix.unique else 'not '}unique, "
                     f"expected {'' if ix.unique else 'not '}unique")
    return diffs


def _extra_index(status: TableStatus, where: str, name: str, extra: IndexInfo) -> None:
    """An index of `status`'s table the spec does not have: accepted unless it is unique."""
    if extra.unique:  # it could refuse a row KFP's schema accepts (mapping.md S4)
        status.differences.append(f"{where}: extra unique index `{name}` on {_cols(extra.columns)} is not KFP's "
                                  "and could refuse rows this tool writes; drop it or make it non-unique")
    else:
        status.warnings.append(f"{where}: extra index `{name}` on {_cols(extra.columns)} (not unique, so it "
                               "cannot refuse a row)")


def _reflect_foreign_keys(insp: Inspector, physical_name: str) -> dict[str, ReflectedForeignKeyConstraint]:
    """The live foreign keys of `physical_name` by name; unnamed ones as `(unnamed N)`."""
    reflected_fks = insp.get_foreign_keys(physical_name)
    actual_fk = {str(fk["name"]): fk for fk in reflected_fks if fk.get("name")}
    # SQLite keeps a key declared without CONSTRAINT unnamed; it is an extra key all the same.
    actual_fk.update({f"(unnamed {i + 1})": fk for i, fk in enumerate(f for f in reflected_fks if not f.get("name"))})
    return actual_fk


def _foreign_key_differences(where: str, fk: ForeignKey, got_fk: ReflectedForeignKeyConstraint) -> list[str]:
    """How the live foreign key `got_fk` differs from `fk`: columns and target, referential actions."""
    diffs: list[str] = []
    shape = (tuple(got_fk["constrained_columns"]), got_fk["referred_table"], tuple(got_fk["referred_columns"]))
    if shape != (fk.columns, fk.ref_table, fk.ref_columns):
        diffs.append(
            f"{where}: foreign key `{fk.name}` is ({', '.join(shape[0])}) → {shape[1]}({', '.join(shape[2])}), "
            f"expected ({', '.join(fk.columns)}) → {fk.ref_table}({', '.join(fk.ref_columns)})"
        )
    opts = got_fk.get("options") or {}
    for key, want in (("ondelete", fk.on_delete), ("onupdate", fk.on_update)):
        have = _normalise_action(opts.get(key))
        if have != _normalise_action(want):
            diffs.append(
                f"{where}: foreign key `{fk.name}` has {key.replace('on', 'ON ').upper()} "
                f"{have or 'NO ACTION'}, expected {_normalise_action(want) or 'NO ACTION'}"
            )
    return diffs


def _extra_column(status: TableStatus, where: str, name: str, got: Mapping[str, Any]) -> None:
    """A column of `status`'s table the spec does not have: accepted when a row that does not name it can
    still be inserted (mapping.md S4, issue #26); this tool's INSERTs name only the spec's columns."""
    default = _normalise_default(got.get("default"))
    if got.get("computed") or got.get("identity") or got.get("autoincrement") is True:
        status.warnings.append(f"{where}: extra column `{name}` (filled by the database; "
                               "this tool's rows leave it to the database)")
    elif default is not None:
        status.warnings.append(f"{where}: extra column `{name}` ({'nullable, ' if got['nullable'] else ''}"
                               f"default {default}; this tool's rows leave it to its default)")
    elif got["nullable"]:
        status.warnings.append(f"{where}: extra column `{name}` (nullable; this tool's rows leave it NULL)")
    else:
        status.differences.append(
            f"{where}: extra column `{name}` is NOT NULL without a default, so this tool's INSERTs (which name "
            "only KFP's columns) would fail; give it a default, make it nullable or drop it")


def _normalise_action(action: str | None) -> str | None:
    if action is None:
        return None
    action = action.upper()
    return None if action in ("NO ACTION", "RESTRICT") else action


def _cols(cols: tuple[tuple[str, bool], ...]) -> str:
    return "(" + ", ".join(c + (" DESC" if desc else "") for c, desc in cols) + ")"


def check_schema(conn: Connection, skip: tuple[str, ...] = ()) -> SchemaStatus:
    """Compare the live database behind `conn` with the target schema.

    Args:
        conn: a connection to the KFP database.
        skip: target tables to leave out of the comparison.
    """
    d = dialect_for(conn)
    existing = set(inspect(conn).get_table_names())
    tables = []
    for spec in TARGET_TABLES:
        if spec.name in skip:
            continue
        if spec.name not in existing:
            tables.append(TableStatus(spec.name, present=False))
        else:
            tables.append(check_table(conn, d, spec, spec.name))
    return SchemaStatus(d.label, tables, extra_tables(existing))


@dataclass
class CreateResult:
    """What `create_schema` did."""

    created: list[str]
    skipped: list[str]
    """Tables left to `migrate` because the old-form `tasks` table is in place."""
    notes: list[str]
    status: SchemaStatus
    """The check of every table not skipped, after creating."""


def require_run_details(table_names: set[str]) -> None:
    """Refuse a database that is not KFP's (every target table hangs off `run_details`).

    Raises:
        TargetSchemaError: `run_details` is missing.
    """
    if "run_details" not in table_names:
        raise TargetSchemaError(
            "the KFP database has no `run_details` table, so it is not a KFP API-server database "
            "(or the URL names the wrong database); point --kfp-url at KFP's database "
            "(`mlpipeline` in a default install)"
        )


def create_schema(conn: Connection) -> CreateResult:
    """Create the missing target tables, in foreign-key order; leave existing ones alone.

    The old-form `tasks` table is never touched: with it in place only `artifacts` is
    created, and `tasks`/`artifact_tasks` are left to `migrate`, which stages them in
    `tasks_migration_tmp` and swaps the old table aside (mapping.md §7).

    Raises:
        TargetSchemaError: `run_details` is missing, or a CREATE failed (tables created
            by this call are dropped again, so nothing is half-made).
    """
    d = dialect_for(conn)
    existing = set(inspect(conn).get_table_names())
    require_run_details(existing)
    before = check_schema(conn)
    created: list[str] = []
    skipped: list[str] = []
    notes: list[str] = []
    todo = [t for t in TARGET_TABLES if t.name not in existing]
    if before.old_tasks_present:
        # `artifact_tasks` references the new-form `tasks`, so it waits for migrate too.
        skipped = ["tasks", "artifact_tasks"]
        todo = [t for t in todo if t.name not in skipped]
        notes.append(
            "old tasks table present: `tasks` (pre-MLMD-removal form) was left in place; "
            "`mlmd2kfp migrate` creates the new `tasks` in a staging table (and `artifact_tasks`) "
            "and moves the old one aside to `tasks_pre_migration`"
        )
    try:
        for table in todo:
            for stmt in render_create(table, d):
                conn.exec_driver_sql(stmt)
            created.append(table.name)
    except DBAPIError as exc:
        if not d.transactional_ddl:
            for name in reversed(created):
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {d.q(name)}")
        raise TargetSchemaError(
            f"creating `{table.name}` failed: {' '.join(str(exc.orig).split())[:300]}; "
            f"nothing was left half-created (tables of this call dropped: {', '.join(created) or 'none'})"
        ) from None
    return CreateResult(created, skipped, notes, check_schema(conn, skip=tuple(skipped)))
