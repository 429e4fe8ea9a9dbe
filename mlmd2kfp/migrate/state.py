"""The tool's own tables in the KFP database (mapping.md §8): migration state, per-run marks, ledger.

Progress is written with the work (STYLE.md point 5): every batch updates the state row in its own
transaction and checks that exactly one row changed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import time
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Column as SaColumn, Float, Integer, MetaData, String, Table as SaTable, Text, inspect, select
from sqlalchemy.engine import Connection

from ..dialects import dialect_for
from ..errors import ConfigError, ResumeError, UsageError
from ..target.schema import Column, Index, Table, render_create

class Phase(StrEnum):
    """Where a source's migration is (`mlmd2kfp_state.phase`)."""

    SCHEMA = "schema"
    DATA = "data"
    STAGED = "staged"
    """A `--stage-only` pass finished: the tasks wait in the staging table."""
    CUTOVER = "cutover"
    DONE = "done"
    """Cut over: the migrated tasks are in `tasks`."""
    ROLLED_BACK = "rolled_back"
    CLEANED_UP = "cleaned_up"
    """After `cleanup`: the migration finished and was verified; only the state rows are left (the gate reads
    them), KFP owns the data."""


class Status(StrEnum):
    """How the last command on a source's migration ended (`mlmd2kfp_state.status`)."""

    RUNNING = "running"
    INTERRUPTED = "interrupted"
    """Ctrl-C or SIGTERM: a rerun resumes."""
    FAILED = "failed"
    DONE = "done"
    KEPT_RUNS = "kept-runs"
    """A rolled-back migration that kept the runs KFP wrote into (rollback must run again)."""


KEPT_RUNS = Status.KEPT_RUNS
CLEANED_UP = Phase.CLEANED_UP


def cleaned_up_line(state: Any) -> str:
    """What a cleaned-up migration is, with when (the state row's last update is the cleanup)."""
    at = state["updated_at"] if isinstance(state, dict) else state.updated_at
    return ("migration finished, verified and cleaned up (" + time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(at)))
            + ")")


def refuse_cleaned_up(states: list[Any], source_name: str | None, command: str, why: str) -> None:
    """Refuse `command` on a source (any source when `source_name` is None) whose migration was cleaned up.

    Raises:
        ResumeError: naming the command, the time and `why` there is nothing for it to do.
    """
    for s in states:
        if s.phase == CLEANED_UP and (source_name is None or s.source_name == source_name):
            raise ResumeError(f"{command} refused: the {cleaned_up_line(s)}; {why} (nothing was changed)")


MAPPING_VERSION = "4"
"""Bumped whenever a mapping rule changes the rows produced; an older version's migration is rewritten by the
next whole pass, a newer one refused (docs/mapping.md M26)."""
STATE_ID = "migration"
"""The state row of the default source (no `--source-name`); a named source's row is `migration:<name>`."""

ADDED_STATE_COLUMNS = ("old_tasks_rows", "old_tasks_digest", "gate_opened_at", "verify_chain")
"""State columns later releases added (nullable): `upgrade_tool_tables` adds them, and state rows are read
with what a table has, the rest None."""
RUNS = Table(
    "mlmd2kfp_runs",
    (
        Column("run_uuid", "varchar(191)", False), Column("context_id", "int64", False),
        Column("marks", "varchar(64)", False), Column("namespace", "varchar(63)", False),
        Column("skipped", "varchar(64)", False), Column("tasks", "int32", False), Column("links", "int32", False),
        Column("artifact_ids", "longtext", False), Column("mlmd_artifact_ids", "longtext", False),
        Column("migrated_at", "int64", False), Column("source_name", "varchar(191)", False),
        Column("digest", "varchar(64)", True), Column("run_mark", "varchar(64)", True),
        Column("sums", "varchar(64)", True),
    ),
    ("run_uuid",), (Index("idx_mlmd2kfp_runs_context", (("context_id", False),)),), (),
)
"""One row per migrated run; `source_name` says which MLMD source wrote it (a run belongs to one source);
`digest` is `target.digest.rows_digest` of the rows written for it and `run_mark` its `run_details` state then
(NULL: written by a release before them, or not written: docs/mapping.md W15); `sums` the same rows' sums as
the database computes them (`target.run_sums`, its tasks and links; NULL: an earlier release, or a database
that cannot hash), what the true-up compares without reading the rows back (issue #30)."""
ADDED_RUNS_COLUMNS = ("digest", "run_mark", "sums")
VERIFIED = Table(
    "mlmd2kfp_verified",
    (
        Column("run_uuid", "varchar(191)", False), Column("source_name", "varchar(191)", False),
        Column("context_id", "int64", False), Column("mlmd_mark", "varchar(64)", False),
        Column("target_sums", "varchar(64)", False), Column("mlmd_artifact_ids", "longtext", False),
        Column("chain", "int64", False), Column("verified_at", "int64", False),
    ),
    ("run_uuid",), (), (),
)
"""What verify proved per run (issue #30), written by `verify` only: the MLMD mark and the target sums it
compared, the MLMD artifacts the run links, and the full verify its chain starts from (`verify_chain`)."""
LEDGER = Table(
    "mlmd2kfp_ledger",
    (
        Column("id", "varchar(64)", False), Column("run_uuid", "varchar(191)", False),
        Column("entity", "varchar(16)", False), Column("mlmd_id", "int64", False),
        Column("reason", "varchar(64)", False), Column("detail", "text", True),
    ),
    ("id",), (Index("idx_mlmd2kfp_ledger_run", (("run_uuid", False),)),
              Index("idx_mlmd2kfp_ledger_reason", (("reason", False),))), (),
)


def core_table(spec: Table, name: str | None = None, md: MetaData | None = None) -> SaTable:
    """A SQLAlchemy Core table for inserts and selects (types only matter for binding)."""
    from ..target.schema import JsonText

    types = {"int32": Integer, "int64": BigInteger, "text": Text, "longtext": Text, "json": JsonText, "double": Float}
    cols = []
    for c in spec.columns:
        kind = String if c.kind.startswith("varchar") else types.get(c.kind, String)
        cols.append(SaColumn(c.name, kind(), primary_key=c.name in spec.primary_key))
    return SaTable(name or spec.name, md or MetaData(), *cols)


def ensure_tool_tables(conn: Connection) -> list[str]:
    """Create the tool's tables that are missing (and bring older ones up to date); returns the names created."""
    d = dialect_for(conn)
    existing = set(inspect(conn).get_table_names())
    created = []
    for table in TOOL_TABLES:
        if table.name not in existing:
            for stmt in render_create(table, d):
                conn.exec_driver_sql(stmt)
            created.append(table.name)
    upgrade_tool_tables(conn)
    return created


def upgrade_tool_tables(conn: Connection) -> None:
    """Tool tables written before per-source state (one migration per KFP database, its `--source-name` in
    the row `migration`): the runs table gets its `source_name` column, and a migration recorded under a
    source name moves to that source's row, with its runs and run-less ledger rows. Idempotent; every
    command that takes the migration lock calls it first."""
    names = set(inspect(conn).get_table_names())
    d = dialect_for(conn)
    if RUNS.name in names and "source_name" not in {c["name"] for c in inspect(conn).get_columns(RUNS.name)}:
        conn.exec_driver_sql(f"ALTER TABLE {d.q(RUNS.name)} ADD COLUMN {d.q('source_name')} varchar(191) "
                             "NOT NULL DEFAULT ''")
    if RUNS.name in names:
        have_runs = {c["name"] for c in inspect(conn).get_columns(RUNS.name)}
        for column in (c for c in RUNS.columns if c.name in ADDED_RUNS_COLUMNS and c.name not in have_runs):
            conn.exec_driver_sql(f"ALTER TABLE {d.q(RUNS.name)} ADD COLUMN {d.q(column.name)} {d.column_type(column.kind)}")
    if STATE.name not in names:
        return
    if VERIFIED.name not in names and RUNS.name in names:  # verify's records (issue #30), for a migration an
        # earlier release wrote (not after a cleanup, which drops the tool's tables but the state)
        for stmt in render_create(VERIFIED, d):
            conn.exec_driver_sql(stmt)
    have = {c["name"] for c in inspect(conn).get_columns(STATE.name)}
    for column in (c for c in STATE.columns if c.name in ADDED_STATE_COLUMNS and c.name not in have):
        conn.exec_driver_sql(f"ALTER TABLE {d.q(STATE.name)} ADD COLUMN {d.q(column.name)} {d.column_type(column.kind)}")
    t = core_table(STATE)
    legacy = conn.execute(select(t.c.source_name).where(t.c.id == STATE_ID, t.c.source_name != "")).scalar()
    if legacy is None or conn.execute(select(t.c.id).where(t.c.id == state_id(legacy))).first() is not None:
        return
    conn.execute(t.update().where(t.c.id == STATE_ID).values(id=state_id(legacy)))
    if RUNS.name in names:
        runs = core_table(RUNS)
        conn.execute(runs.update().where(runs.c.source_name == "").values(source_name=legacy))
    if LEDGER.name in names:
        ledger = core_table(LEDGER)
        conn.execute(ledger.update().where(ledger.c.run_uuid == "").values(run_uuid=runless_run_id(legacy)))


SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,53}")
"""A new `--source-name`: lower case (MySQL compares text without case), short enough for the state id."""


def check_new_source(source_name: str, recorded: list[str]) -> None:
    """Refuse a name for a new source that the state table could not tell apart from another.

    Raises:
        ConfigError: not lower-case letters, digits, `.`, `_`, `-` (up to 54), or equal to a recorded name
            but for case.
    """
    if source_name and not SOURCE_NAME.fullmatch(source_name):
        raise UsageError(f"--source-name `{source_name}`: use lower-case letters, digits, `.`, `_` and `-` "
                          "(up to 54 characters, starting with a letter or digit); nothing was written")
    for name in recorded:
        if name != source_name and name.lower() == source_name.lower():
            raise ConfigError(f"--source-name `{source_name}` differs from the recorded source `{name}` only in "
                              f"case, which MySQL does not tell apart; pass `{name}` to continue that migration, "
                              "or another name; nothing was written")


def state_id(source_name: str) -> str:
    """The state row's id for a source: each `--source-name` has a migration of its own."""
    return f"{STATE_ID}:{source_name}" if source_name else STATE_ID


def runless_run_id(source_name: str) -> str:
    """The run id a source's run-less ledger rows are filed under (rows that belong to no run)."""
    return f"@{source_name}" if source_name else ""


def source_label(source_name: str) -> str:
    """How messages name a source."""
    return f"source `{source_name}`" if source_name else "the default source (no --source-name)"


def source_option(state: MigrationState) -> str:
    """The `--source-name` a command for this source needs ('' for the default source)."""
    return f" --source-name {state.source_name}" if state.source_name else ""


def holder() -> str:
    """Who runs this migrator (host and pid), for the lock message and the state row."""
    return f"{socket.gethostname()}:{os.getpid()}"


def options_fingerprint(source_name: str, multi_user: bool, namespaces: tuple[str, ...] = (),
                        run_ids: tuple[str, ...] = ()) -> str:
    """A digest of the options that change the rows produced, and of the pass's selection of runs
    (`--namespace`/`--run`): a checkpoint is resumed only by a pass over the same selection."""
    base = hashlib.sha256(json.dumps([MAPPING_VERSION, source_name, multi_user]).encode()).hexdigest()[:16]
    if not namespaces and not run_ids:
        return base
    selection = json.dumps([sorted(set(namespaces)), sorted(set(run_ids))])
    return f"{base}:{hashlib.sha256(selection.encode()).hexdigest()[:16]}"


def column(kind: str, **kw: Any) -> Any:
    """A `MigrationState` field and the kind of its column in `mlmd2kfp_state`."""
    return field(metadata={"kind": kind}, **kw)


@dataclass(frozen=True)
class MigrationState:
    """One source's state row (`mlmd2kfp_state`), a field per column: the one definition of the state's columns
    (the table `STATE` is made from these fields: name, type as its column kind, nullable when the field may be
    None)."""

    id: str = column("varchar(64)")
    tool_version: str = column("varchar(32)")
    """The release that last ran `migrate` on this source."""
    mapping_version: str = column("varchar(32)")
    source_name: str = column("varchar(191)")
    options_fingerprint: str = column("varchar(64)")
    """`options_fingerprint()` of the last pass: its checkpoint is resumed only by a pass with the same one."""
    multi_user: int = column("int32")
    phase: str = column("varchar(32)")
    """A `Phase` (the text as stored when a later release wrote a phase this one does not know)."""
    status: str = column("varchar(32)")
    """A `Status`, likewise."""
    pass_number: int = column("int32")
    last_context_id: int = column("int64")
    """The checkpoint: the pass resumes after this run context."""
    runs_migrated: int = column("int64")
    runs_skipped: int = column("int64")
    tasks: int = column("int64")
    artifacts: int = column("int64")
    links: int = column("int64")
    started_at: int = column("int64")
    updated_at: int = column("int64")
    finished_at: int | None = column("int64")
    last_error: str | None = column("text")
    holder: str | None = column("varchar(255)")
    staging_table: str = column("varchar(64)")
    created_tables: str | None = column("text")
    """JSON list of the target tables this source's migration created (listed before each CREATE)."""
    moved_old_tasks: int = column("int32")
    verify_passed: int | None = column("int32")
    verify_at: int | None = column("int64")
    verify_result: str | None = column("text")
    old_tasks_rows: int | None = column("int64", default=None)
    """The rows of `tasks_pre_migration` when the cutover moved the old `tasks` aside (what rollback restores)."""
    old_tasks_digest: str | None = column("varchar(64)", default=None)
    """Their digest then (`target.legacy.old_tasks_digest`): verify and rollback check the copy is still whole."""
    gate_opened_at: int | None = column("int64", default=None)
    """When a verify first opened the startup gate: from then on the new KFP may change migrated runs, and a run
    whose rows differ from what the tool wrote is KFP's (docs/mapping.md W15)."""
    verify_chain: str | None = column("text", default=None)
    """JSON: the passing full verify the per-run records (`mlmd2kfp_verified`) chain to (its time, mapping
    version, sums recipe); None: the next verify is a full one. `migrate` leaves it: the sums tell what it changed."""

    @property
    def values(self) -> dict[str, Any]:
        """The row as a dict (for reports)."""
        return asdict(self)

    @property
    def verify(self) -> VerifyRecord:
        """What the last verify recorded (`verify_passed`, `verify_at`, the JSON `verify_result`)."""
        try:
            result = json.loads(self.verify_result or "null")
        except ValueError:  # a damaged record says nothing: the gate then stays closed
            result = None
        result = result if isinstance(result, dict) else {}
        chain = result.get("chain")
        chain = chain if isinstance(chain, dict) else {}
        return VerifyRecord(None if self.verify_passed is None else bool(self.verify_passed), self.verify_at,
                            _text(result.get("scope")), _text(result.get("phase")), _text(result.get("invalidated")),
                            _text(result.get("kind")) or "full", _text(chain.get("mapping_version")))


def _text(value: Any) -> str | None:
    """A recorded value as text; an empty one (None, 0, "", [], {}) records nothing."""
    return str(value) if value else None


@dataclass(frozen=True)
class VerifyRecord:
    """A verify's result as a source's state row records it (what the startup gate reads)."""

    passed: bool | None
    """None: no verify recorded since the last `migrate` (or it was invalidated)."""
    at: int | None
    scope: str | None = None
    """`whole`, or `partial` for a `--run`/`--namespace` subset (which never opens the gate)."""
    phase: str | None = None
    """The migration's phase verify saw: `after cutover`, or the staged table before it."""
    invalidated: str | None = None
    """Why the last verify no longer holds (a `migrate` or `rollback` ran during or after it)."""
    kind: str = "full"
    """`full`, or `incremental`: compared in full only what changed since the records of a full verify."""
    chain_mapping_version: str | None = None
    """An incremental verify's: the mapping version of the full verify its records chain to."""

STATE = Table("mlmd2kfp_state", tuple(Column(f.name, f.metadata["kind"], "None" in str(f.type))
                                      for f in fields(MigrationState)), ("id",), (), ())
"""The state table, made from `MigrationState`."""
TOOL_TABLES = (STATE, RUNS, LEDGER, VERIFIED)


def load_state(conn: Connection, source_name: str = "") -> MigrationState | None:
    """A source's state row, or None before its first migration (or before the tool's tables exist)."""
    if STATE.name not in inspect(conn).get_table_names():
        return None
    query, t = _state_select(conn)
    row = conn.execute(query.where(t.c.id == state_id(source_name))).mappings().first()
    return _typed(row) if row else None


def load_states(conn: Connection) -> list[MigrationState]:
    """Every source's state row, the default source first, then by name."""
    if STATE.name not in inspect(conn).get_table_names():
        return []
    rows = [_typed(r) for r in conn.execute(_state_select(conn)[0]).mappings()]
    return sorted(rows, key=lambda s: (s.id != STATE_ID, s.source_name))


def _typed(row: Any) -> MigrationState:
    """A state row as a `MigrationState`, its phase and status as the enums they are; a value this release does
    not know (a later release's, a hand edit) stays the text it is, for the mapping-version and gate checks to
    name, instead of failing every command that reads the state."""
    values = dict(row)
    if values["phase"] in Phase._value2member_map_:
        values["phase"] = Phase(values["phase"])
    if values["status"] in Status._value2member_map_:
        values["status"] = Status(values["status"])
    return MigrationState(**values)


def _state_select(conn: Connection) -> tuple[Any, SaTable]:
    """SELECT of the state table's columns, without those a table of an earlier release lacks (None then),
    and the table it selects from."""
    t = core_table(STATE)
    have = {c["name"] for c in inspect(conn).get_columns(STATE.name)}
    return select(*[c for c in t.c if c.name in have or c.name not in ADDED_STATE_COLUMNS]), t


def tool_created_tables(conn: Connection) -> set[str]:
    """The target tables some source's migration created (recorded before each CREATE)."""
    if STATE.name not in inspect(conn).get_table_names():
        return set()
    t = core_table(STATE)
    return {name for (raw,) in conn.execute(select(t.c.created_tables)) for name in json.loads(raw or "[]")}


def claimed_elsewhere(run_id: str, context_id: int, owner: str, source_name: str) -> ResumeError:
    """The refusal for a run another source migrated already (mapping.md §2: a run belongs to one source;
    writing it again under other ids would give it two ROOT tasks)."""
    return ResumeError(
        f"run {run_id} (MLMD context {context_id}) was migrated from {source_label(owner)}, and this MLMD "
        f"database, migrated as {source_label(source_name)}, holds it too; nothing of it was written. If this "
        f"is the MLMD database migrated before, rerun {f'with `--source-name {owner}`' if owner else 'without --source-name'}; if two MLMD "
        "databases both hold the run (one copied from the other), migrate it from one of them only")


def newer_mapping(recorded: str) -> bool:
    """`recorded` is a mapping version this release does not know (a later one, or not a number)."""
    try:
        return int(recorded) > int(MAPPING_VERSION)
    except ValueError:
        return True


def check_resume(state: MigrationState, multi_user: bool, partial: bool = False) -> None:
    """Refuse a rerun whose options would produce other rows than the source's recorded migration. An older
    mapping version is not refused by a whole pass, which rewrites every run (docs/mapping.md M26).

    Raises:
        ResumeError: another install mode; a newer mapping version; an older one with `partial`
        (`--namespace`/`--run`), which would leave runs of two versions.
    """
    rollback = "mlmd2kfp rollback --yes" + source_option(state)
    if newer_mapping(state.mapping_version):
        raise ResumeError(f"the migration of {source_label(state.source_name)} in this KFP database was written "
                          f"with mapping version {state.mapping_version}, which this mlmd2kfp (mapping version "
                          f"{MAPPING_VERSION}) does not know; run the mlmd2kfp release that wrote it (nothing was written)")
    if state.mapping_version != MAPPING_VERSION and partial:
        raise ResumeError(f"the migration of {source_label(state.source_name)} was written with mapping version "
                          f"{state.mapping_version}; mapping version {MAPPING_VERSION} must rewrite every run of it: "
                          "rerun `mlmd2kfp migrate` without --namespace/--run (nothing was written)")
    undone = state.phase == Phase.ROLLED_BACK and state.status != KEPT_RUNS  # nothing of it left: start afresh
    if bool(state.multi_user) != multi_user and not undone:
        mode = "--multi-user" if state.multi_user else "--single-user"
        raise ResumeError(f"the migration of {source_label(state.source_name)} in this KFP database ran with "
                          f"{mode}; pass it again (or run `{rollback}` first)")


def gate_opened(conn: Connection) -> set[str]:
    """The sources whose migrated rows were in the KFP database when a verify opened the startup gate (the new
    KFP may have written into their runs since; docs/mapping.md W15). Cleared by a rollback that leaves nothing
    of the source; kept by one that keeps runs KFP wrote into."""
    if STATE.name not in inspect(conn).get_table_names():
        return set()
    t = core_table(STATE)
    if "gate_opened_at" not in {c["name"] for c in inspect(conn).get_columns(STATE.name)}:
        return set()
    return {r[0] for r in conn.execute(select(t.c.source_name).where(t.c.gate_opened_at.is_not(None)))}


def forget_old_tasks_copy(conn: Connection) -> None:
    """Clear the rows and digest of `tasks_pre_migration` the cutover recorded (on whichever source's row): the
    table was moved back, or dropped by `cleanup`."""
    conn.execute(core_table(STATE).update().values(old_tasks_rows=None, old_tasks_digest=None))


def forget_marks(conn: Connection, source_name: str) -> int:
    """Make every run the source migrated look changed to the next pass, which then rewrites it (a migration
    written by another mapping version); returns how many runs."""
    runs = core_table(RUNS)
    return conn.execute(runs.update().where(runs.c.source_name == source_name).values(marks="")).rowcount or 0


def forget_verified(conn: Connection, source_name: str) -> None:
    """Drop a source's per-run verify records (`VERIFIED`): a rollback removed the rows they describe."""
    if VERIFIED.name in inspect(conn).get_table_names():
        t = core_table(VERIFIED)
        conn.execute(t.delete().where(t.c.source_name == source_name))


def new_state(source_name: str, multi_user: bool, staging_table: str, tool_version: str) -> dict[str, Any]:
    """Values of a fresh state row (a `MigrationState`: a column missing here is an error, not a NULL)."""
    now = int(time.time())
    return MigrationState(
        id=state_id(source_name), tool_version=tool_version, mapping_version=MAPPING_VERSION, source_name=source_name,
        options_fingerprint=options_fingerprint(source_name, multi_user), multi_user=int(multi_user),
        phase=Phase.SCHEMA, status=Status.RUNNING, pass_number=0, last_context_id=0, runs_migrated=0, runs_skipped=0,
        tasks=0, artifacts=0, links=0, started_at=now, updated_at=now, finished_at=None, last_error=None,
        holder=holder(), staging_table=staging_table, created_tables="[]", moved_old_tasks=0, verify_passed=None,
        verify_at=None, verify_result=None).values


def update_state(conn: Connection, source_name: str, increments: dict[str, int] | None = None, /,
                 **values: Any) -> None:
    """Update a source's state row (`increments` add to counters); exactly one row must change.

    Raises:
        ResumeError: the state row is missing.
    """
    t = core_table(STATE)
    values.setdefault("updated_at", int(time.time()))
    if isinstance(values.get("last_error"), str):  # an error line may quote MLMD text holding a NUL
        values["last_error"] = values["last_error"].replace("\x00", "\\x00")
    for column, n in (increments or {}).items():
        values[column] = t.c[column] + n
    result = conn.execute(t.update().where(t.c.id == state_id(source_name)).values(**values))
    if result.rowcount != 1:
        raise ResumeError("the migration state row `mlmd2kfp_state` is missing or duplicated; "
                          "do not edit the tool's tables by hand; run `mlmd2kfp status` to see what is recorded")


def insert_state(conn: Connection, values: dict[str, Any]) -> None:
    """Insert the state row."""
    conn.execute(core_table(STATE).insert(), [values])
