"""MLMD's tables as SQLAlchemy Core objects, and the schema-version gate (mlmd-source-model.md §1.2)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Column, Integer, LargeBinary, MetaData, String, Table, Text, inspect, select
from sqlalchemy.engine import Connection

from ..dialects import dialect_for
from ..errors import SourceError

SUPPORTED_SCHEMA_VERSIONS = (10,)


def _prop_table(md: MetaData, name: str, owner: str) -> Table:
    return Table(
        name, md,
        # BOOLEAN on PostgreSQL, TINYINT(1) elsewhere: Boolean renders `= true` / `= 1` as each needs.
        Column(owner, Integer), Column("name", String(255)), Column("is_custom_property", Boolean),
        Column("int_value", BigInteger), Column("double_value"), Column("string_value", Text),
        Column("proto_value", LargeBinary), Column("bool_value", Boolean),
    )


@dataclass(frozen=True)
class MlmdTables:
    """Core tables of one MLMD database (PostgreSQL names are lower-case)."""

    type: Table
    context: Table
    context_property: Table
    parent_context: Table
    association: Table
    attribution: Table
    execution: Table
    execution_property: Table
    artifact: Table
    artifact_property: Table
    event: Table
    event_path: Table
    env: Table


def mlmd_tables(lower_case: bool) -> MlmdTables:
    """Core `Table`s for MLMD with the table-name case of the backend."""
    md = MetaData()

    def n(name: str) -> str:
        return name.lower() if lower_case else name

    times = ("create_time_since_epoch", "last_update_time_since_epoch")
    return MlmdTables(
        type=Table(n("Type"), md, Column("id", Integer), Column("name", String(255)), Column("type_kind", Integer)),
        context=Table(n("Context"), md, Column("id", Integer), Column("type_id", Integer),
                      Column("name", String(255)), *(Column(t, BigInteger) for t in times)),
        context_property=_prop_table(md, n("ContextProperty"), "context_id"),
        parent_context=Table(n("ParentContext"), md, Column("context_id", Integer),
                             Column("parent_context_id", Integer)),
        association=Table(n("Association"), md, Column("id", Integer), Column("context_id", Integer),
                          Column("execution_id", Integer)),
        attribution=Table(n("Attribution"), md, Column("id", Integer), Column("context_id", Integer),
                          Column("artifact_id", Integer)),
        execution=Table(n("Execution"), md, Column("id", Integer), Column("type_id", Integer),
                        Column("last_known_state", Integer), Column("name", String(255)),
                        *(Column(t, BigInteger) for t in times)),
        execution_property=_prop_table(md, n("ExecutionProperty"), "execution_id"),
        artifact=Table(n("Artifact"), md, Column("id", Integer), Column("type_id", Integer), Column("uri", Text),
                       Column("state", Integer), Column("name", String(255)),
                       *(Column(t, BigInteger) for t in times)),
        artifact_property=_prop_table(md, n("ArtifactProperty"), "artifact_id"),
        event=Table(n("Event"), md, Column("id", Integer), Column("artifact_id", Integer),
                    Column("execution_id", Integer), Column("type", Integer),
                    Column("milliseconds_since_epoch", BigInteger)),
        event_path=Table(n("EventPath"), md, Column("event_id", Integer), Column("is_index_step", Boolean),
                         Column("step_index", Integer), Column("step_key", Text)),
        env=Table(n("MLMDEnv"), md, Column("schema_version", Integer)),
    )


def open_mlmd(conn: Connection) -> MlmdTables:
    """Check that `conn` holds an MLMD database of a supported schema version; return its tables.

    Raises:
        SourceError: not an MLMD database, or a schema version other than 10.
    """
    tables = mlmd_tables(dialect_for(conn).lower_case_mlmd)
    names = set(inspect(conn).get_table_names())
    if tables.env.name not in names:
        raise SourceError(
            f"the MLMD database has no `{tables.env.name}` table, so it is not an ML Metadata database "
            "(or --mlmd-url names the wrong database; KFP's default is `metadb`)"
        )
    versions = [r[0] for r in conn.execute(select(tables.env.c.schema_version))]
    if len(versions) != 1 or versions[0] not in SUPPORTED_SCHEMA_VERSIONS:
        found = ", ".join(map(str, versions)) or "none"
        raise SourceError(
            f"MLMD schema version {found} is not supported; supported: "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))} (ml-metadata 1.11-1.17, the MLMD server KFP 2.0.2+ ships). "
            "Upgrade the MLMD database with the MLMD server of your KFP release first"
        )
    return tables
