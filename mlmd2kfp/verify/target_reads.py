"""What verify reads of the KFP database, in plain SQL: the migrated rows a chunk of runs at a time
(`TargetReader`), where the tasks are, the state row verified, `run_details`, specs, and what the migrator
recorded it wrote."""

from __future__ import annotations

import hashlib
from typing import Any

import yaml
from sqlalchemy import bindparam, inspect, text
from sqlalchemy.engine import Connection

from ..batching import chunks
from ..dialects import dialect_for
from ..errors import ConfigError
from ..migrate.state import MigrationState, load_states, source_label
from ..target.digest import is_tool_id, rows_digest, run_mark
from .expect import ARTIFACT_COLUMNS, LINK_COLUMNS, TASK_COLUMNS, uid, uid_v5

SPECS_KEPT = 256
"""Parsed pipeline specs kept by `pipeline_spec` (runs of one pipeline version share theirs)."""


class TargetReader:
    """Plain SQL over the target and the ledger, fetched a chunk of runs at a time (`prefetch`)."""

    def __init__(self, conn: Connection, tasks_table: str = "tasks") -> None:
        self.conn = conn
        self.tasks_table = tasks_table
        self.q = dialect_for(conn).q
        self._rows: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self._artifacts: dict[str, dict[str, Any]] = {}

    def _where_in(self, sql: str, column: str, values: list[Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for part in chunks(values):
            chunk = part
            params = {f"v{j}": v for j, v in enumerate(chunk)}
            out += [dict(r) for r in self.conn.execute(
                text(f"{sql} WHERE {column} IN ({','.join(':' + k for k in params)})"), params).mappings()]
        return out

    def _select(self, table: str, columns: tuple[str, ...]) -> str:
        # KFP's columns only, by name: a later KFP release may add its own columns (mapping.md S4)
        return f"SELECT {', '.join(self.q(c) for c in ('UUID', *columns))} FROM {self.q(table)}"

    def prefetch(self, run_ids: list[str]) -> None:
        """Load the target rows of these runs (and the artifacts their links use) in a few statements."""
        q = self.q
        self._rows = {r: ([], [], []) for r in run_ids}
        for t in self._where_in(self._select(self.tasks_table, TASK_COLUMNS), q("RunUUID"), run_ids):
            self._rows[t["RunUUID"]][0].append(t)
        for lk in self._where_in(self._select("artifact_tasks", LINK_COLUMNS), q("RunUUID"), run_ids):
            self._rows[lk["RunUUID"]][1].append(lk)
        for e in self._where_in("SELECT * FROM mlmd2kfp_ledger", "run_uuid", run_ids):
            self._rows[e["run_uuid"]][2].append(e)
        ids = sorted({lk["ArtifactID"] for rows in self._rows.values() for lk in rows[1]})
        self._artifacts = {a["UUID"]: a for a in self._where_in(self._select("artifacts", ARTIFACT_COLUMNS), q("UUID"), ids)}

    def run_rows(self, run_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
        if run_id not in self._rows:
            self.prefetch([run_id])
        return self._rows[run_id]

    def root_state(self, run_id: str) -> Any:
        """`State` of the run's ROOT task (no parent), or None."""
        return next((t["State"] for t in self.run_rows(run_id)[0] if t["ParentTaskUUID"] is None), None)

    def artifacts(self, ids: set[str]) -> dict[str, dict[str, Any]]:
        out = {i: self._artifacts[i] for i in ids if i in self._artifacts}
        missing = sorted(set(ids) - set(out))
        if missing:
            out.update({a["UUID"]: a for a in self._where_in(self._select("artifacts", ARTIFACT_COLUMNS), self.q("UUID"),
                                                             missing)})
        return out


def verified_state(conn: Connection, source_name: str | None) -> tuple[MigrationState | None, list[str]]:
    """The state row of the source verified (None: no migration recorded), and the other sources' names (their
    runs are theirs to check).

    Raises:
        ConfigError: several sources are recorded and `source_name` does not say which; no such source.
    """
    states = load_states(conn)
    names = [s.source_name for s in states]
    if source_name is None:
        if len(states) > 1:
            raise ConfigError(f"this KFP database holds the migrations of {len(states)} MLMD sources ("
                              + ", ".join(f"`{n}`" for n in names) + "); pass --source-name to say which one "
                              "this MLMD database is (`--source-name ''` for the default)")
        chosen = states[0] if states else None
    else:
        chosen = next((s for s in states if s.source_name == source_name), None)
        if chosen is None and states:
            raise ConfigError(f"no migration of {source_label(source_name)} is recorded in this KFP database "
                              "(recorded: " + ", ".join(f"`{n}`" for n in names) + "); run `mlmd2kfp migrate "
                              f"--source-name {source_name}` first, or pass the name it was migrated with")
    if chosen is None:
        return None, []
    return chosen, [n for n in names if n != chosen.source_name]


def run_details(t: TargetReader, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The `run_details` rows of these runs (with their experiment's namespace and the server's MD5 of the
    manifest, where the backend has one), by run id; runs KFP has no row for are left out."""
    q = t.q
    out: dict[str, dict[str, Any]] = {}
    if not run_ids:
        return out
    md5 = f"MD5(r.{q('PipelineSpecManifest')})" if dialect_for(t.conn).has_md5 else "NULL"
    sql = text(f"SELECT r.{q('UUID')} AS uuid, r.{q('Namespace')} AS namespace, r.{q('State')} AS state, "
               f"r.{q('Conditions')} AS conditions, r.{q('PipelineVersionId')} AS version, e.{q('Namespace')} AS ens, "
               f"r.{q('DisplayName')} AS display_name, r.{q('FinishedAtInSec')} AS finished_at, "
               f"{md5} AS manifest_md5 "
               f"FROM run_details r LEFT JOIN experiments e ON e.{q('UUID')} = r.{q('ExperimentUUID')} "
               f"WHERE r.{q('UUID')} IN :ids").bindparams(bindparam("ids", expanding=True))
    for r in t.conn.execute(sql, {"ids": run_ids}).mappings():
        out[r["uuid"]] = {"uuid": r["uuid"], "namespace": r["namespace"], "state": r["state"], "conditions": r["conditions"],
                          "experiment_namespace": r["ens"], "version": r["version"], "manifest_md5": r["manifest_md5"],
                          "display_name": r["display_name"], "finished_at": r["finished_at"]}
    return out


def pipeline_spec(t: TargetReader, run: dict[str, Any] | None, cache: dict[str, Any]) -> Any:
    """The run's pipeline spec (its manifest, else its pipeline version's), parsed; None when it has none
    that is a spec. `cache` keeps the last `SPECS_KEPT` parsed, by text and by the server's MD5."""
    if run is None:
        return None
    digest = run.get("manifest_md5")  # computed by the server: the text is fetched once per distinct spec
    if digest and f"md5:{digest}" in cache:
        return cache[f"md5:{digest}"]
    manifest = _manifest(t, run)
    if not manifest:
        return None
    key = hashlib.sha256(str(manifest).encode()).hexdigest()
    if key not in cache:
        cache[key] = _parse_spec(str(manifest))
        if len(cache) > SPECS_KEPT:
            cache.pop(next(iter(cache)))
    if digest:  # the server's MD5 of the manifest just parsed (NULL when the spec came from the version)
        cache[f"md5:{digest}"] = cache[key]
    return cache[key]


def _manifest(t: TargetReader, run: dict[str, Any]) -> Any:
    q = t.q
    manifest = t.conn.execute(text(f"SELECT {q('PipelineSpecManifest')} FROM run_details WHERE {q('UUID')} = :u"),
                              {"u": run["uuid"]}).scalar()
    if not manifest and run.get("version"):
        manifest = t.conn.execute(text(f"SELECT {q('PipelineSpec')} FROM pipeline_versions WHERE {q('UUID')} = :v"),
                                  {"v": run["version"]}).scalar()
    return manifest


def _parse_spec(manifest: str) -> dict[str, Any] | None:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        docs = [d for d in yaml.load_all(manifest, Loader=loader) if isinstance(d, dict)]
    except yaml.YAMLError:  # text that is not YAML is no spec (ledger `no-spec`), as for a missing one
        docs = []
    spec = next((d.get("pipeline_spec") or d for d in docs if "root" in d or "pipeline_spec" in d), None)
    return spec if isinstance(spec, dict) and isinstance(spec.get("root"), dict) else None


def written_records(conn: Connection, run_ids: list[str]) -> dict[str, tuple[str | None, str]]:
    """What the migrator recorded it wrote for these runs: (digest of the rows, `run_details` mark then); the
    digest is None for runs a release before it wrote. Runs not migrated are left out."""
    if "digest" not in {c["name"] for c in inspect(conn).get_columns("mlmd2kfp_runs")}:
        return {r: (None, "") for r in _migrated(conn, run_ids)}
    out: dict[str, tuple[str | None, str]] = {}
    sql = text("SELECT run_uuid, digest, run_mark FROM mlmd2kfp_runs WHERE run_uuid IN :ids") \
        .bindparams(bindparam("ids", expanding=True))
    for part in chunks(run_ids):
        for run_id, digest, mark in conn.execute(sql, {"ids": part}):
            out[run_id] = (digest, mark or "")
    return out


def _migrated(conn: Connection, run_ids: list[str]) -> set[str]:
    sql = text("SELECT run_uuid FROM mlmd2kfp_runs WHERE run_uuid IN :ids").bindparams(bindparam("ids", expanding=True))
    return {r[0] for part in chunks(run_ids) for r in conn.execute(sql, {"ids": part})}


def kfp_owned(target: TargetReader, run_id: str, run: dict[str, Any] | None, written: tuple[str | None, str] | None,
              opened: bool) -> bool:
    """The run's migrated rows were changed after they were written, by the new KFP: the gate had opened, KFP
    wrote rows of its own into the run, or `run_details` moved since (docs/mapping.md W15). Such a run is KFP's:
    counted, not compared. The record says only what was written; whether it was right was proven by the
    verify that opened the gate. A changed run nothing says KFP touched is compared, and fails as damage.
    Rows a release before the record wrote (no digest) are KFP's when KFP wrote rows of its own into the run."""
    if written is None or run is None:  # not migrated, or deleted since (its rows are then extra rows)
        return False
    tasks, links, _ = target.run_rows(run_id)
    kfp_wrote = any(not is_tool_id(r["UUID"]) for r in tasks + links)
    if written[0] is None:
        return kfp_wrote
    if rows_digest(tasks, links) == written[0]:
        return False
    if opened or kfp_wrote:
        return True
    mark = run_mark({"State": run.get("state"), "Conditions": run.get("conditions"),
                     "FinishedAtInSec": run.get("finished_at")})
    return mark != written[1]


def runs_against_mode(t: TargetReader, multi: bool) -> tuple[int, list[str]]:
    """`run_details` rows whose namespace contradicts the mode verified in (empty in multi-user mode, set in
    single-user mode): how many, and the first ids (issue #27 item 5)."""
    q = t.q
    wrong = f"COALESCE({q('Namespace')}, '') {'=' if multi else '<>'} ''"
    n = int(t.conn.execute(text(f"SELECT COUNT(*) FROM run_details WHERE {wrong}")).scalar() or 0)
    first = [r[0] for r in t.conn.execute(text(f"SELECT {q('UUID')} FROM run_details WHERE {wrong} ORDER BY {q('UUID')}"))
             .fetchmany(3)] if n else []
    return n, first


def runs_of_other_sources(t: TargetReader, run_ids: list[str], sources: list[str]) -> set[str]:
    """Those of `run_ids` whose ROOT task carries the id another source's migration gives it: under this
    mapping version, or under version 3 or earlier (a source not migrated again since, docs/mapping.md I1)."""
    out: set[str] = set()
    if not sources:
        return out
    q = t.q
    for part in chunks(run_ids):
        rows = t.conn.execute(text(f"SELECT {q('RunUUID')}, {q('UUID')} FROM {q(t.tasks_table)} WHERE "
                                   f"{q('ParentTaskUUID')} IS NULL AND {q('RunUUID')} IN :ids")
                              .bindparams(bindparam("ids", expanding=True)), {"ids": part})
        for run_id, root in rows:
            position = int(root[:8] + root[9:13], 16)  # the run's context id, in the id's first 48 bits
            name = f"task:{run_id}:ROOT:-"
            if any(root in (uid(name, source, position), uid_v5(name, source)) for source in sources):
                out.add(run_id)
    return out
