"""The bad-input corpus (issue #7): damaged or unusual MLMD/KFP data, each kind written into a copy of
an otherwise valid sample, each with the outcome an operator should get.

A case's `damage(db)` changes the copy and returns the run it hurt (or None); `expect` is either
`Ledger(reason, whole_run)` — the migration completes, the hurt run (or one of its rows) is in the
ledger with that reason and every other run is migrated — or `Refused(text)` — `migrate` exits 3 with
that text before writing anything.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text

from tests.helpers import portable

EVENT_OUTPUT = 4


@dataclass(frozen=True)
class Ledger:
    reason: str
    whole_run: bool = False
    entity: str | None = None


@dataclass(frozen=True)
class Migrated:
    """Unusual but valid: migrated like any run, with no ledger entry for the hurt run beyond the baseline."""


@dataclass(frozen=True)
class Refused:
    text: str


class Db:
    """SQL on a case's MLMD and KFP copies, with MLMD's table names spelled per backend."""

    def __init__(self, backend: str, mlmd: str, kfp: str) -> None:
        self.backend, self.mlmd, self.kfp = backend, mlmd, kfp

    def t(self, name: str) -> str:
        if self.backend == "postgresql":
            return name.lower()
        return f"`{name}`" if self.backend == "mariadb" else f'"{name}"'

    def c(self, name: str) -> str:
        return f"`{name}`" if self.backend == "mariadb" else f'"{name}"'

    def _run(self, url: str, sql: str, params: dict[str, Any]) -> list[Any]:
        engine = create_engine(url)
        try:
            with engine.begin() as conn:
                result = conn.execute(text(sql), params)
                return list(result) if result.returns_rows else []
        finally:
            engine.dispose()

    def m(self, sql: str, **params: Any) -> list[Any]:
        """SQL on MLMD; `{Table}` names are replaced by the backend's spelling."""
        for name in ("ExecutionProperty", "ArtifactProperty", "ContextProperty", "Execution", "Artifact", "Context",
                     "EventPath", "Event", "Association", "Attribution", "ParentContext", "MLMDEnv", "Type"):
            sql = sql.replace("{" + name + "}", self.t(name))
        return self._run(self.mlmd, sql, params)

    def k(self, sql: str, **params: Any) -> list[Any]:
        """SQL on KFP; `"Column"` quoting is converted for MySQL."""
        return self._run(self.kfp, portable(self.kfp, sql), params)

    # --- finding the rows to damage --------------------------------------------------------
    def runs(self) -> list[tuple[int, str]]:
        return [(int(r[0]), r[1]) for r in self.m(
            "SELECT c.id, c.name FROM {Context} c JOIN {Type} t ON t.id = c.type_id "
            "WHERE t.name = 'system.PipelineRun' ORDER BY c.id")]

    def run_with(self, execution_type: str = "system.ContainerExecution", prop: str | None = None) -> tuple[int, str]:
        """The first run (with run_details) holding an execution of this type (and property)."""
        known = {r[0] for r in self.k('SELECT "UUID" FROM run_details')}
        for ctx, name in self.runs():
            if name not in known:
                continue
            if self.executions(ctx, execution_type, prop):
                return ctx, name
        raise AssertionError(f"no run with a {execution_type} {prop or ''}")

    def executions(self, ctx: int, execution_type: str = "system.ContainerExecution", prop: str | None = None
                   ) -> list[int]:
        sql = ("SELECT e.id FROM {Execution} e JOIN {Association} a ON a.execution_id = e.id "
               "JOIN {Type} t ON t.id = e.type_id WHERE a.context_id = :c AND t.name = :t")
        if prop:
            sql += " AND EXISTS (SELECT 1 FROM {ExecutionProperty} p WHERE p.execution_id = e.id AND p.name = :p)"
        return [int(r[0]) for r in self.m(sql + " ORDER BY e.id", c=ctx, t=execution_type, p=prop)]

    def output_artifact(self, ctx: int, artifact_type: str | None = None) -> tuple[int, int]:
        """(artifact id, event id) of an OUTPUT event in this run."""
        sql = ("SELECT ev.artifact_id, ev.id FROM {Event} ev JOIN {Association} a ON a.execution_id = ev.execution_id "
               "JOIN {Artifact} ar ON ar.id = ev.artifact_id JOIN {Type} t ON t.id = ar.type_id "
               "WHERE a.context_id = :c AND ev.type = 4")
        if artifact_type:
            sql += " AND t.name = :t"
        rows = self.m(sql + " ORDER BY ev.id", c=ctx, t=artifact_type)
        assert rows, f"run context {ctx} has no output artifact {artifact_type or ''}"
        return int(rows[0][0]), int(rows[0][1])

    def set_prop(self, table: str, owner: str, owner_id: int, name: str, **value: Any) -> None:
        cols = {"int_value": None, "double_value": None, "string_value": None, "bool_value": None, **value}
        self.m(f"DELETE FROM {{{table}}} WHERE {owner} = :o AND name = :n", o=owner_id, n=name)
        true = "true" if self.backend == "postgresql" else "1"
        self.m(f"INSERT INTO {{{table}}} ({owner}, name, is_custom_property, int_value, double_value, string_value, "
               f"bool_value) VALUES (:o, :n, {true}, :i, :d, :s, :b)", o=owner_id, n=name, i=cols["int_value"],
               d=cols["double_value"], s=cols["string_value"], b=cols["bool_value"])

    def new_type(self, name: str, kind: int) -> int:
        self.m("INSERT INTO {Type} (name, type_kind) VALUES (:n, :k)", n=name, k=kind)
        return int(self.m("SELECT MAX(id) FROM {Type} WHERE name = :n", n=name)[0][0])


def _struct(raw: bytes) -> str:
    return "mlmd-struct::" + base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Case:
    name: str
    damage: Callable[[Db], str | None]
    expect: Ledger | Migrated | Refused
    backends: tuple[str, ...] = ("sqlite", "mariadb", "postgresql")
    why: str = ""


def _exec_prop(execution_type: str, prop: str, **value: Any) -> Callable[[Db], str]:
    def damage(db: Db) -> str:
        ctx, run = db.run_with(execution_type, prop)
        db.set_prop("ExecutionProperty", "execution_id", db.executions(ctx, execution_type, prop)[0], prop, **value)
        return run
    return damage


def _art_prop(artifact_type: str | None, prop: str, **value: Any) -> Callable[[Db], str]:
    def damage(db: Db) -> str:
        for ctx, run in db.runs():
            try:
                artifact, _ = db.output_artifact(ctx, artifact_type)
            except AssertionError:
                continue
            if run in {r[0] for r in db.k('SELECT "UUID" FROM run_details')}:
                db.set_prop("ArtifactProperty", "artifact_id", artifact, prop, **value)
                return run
        raise AssertionError(f"no {artifact_type} artifact")
    return damage


def _times(value: int | None) -> Callable[[Db], str]:
    def damage(db: Db) -> str:
        ctx, run = db.run_with()
        e = db.executions(ctx)[0]
        db.m("UPDATE {Execution} SET create_time_since_epoch = :v, last_update_time_since_epoch = :v WHERE id = :e",
             v=value, e=e)
        return run
    return damage


def _time_text(table: str) -> Callable[[Db], str]:
    """A time column holding text (SQLite keeps whatever was written into an INTEGER column)."""
    def damage(db: Db) -> str:
        ctx, run = db.run_with()
        if table == "Execution":
            row = db.executions(ctx)[0]
        else:
            row, _ = db.output_artifact(ctx)
        db.m(f"UPDATE {{{table}}} SET create_time_since_epoch = 'yesterday' WHERE id = :i", i=row)
        return run
    return damage


def _not_a_database(db: Db) -> None:
    from sqlalchemy.engine import make_url

    with open(make_url(db.mlmd).database, "wb") as f:  # type: ignore[arg-type]
        f.write(b"this is a backup log, not a database\n" * 200)


def _dangling_event(column: str) -> Callable[[Db], str | None]:
    def damage(db: Db) -> str | None:
        ctx, run = db.run_with()
        e = db.executions(ctx)[0]
        artifact, _ = db.output_artifact(ctx)
        values = {"artifact_id": artifact, "execution_id": e, column: 999999}
        db.m("INSERT INTO {Event} (artifact_id, execution_id, type, milliseconds_since_epoch) "
             "VALUES (:a, :e, 3, 1700000000000)", a=values["artifact_id"], e=values["execution_id"])
        event = db.m("SELECT MAX(id) FROM {Event}")[0][0]
        false = "false" if db.backend == "postgresql" else "0"
        db.m(f"INSERT INTO {{EventPath}} (event_id, is_index_step, step_key) VALUES (:v, {false}, 'dangling')", v=event)
        return run if column == "artifact_id" else None
    return damage


def _null_event_time(db: Db) -> str:
    ctx, run = db.run_with()
    _, event = db.output_artifact(ctx)
    db.m("UPDATE {Event} SET milliseconds_since_epoch = NULL WHERE id = :e", e=event)
    return run


def _execution_in_two_runs(db: Db) -> str:
    (c1, _), (c2, r2) = db.runs()[0], db.runs()[1]
    db.m("INSERT INTO {Association} (context_id, execution_id) VALUES (:c, :e)", c=c2, e=db.executions(c1)[0])
    return r2


def _duplicate_type(db: Db) -> str:
    ctx, run = db.run_with()
    twin = db.new_type("system.ContainerExecution", 0)
    db.m("UPDATE {Execution} SET type_id = :t WHERE id = :e", t=twin, e=db.executions(ctx)[0])
    return run


def _unknown_execution_type(db: Db) -> str:
    ctx, run = db.run_with()
    db.m("UPDATE {Execution} SET type_id = :t WHERE id = :e", t=db.new_type("acme.CustomExecution", 0),
         e=db.executions(ctx)[0])
    return run


def _unknown_artifact_type(db: Db) -> str:
    ctx, run = db.run_with()
    artifact, _ = db.output_artifact(ctx)
    db.m("UPDATE {Artifact} SET type_id = :t WHERE id = :a", t=db.new_type("acme.Blob", 1), a=artifact)
    return run


def _missing_type(db: Db) -> str:
    ctx, run = db.run_with()
    db.m("UPDATE {Execution} SET type_id = 99999 WHERE id = :e", e=db.executions(ctx)[0])
    return run


def _dag_cycle(db: Db) -> str:
    ctx, run = db.run_with("system.DAGExecution", "parent_dag_id")
    child = db.executions(ctx, "system.DAGExecution", "parent_dag_id")[0]
    root = db.m("SELECT int_value FROM {ExecutionProperty} WHERE execution_id = :e AND name = 'parent_dag_id'",
                e=child)[0][0]
    db.set_prop("ExecutionProperty", "execution_id", int(root), "parent_dag_id", int_value=child)
    return run


def _parent_in_other_run(db: Db) -> str:
    (c1, r1), (c2, _) = db.runs()[0], db.runs()[1]
    foreign_root = db.executions(c2, "system.DAGExecution")[0]
    db.set_prop("ExecutionProperty", "execution_id", db.executions(c1)[0], "parent_dag_id", int_value=foreign_root)
    return r1


def _missing_iteration(db: Db) -> str:
    """One iteration of a ParallelFor is gone with everything under it (a partly deleted store)."""
    ctx, run = db.run_with("system.DAGExecution", "iteration_index")
    victims = [db.executions(ctx, "system.DAGExecution", "iteration_index")[0]]
    frontier = list(victims)
    while frontier:
        children = [int(r[0]) for r in db.m("SELECT execution_id FROM {ExecutionProperty} WHERE name = 'parent_dag_id' "
                                            "AND int_value = :v", v=frontier.pop())]
        victims += children
        frontier += children
    for e in victims:
        db.m("DELETE FROM {EventPath} WHERE event_id IN (SELECT id FROM {Event} WHERE execution_id = :e)", e=e)
        db.m("DELETE FROM {Event} WHERE execution_id = :e", e=e)
        db.m("DELETE FROM {ExecutionProperty} WHERE execution_id = :e", e=e)
        db.m("DELETE FROM {Association} WHERE execution_id = :e", e=e)
        db.m("DELETE FROM {Execution} WHERE id = :e", e=e)
    return run


def _inner_dag_cycle(db: Db) -> str:
    """Two DAGs below the root that name each other as parent: unreachable from the root."""
    ctx, run = db.run_with("system.DAGExecution", "parent_dag_id")
    a, b = db.executions(ctx, "system.DAGExecution", "parent_dag_id")[:2]
    db.set_prop("ExecutionProperty", "execution_id", a, "parent_dag_id", int_value=b)
    db.set_prop("ExecutionProperty", "execution_id", b, "parent_dag_id", int_value=a)
    return run


def _no_spec(db: Db) -> str:
    _, run = db.run_with()
    db.k('UPDATE run_details SET "PipelineSpecManifest" = NULL, "PipelineVersionId" = NULL WHERE "UUID" = :r', r=run)
    return run


def _spec_text(manifest: str) -> Callable[[Db], str]:
    def damage(db: Db) -> str:
        _, run = db.run_with()
        db.k('UPDATE run_details SET "PipelineSpecManifest" = :s, "PipelineVersionId" = NULL WHERE "UUID" = :r',
             s=manifest, r=run)
        return run
    return damage


def _no_path(db: Db) -> str:
    ctx, run = db.run_with()
    _, event = db.output_artifact(ctx)
    db.m("DELETE FROM {EventPath} WHERE event_id = :e", e=event)
    return run


def _long_task_name(db: Db) -> str:
    ctx, run = db.run_with()
    db.set_prop("ExecutionProperty", "execution_id", db.executions(ctx)[0], "task_name", string_value="t" * 300)
    return run


def _long_namespace(db: Db) -> str:
    """A run (in an experiment of its own) whose namespace is longer than the target column."""
    _, run = db.run_with()
    ns = "n" * 70
    exp_id = db.k('SELECT "ExperimentUUID" FROM run_details WHERE "UUID" = :r', r=run)[0][0]
    engine = create_engine(db.kfp)
    with engine.begin() as conn:
        row = dict(conn.execute(text('SELECT * FROM experiments WHERE ' + db.c("UUID") + ' = :e'), {"e": exp_id})
                   .mappings().one())
        row.update(UUID="e0000000-0000-4000-8000-00000000bad1", Namespace=ns, Name="long-namespace")
        columns = ", ".join(db.c(c) for c in row)
        conn.execute(text(f"INSERT INTO experiments ({columns}) VALUES ({', '.join(':' + c for c in row)})"), row)
    engine.dispose()
    db.k('UPDATE run_details SET "Namespace" = :n, "ExperimentUUID" = :e WHERE "UUID" = :r', n=ns,
         e="e0000000-0000-4000-8000-00000000bad1", r=run)
    return run


def _long_display_name(db: Db) -> str:
    _, run = db.run_with()
    db.k('UPDATE run_details SET "DisplayName" = :n WHERE "UUID" = :r', n="d" * 200, r=run)
    return run


def _long_uri(db: Db) -> str:
    ctx, run = db.run_with("system.ImporterExecution")  # its model is imported anew by each run (reimport)
    artifact, _ = db.output_artifact(ctx, "system.Model")
    db.m("UPDATE {Artifact} SET uri = :u WHERE id = :a", u="gs://bucket/" + "deep/" * 420 + "model.joblib", a=artifact)
    return run


def _nul_in_uri(db: Db) -> str:
    """ml-metadata hands this URI back cut at the NUL: verify must read the run through SQL to see it."""
    ctx, run = db.run_with("system.ImporterExecution")
    artifact, _ = db.output_artifact(ctx, "system.Model")
    db.m("UPDATE {Artifact} SET uri = :u WHERE id = :a", u="gs://bucket/model\x00.joblib", a=artifact)
    return run


def _invalid_utf8_uri(db: Db) -> str:
    """Bytes that are not UTF-8 in `Artifact.uri` (issue #27 item 6: migrate and verify crashed on them)."""
    ctx, run = db.run_with("system.ImporterExecution")
    artifact, _ = db.output_artifact(ctx, "system.Model")
    db.m("UPDATE {Artifact} SET uri = CAST(X'67733a2f2f622f66ff6f80' AS TEXT) WHERE id = :a", a=artifact)
    return run


def _long_uri_and_nul(db: Db) -> str:
    """Both limits in one run: `value-too-long` is the reason wherever the NUL is (no order decides)."""
    run = _long_uri(db)
    db.k('UPDATE run_details SET "DisplayName" = :n WHERE "UUID" = :r', n="run\x00name", r=run)
    return run


def _display_name_with(text: str) -> Callable[[Db], str]:
    """A run name (ROOT's DisplayName) holding `text`."""
    def damage(db: Db) -> str:
        _, run = db.run_with()
        db.k('UPDATE run_details SET "DisplayName" = :n WHERE "UUID" = :r', n=text, r=run)
        return run
    return damage


def _invalid_utf8(db: Db) -> str:
    ctx, run = db.run_with()
    e = db.executions(ctx)[0]
    db.m("UPDATE {ExecutionProperty} SET string_value = CAST(X'66ff6f80' AS TEXT) WHERE execution_id = :e "
         "AND name = 'display_name'", e=e)
    return run


def _inputs_as_proto(db: Db) -> str:
    """`inputs` stored as a protobuf value (a `google.protobuf.Any`), not the struct KFP writes (issue #27 item 6:
    it became a parameter named `@proto`)."""
    from google.protobuf import any_pb2, wrappers_pb2

    packed = any_pb2.Any()
    packed.Pack(wrappers_pb2.StringValue(value="hello"))
    ctx, run = db.run_with("system.ContainerExecution", "inputs")
    e = db.executions(ctx, "system.ContainerExecution", "inputs")[0]
    db.m("DELETE FROM {ExecutionProperty} WHERE execution_id = :e AND name = 'inputs'", e=e)
    true = "true" if db.backend == "postgresql" else "1"
    db.m(f"INSERT INTO {{ExecutionProperty}} (execution_id, name, is_custom_property, proto_value) "
         f"VALUES (:e, 'inputs', {true}, :p)", e=e, p=packed.SerializeToString())
    return run


def _event_type(kind: int) -> Callable[[Db], str]:
    """An event of a type the mapping does not use (issue #27 item 6: dropped with no ledger entry)."""
    def damage(db: Db) -> str:
        ctx, run = db.run_with()
        _, event = db.output_artifact(ctx)
        db.m("UPDATE {Event} SET type = :k WHERE id = :e", k=kind, e=event)
        return run
    return damage


def _twin_run_context(db: Db) -> None:
    """A second `system.PipelineRun` type row whose context repeats an existing run's name (issue #27 item 6: the
    batch failed on the runs table's key, none of its runs written, on every rerun). The run stays one run."""
    _, run = db.run_with()
    twin = db.new_type("system.PipelineRun", 2)
    db.m("INSERT INTO {Context} (type_id, name, create_time_since_epoch, last_update_time_since_epoch) "
         "VALUES (:t, :n, 0, 0)", t=twin, n=run)
    return None


def _huge_property(db: Db) -> str:
    ctx, run = db.run_with()
    artifact, _ = db.output_artifact(ctx)
    db.set_prop("ArtifactProperty", "artifact_id", artifact, "notes", string_value="x" * (10 * 1024 * 1024))
    return run


def _schema_version(v: int) -> Callable[[Db], None]:
    def damage(db: Db) -> None:
        db.m("UPDATE {MLMDEnv} SET schema_version = :v", v=v)
    return damage


def _half_created_target(db: Db) -> None:
    db.k('CREATE TABLE artifacts ("UUID" VARCHAR(191) NOT NULL PRIMARY KEY, "Name" VARCHAR(128))')


def _no_run_details(db: Db) -> None:
    db.k("ALTER TABLE run_details RENAME TO run_details_gone")


def _cached_from_missing(db: Db) -> str:
    ctx, run = db.run_with()
    db.set_prop("ExecutionProperty", "execution_id", db.executions(ctx)[0], "cached_execution_id",
                string_value="999999")
    return run


CASES = [
    Case("struct-bad-base64", _exec_prop("system.ContainerExecution", "inputs", string_value="mlmd-struct::!!not-base64"),
         Ledger("bad-property")),
    Case("struct-not-protobuf", _exec_prop("system.ContainerExecution", "outputs",
                                           string_value=_struct(b"\xff\xfe\x00garbage")), Ledger("bad-property")),
    Case("artifact-struct-malformed", _art_prop(None, "metadata_extra", string_value="mlmd-struct::%%%"),
         Ledger("bad-property")),
    Case("invalid-utf8", _invalid_utf8, Ledger("bad-property"), backends=("sqlite",),
         why="MariaDB and PostgreSQL refuse invalid UTF-8 in text columns, so only SQLite-backed MLMD can hold it"),
    Case("task-name-too-long", _long_task_name, Ledger("unresolved-task-key", whole_run=True),
         why="a task name longer than the column cannot be in the spec either: the run cannot be placed"),
    Case("namespace-too-long", _long_namespace, Ledger("identifier-too-long", whole_run=True), backends=("sqlite",),
         why="KFP's run_details and experiments Namespace columns are VARCHAR(63) on MySQL and PostgreSQL"),
    Case("display-name-too-long", _long_display_name, Ledger("truncated")),
    Case("uri-over-2048", _long_uri, Ledger("value-too-long", whole_run=True),
         why="artifacts.URI is VARCHAR(2048): never truncated, the run is skipped with the column named"),
    Case("four-byte-unicode", _display_name_with("train 🚀 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"), Migrated()),
    Case("nul-in-a-name", _display_name_with("train\x00hidden"), Ledger("unstorable-value", whole_run=True),
         backends=("sqlite", "mariadb"), why="PostgreSQL-backed MLMD cannot hold a NUL character; the rule is the "
                                              "same on every target because PostgreSQL cannot store it"),
    Case("uri-over-2048-and-a-nul", _long_uri_and_nul, Ledger("value-too-long", whole_run=True),
         backends=("sqlite", "mariadb"), why="PostgreSQL cannot hold a NUL character"),
    Case("nul-in-an-mlmd-uri", _nul_in_uri, Ledger("unstorable-value", whole_run=True), backends=("sqlite", "mariadb"),
         why="PostgreSQL-backed MLMD cannot hold a NUL character"),
    Case("null-event-time", _null_event_time, Migrated()),
    Case("execution-time-not-a-number", _time_text("Execution"), Ledger("bad-time"), backends=("sqlite",),
         why="MariaDB and PostgreSQL refuse text in a BIGINT column"),
    Case("artifact-time-not-a-number", _time_text("Artifact"), Ledger("bad-time"), backends=("sqlite",),
         why="MariaDB and PostgreSQL refuse text in a BIGINT column"),
    Case("mlmd-not-a-database", _not_a_database, Refused("not a SQLite database"), backends=("sqlite",),
         why="a server database cannot be replaced by a file"),
    Case("negative-times", _times(-86_400_000), Ledger("bad-time")),
    # issue #27 item 6: inputs that stopped the upgrade (a crash or a batch failing on every rerun)
    Case("time-in-the-year-10000", _times(253_402_300_800_000 + 86_400_000), Ledger("bad-time")),
    Case("iteration-count-a-double", _exec_prop("system.DAGExecution", "iteration_count", double_value=3.0),
         Ledger("loop-without-count", whole_run=True)),
    Case("uri-invalid-utf8", _invalid_utf8_uri, Ledger("unstorable-value", whole_run=True), backends=("sqlite",),
         why="MariaDB and PostgreSQL refuse invalid UTF-8 in text columns, so only SQLite-backed MLMD can hold it"),
    Case("event-declared-output", _event_type(1), Ledger("unsupported-event-type", entity="event")),
    Case("event-pending-output", _event_type(7), Ledger("unsupported-event-type", entity="event")),
    Case("run-context-twice", _twin_run_context, Ledger("duplicate-run", entity="context")),
    Case("inputs-a-proto-value", _inputs_as_proto, Ledger("bad-property")),
    Case("cache-fingerprint-a-boolean", _exec_prop("system.ContainerExecution", "cache_fingerprint", bool_value=True),
         Ledger("bad-property")),
    Case("event-missing-execution", _dangling_event("execution_id"), Ledger("dangling-event")),
    Case("event-missing-artifact", _dangling_event("artifact_id"), Ledger("missing-artifact")),
    Case("execution-in-two-runs", _execution_in_two_runs, Ledger("detached-execution")),
    Case("duplicate-type-rows", _duplicate_type, Migrated()),
    Case("unknown-execution-type", _unknown_execution_type, Ledger("unsupported-type")),
    Case("unknown-artifact-type", _unknown_artifact_type, Migrated()),
    Case("execution-type-row-missing", _missing_type, Ledger("unsupported-type")),
    Case("metrics-non-numeric", _art_prop("system.Metrics", "accuracy", string_value="high"), Ledger("bad-metric")),
    Case("metrics-nan", _art_prop("system.Metrics", "accuracy", double_value=float("nan")), Ledger("bad-metric"),
         backends=("sqlite", "postgresql"), why="MariaDB's DOUBLE cannot store NaN"),
    Case("metrics-inf", _art_prop("system.Metrics", "loss", double_value=float("inf")), Ledger("bad-metric"),
         backends=("sqlite", "postgresql"), why="MariaDB's DOUBLE cannot store Infinity"),
    Case("property-10mb", _huge_property, Migrated(), backends=("sqlite", "mariadb"),
         why="MLMD's PostgreSQL schema indexes property values, and a B-tree row holds at most 8 KB"),
    Case("dag-cycle-through-root", _dag_cycle, Ledger("no-root-dag", whole_run=True)),
    Case("dag-cycle-below-root", _inner_dag_cycle, Ledger("detached-execution")),
    Case("parent-in-other-run", _parent_in_other_run, Ledger("detached-execution")),
    Case("loop-missing-iteration", _missing_iteration, Migrated()),
    Case("run-details-without-spec", _no_spec, Ledger("no-spec")),
    Case("spec-root-a-list", _spec_text("pipelineInfo: {name: p}\nroot: [1, 2]\n"), Ledger("no-spec")),
    Case("spec-not-yaml", _spec_text("root: {dag: [unclosed\n  : : :"), Ledger("no-spec")),
    Case("event-without-path-key", _no_path, Ledger("no-path-key")),
    Case("cached-from-missing-execution", _cached_from_missing, Migrated()),
    Case("mlmd-schema-9", _schema_version(9), Refused("MLMD schema version 9 is not supported")),
    Case("mlmd-schema-11", _schema_version(11), Refused("MLMD schema version 11 is not supported")),
    Case("target-half-created", _half_created_target, Refused("differ from KFP's schema")),
    Case("kfp-without-run-details", _no_run_details, Refused("no `run_details` table")),
]
