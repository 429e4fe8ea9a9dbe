"""Streaming MLMD run by run (mapping.md §1): keyset pages of run contexts, a fixed number of
queries per page, every property decoded, and the KFP `run_details` row and pipeline spec attached.

Only SELECT statements are issued, on both databases.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from sqlalchemy import (Column, Integer, MetaData, String, Table, and_, any_, bindparam, exists, func, inspect,
                        literal_column, select)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection

from ..batching import chunks
from ..dialects import can_hash_texts, dialect_for, text_sha256_sql
from ..records import EVENT_OUTPUT, MlmdArtifact, MlmdEvent, MlmdExecution, RunBundle, RunRecord
from .schema import MlmdTables, open_mlmd
from .values import decode_value, millis

PIPELINE_RUN_TYPE = "system.PipelineRun"
IN_CHUNK = 900
"""Ids per `IN (…)` list: far below every backend's bind-parameter limit."""

try:  # libyaml's loader is ~10x faster on large specs
    _YamlLoader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _YamlLoader = yaml.SafeLoader


def _kfp_tables() -> tuple[Table, Table, Table]:
    md = MetaData()
    run_details = Table(
        "run_details", md,
        *(Column(c, String) for c in (
            "UUID", "DisplayName", "Name", "Namespace", "ExperimentUUID", "PipelineVersionId",
            "PipelineSpecManifest", "State", "Conditions", "CreatedAtInSec", "FinishedAtInSec")),
    )
    experiments = Table("experiments", md, Column("UUID", String), Column("Namespace", String))
    versions = Table("pipeline_versions", md, Column("UUID", String), Column("PipelineSpec", String))
    return run_details, experiments, versions


def load_spec(text: str | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """Parse a stored pipeline spec as the runtime does (mapping.md: `pipeline_spec` wrapper removed).

    Returns (spec, platform spec, error). Empty text gives (None, None, None).
    """
    if text is None or not str(text).strip():
        return None, None, None
    try:
        docs = [d for d in yaml.load_all(str(text), Loader=_YamlLoader) if d is not None]
    except yaml.YAMLError as exc:
        return None, None, f"the pipeline spec is not valid YAML/JSON: {' '.join(str(exc).split())[:160]}"
    spec = platform = None
    for doc in docs:
        if not isinstance(doc, dict):
            continue
        if "pipeline_spec" in doc or "pipelineSpec" in doc:
            spec = doc.get("pipeline_spec") or doc.get("pipelineSpec")
            platform = doc.get("platform_spec") or doc.get("platformSpec") or platform
        elif "root" in doc and spec is None:
            spec = doc
        elif "platforms" in doc:
            platform = doc
    if not isinstance(spec, dict) or not isinstance(spec.get("root"), dict):  # a list or text there: no spec (M28)
        return None, None, "the pipeline spec has no `root` component"
    return spec, platform, None


@dataclass
class _SpecCache:
    size: int = 128
    entries: OrderedDict[str, tuple[Any, Any, Any]] = field(default_factory=OrderedDict)

    def get(self, key: str, text: str | None) -> tuple[Any, Any, Any]:
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        value = load_spec(text)
        self.entries[key] = value
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return value


PAGE_EXECUTIONS = 5000
"""Executions read at once (with their events, artifacts and properties); a larger run is read alone."""


class MlmdReader:
    """Reads run bundles from an MLMD database and the KFP database beside it."""

    def __init__(self, mlmd: Connection, kfp: Connection | None, *, page_runs: int = 100) -> None:
        self.mlmd = mlmd
        self.kfp = kfp
        self.page_runs = page_runs
        self.t: MlmdTables = open_mlmd(mlmd)
        self.types: dict[int, tuple[str, int]] = {
            r.id: (r.name, r.type_kind) for r in mlmd.execute(select(self.t.type.c.id, self.t.type.c.name,
                                                                        self.t.type.c.type_kind))}
        # Duplicate type rows for one name (seen on PostgreSQL-backed MLMD) count as one type.
        self.run_type_ids = sorted(i for i, (n, k) in self.types.items() if n == PIPELINE_RUN_TYPE and k == 2)
        self._specs = _SpecCache()
        self._kfp_tables = _kfp_tables()
        self.kfp_has_run_details = kfp is not None and "run_details" in inspect(kfp).get_table_names()
        self.queries = 0
        """SELECT statements issued so far (for the bounded-queries test)."""
        self._twins: dict[int, str] | None = None
        self._page_runs: dict[str, tuple[RunRecord, str | None]] = {}
        """The `run_details` rows `marks` read for the page being read."""
        self._can_hash: bool | None = None

    @property
    def twin_run_contexts(self) -> dict[int, str]:
        """Run contexts (id → run id) whose name a run context of lower id holds already: possible only with a
        second `system.PipelineRun` type row (MLMD keeps names unique per type). A run id is one run: the first
        context is migrated, the later ones are ledgered `duplicate-run` (docs/mapping.md M30)."""
        if self._twins is None:
            self._twins = {}
            if len(self.run_type_ids) > 1:
                c, d = self.t.context.alias("c"), self.t.context.alias("d")
                first = exists().where(d.c.type_id.in_(self.run_type_ids), d.c.name == c.c.name, d.c.id < c.c.id)
                self._twins = {int(r[0]): r[1] for r in self.mlmd.execute(
                    select(c.c.id, c.c.name).where(c.c.type_id.in_(self.run_type_ids), first))}
        return self._twins

    # --- public ------------------------------------------------------------------------
    def run_bundles(self, after_context_id: int = 0, run_ids: Iterable[str] | None = None) -> Iterator[RunBundle]:
        """Yield one bundle per `system.PipelineRun` context, in ascending context id."""
        for page in self.pages(after_context_id, run_ids):
            yield from self.read_contexts(page)

    def pages(self, after_context_id: int = 0, run_ids: Iterable[str] | None = None
              ) -> Iterator[list[tuple[int, str]]]:
        """Pages of (context id, run id), ascending, for callers that decide what to read."""
        if not self.run_type_ids:
            return
        wanted = sorted(set(run_ids)) if run_ids is not None else None
        ctx = self.t.context
        last = after_context_id
        while True:
            query = (select(ctx.c.id, ctx.c.name).where(ctx.c.type_id.in_(self.run_type_ids), ctx.c.id > last)
                     .order_by(ctx.c.id).limit(self.page_runs))
            if wanted is not None:
                query = query.where(ctx.c.name.in_(wanted))
            page = [(r.id, r.name) for r in self._all(query)]
            if not page:
                return
            last = page[-1][0]
            twins = self.twin_run_contexts
            page = [(c, n) for c, n in page if c not in twins] if twins else page
            if page:
                yield page

    def read_contexts(self, contexts: list[tuple[int, str]]) -> Iterator[RunBundle]:
        """Bundles of these run contexts (ascending context id), read in slices of at most `PAGE_EXECUTIONS`
        executions (one run alone when it is larger): memory follows rows read, not runs per page."""
        contexts = sorted(contexts)
        if not contexts:
            return
        a = self.t.association.c
        sizes = {ctx: int(n) for ctx, n in self._in(select(a.context_id, func.count()).group_by(a.context_id),
                                                    a.context_id, [c for c, _ in contexts], raw=True)}
        piece: list[tuple[int, str]] = []
        rows = 0
        for ctx in contexts:
            size = sizes.get(ctx[0], 0)
            if piece and rows + size > PAGE_EXECUTIONS:
                yield from self._read_page(piece)
                piece, rows = [], 0
            piece.append(ctx)
            rows += size
        if piece:
            yield from self._read_page(piece)

    def marks(self, contexts: list[tuple[int, str]], light: bool = False) -> dict[int, str]:
        """A change mark per run context (mapping.md §1 true-up): executions' count, states and latest
        update, events' count and latest id, artifacts' latest update, and the `run_details` fields
        that change the rows (state, finish time, display name, namespaces, a hash of the manifest).

        The page's `run_details` rows are kept for the page read that follows; `light` (a true-up, which
        reads few of the runs): the server hashes the manifests instead of shipping them (at 60k executions
        on MariaDB a second of the window's `migrate`, issue #30), and the page read fetches the rows of
        the runs it reads. The marks are the same either way."""
        t = self.t
        ids = [c for c, _ in contexts]
        a, e = t.association.c, t.execution.c
        facts: dict[int, list[Any]] = {c: [] for c in ids}
        for r in self._in(select(a.context_id, func.count(e.id), func.max(e.last_update_time_since_epoch),
                                 func.sum(func.coalesce(e.last_known_state, 0)))
                          .join(t.execution, e.id == a.execution_id).group_by(a.context_id), a.context_id, ids):
            facts[r[0]].append([int(r[1] or 0), millis(r[2]), millis(r[3])])
        ev, ar = t.event.c, t.artifact.c
        for r in self._in(select(a.context_id, func.count(ev.id), func.max(ev.id), func.max(ar.last_update_time_since_epoch))
                          .join(t.event, ev.execution_id == a.execution_id)
                          .join(t.artifact, ar.id == ev.artifact_id).group_by(a.context_id), a.context_id, ids):
            facts[r[0]].append([int(r[1] or 0), millis(r[2]), millis(r[3])])
        hashed = light and self._server_hashes()
        runs = self._runs([name for _, name in contexts], hashed)
        self._page_runs = {} if hashed else runs  # else the page read takes its runs' rows from here
        out = {}
        for ctx_id, name in contexts:
            run = runs.get(name)
            record = run[0] if run else None
            kfp = None if record is None or run is None else [record.state, record.conditions, record.finished_at,
                                               record.display_name, record.namespace, record.experiment_namespace,
                                               record.pipeline_version_id,
                                               (str(run[1]) if hashed else hashlib.sha256(
                                                   str(run[1] or "").encode()).hexdigest())[:12]]
            out[ctx_id] = hashlib.sha256(json.dumps([facts[ctx_id], kfp], default=str).encode()).hexdigest()[:32]
        return out

    # --- one page ----------------------------------------------------------------------
    def _read_page(self, contexts: list[tuple[int, str]]) -> Iterator[RunBundle]:
        """Every row of these runs in a fixed number of statements.

        Rows are selected by primary-key lists (one array parameter on PostgreSQL), not by subqueries:
        their plans stay index lookups whatever the server's statistics say (right after a bulk load,
        a subquery plan on PostgreSQL turned into repeated scans and quadratic time).
        """
        t = self.t
        ctx_ids = [c for c, _ in contexts]
        ctx_props = self._props(t.context_property, "context_id", ctx_ids)
        parents: dict[int, str] = {}
        parent = t.context.alias("p")
        for r in self._in(select(t.parent_context.c.context_id, parent.c.name)
                          .join(parent, parent.c.id == t.parent_context.c.parent_context_id),
                          t.parent_context.c.context_id, ctx_ids):
            parents.setdefault(r.context_id, r.name)
        a = t.association.c
        exec_by_ctx: dict[int, list[int]] = defaultdict(list)
        for ctx_id, exec_id in self._in(select(a.context_id, a.execution_id), a.context_id, ctx_ids, raw=True):
            exec_by_ctx[ctx_id].append(exec_id)
        exec_ids = sorted({e for ids in exec_by_ctx.values() for e in ids})
        exec_props = self._props(t.execution_property, "execution_id", exec_ids)
        executions: dict[int, MlmdExecution] = {}
        ex = t.execution.c
        types = self.types
        for r in self._in(select(ex.id, ex.type_id, ex.last_known_state, ex.name, ex.create_time_since_epoch,
                                 ex.last_update_time_since_epoch), ex.id, exec_ids, raw=True):
            executions[r[0]] = MlmdExecution(r[0], types.get(r[1], ("?", 0))[0], r[2], r[3], millis(r[4]),
                                             millis(r[5]), exec_props.get(r[0], {}))
        events_by_exec: dict[int, list[MlmdEvent]] = defaultdict(list)
        ev, p = t.event.c, t.event_path.c
        seen: set[int] = set()
        artifact_ids: set[int] = set()
        key_step = and_(p.event_id == ev.id, p.is_index_step == False, p.step_key.is_not(None))  # noqa: E712
        for r in self._in(select(ev.id, ev.artifact_id, ev.execution_id, ev.type, ev.milliseconds_since_epoch,
                                 p.step_key).select_from(t.event.outerjoin(t.event_path, key_step)),
                          ev.execution_id, exec_ids, raw=True):
            if r[0] in seen:  # a second key step (KFP writes one): the first wins
                continue
            seen.add(r[0])
            artifact_ids.add(r[1])
            events_by_exec[r[2]].append(MlmdEvent(r[0], r[1], r[2], r[3], r[5], millis(r[4])))
        artifacts = self._artifacts(sorted(artifact_ids))
        names = [name for _, name in contexts]
        runs = {n: self._page_runs.pop(n) for n in names if n in self._page_runs}  # used once
        runs.update(self._runs([n for n in names if n not in runs]))
        for ctx_id, name in contexts:
            ids = sorted(exec_by_ctx.get(ctx_id, []))
            execs = [executions[i] for i in ids if i in executions]
            events = sorted((e for i in ids for e in events_by_exec.get(i, [])), key=lambda e: e.id)
            arts = {e.artifact_id: artifacts[e.artifact_id] for e in events if e.artifact_id in artifacts}
            run = runs.get(name)
            spec, platform, error, source = self._spec_for(run)
            yield RunBundle(ctx_id, name, ctx_props.get(ctx_id, {}), parents.get(ctx_id), execs, events, arts,
                            run[0] if run else None, spec, source, error, platform)

    def _artifacts(self, ids: list[int]) -> dict[int, MlmdArtifact]:
        """These artifacts, each with its earliest OUTPUT event in the whole store."""
        t = self.t
        if not ids:
            return {}
        props = self._props(t.artifact_property, "artifact_id", ids)
        ev, p, x = t.event.c, t.event_path.c, t.execution.c
        first: dict[int, int] = {}
        for artifact_id, event_id in self._in(select(ev.artifact_id, func.min(ev.id)).where(ev.type == EVENT_OUTPUT)
                                              .group_by(ev.artifact_id), ev.artifact_id, ids):
            first[artifact_id] = event_id
        key_step = and_(p.event_id == ev.id, p.is_index_step == False, p.step_key.is_not(None))  # noqa: E712
        facts: dict[int, tuple[str | None, str | None]] = {}
        for event_id, key, type_id in self._in(
                select(ev.id, p.step_key, x.type_id).select_from(
                    t.event.outerjoin(t.event_path, key_step).outerjoin(t.execution, x.id == ev.execution_id)),
                ev.id, sorted(first.values())):
            if event_id not in facts:
                facts[event_id] = (key, self.types[type_id][0] if type_id in self.types else None)
        out: dict[int, MlmdArtifact] = {}
        a = t.artifact.c
        types = self.types
        for r in self._in(select(a.id, a.type_id, a.uri, a.state, a.create_time_since_epoch,
                                 a.last_update_time_since_epoch), a.id, ids, raw=True):
            key, producer_type = facts.get(first.get(r[0], -1), (None, None))
            uri = r[2].decode("utf-8", "surrogateescape") if isinstance(r[2], bytes) else r[2]  # not UTF-8: kept, skipped
            out[r[0]] = MlmdArtifact(r[0], types.get(r[1], ("?", 0))[0], uri, r[3], millis(r[4]), millis(r[5]),
                                     props.get(r[0], {}), key, producer_type)
        return out

    def _runs(self, names: list[str], hashed: bool = False) -> dict[str, tuple[RunRecord, str | None]]:
        """run_details (+ experiment namespace + spec text) of these run ids; `hashed`: the spec's SHA-256
        (`dialects.text_sha256_sql`) in place of its text."""
        if self.kfp is None or not self.kfp_has_run_details:
            return {}
        rd, exp, _ = self._kfp_tables
        out: dict[str, tuple[RunRecord, str | None]] = {}
        columns: list[Any] = list(rd.c)
        if hashed:
            d = dialect_for(self.kfp)
            columns = [c for c in rd.c if c.name != "PipelineSpecManifest"] + [literal_column(
                text_sha256_sql(d, d.q("PipelineSpecManifest"))).label("ManifestSha256")]
        rows = self._in(select(*columns), rd.c.UUID, names, conn=self.kfp)
        exp_ns = {r.UUID: r.Namespace for r in self._in(select(exp.c.UUID, exp.c.Namespace), exp.c.UUID,
                                                         sorted({r.ExperimentUUID for r in rows}), conn=self.kfp)}
        for r in rows:
            out[r.UUID] = (RunRecord(
                r.UUID, r.DisplayName or "", r.Name or "", r.Namespace or "", r.ExperimentUUID or "",
                exp_ns.get(r.ExperimentUUID), r.State, r.Conditions or "", int(r.CreatedAtInSec or 0),
                int(r.FinishedAtInSec or 0), r.PipelineVersionId or None),
                r.ManifestSha256 if hashed else r.PipelineSpecManifest)
        return out

    def _server_hashes(self) -> bool:
        """Whether the KFP database hashes texts itself (`can_hash_texts`; asked once)."""
        if self._can_hash is None:
            self._can_hash = self.kfp is not None and can_hash_texts(self.kfp)
        return self._can_hash

    def _spec_for(self, run: tuple[RunRecord, str | None] | None) -> tuple[Any, Any, Any, str | None]:
        if run is None:
            return None, None, None, None
        record, manifest = run
        if manifest and str(manifest).strip():
            key = "m:" + hashlib.sha256(str(manifest).encode()).hexdigest()
            spec, platform, error = self._specs.get(key, manifest)
            return spec, platform, error, "manifest" if spec else None
        if record.pipeline_version_id:
            key = "v:" + record.pipeline_version_id
            if key not in self._specs.entries:
                _, _, versions = self._kfp_tables
                assert self.kfp is not None
                row = self._one(select(versions.c.PipelineSpec).where(versions.c.UUID == record.pipeline_version_id),
                                conn=self.kfp)
                spec, platform, error = self._specs.get(key, row[0] if row else None)
            else:
                spec, platform, error = self._specs.get(key, None)
            return spec, platform, error, "pipeline_version" if spec else None
        return None, None, None, None

    # --- helpers -----------------------------------------------------------------------
    def _props(self, table: Table, owner: str, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        """Custom properties of the owners in `ids`."""
        out: dict[int, dict[str, Any]] = defaultdict(dict)
        c = table.c
        query = select(c[owner], c.name, c.int_value, c.double_value, c.string_value, c.proto_value,
                       c.bool_value).where(c.is_custom_property == True)  # noqa: E712
        rows = self._in(query, c[owner], ids, raw=True)
        for owner_id, name, int_value, double_value, string_value, proto_value, bool_value in rows:
            if int_value is not None:  # the common cases inline; decode_value has the full rules
                out[owner_id][name] = int(int_value)
            elif string_value is not None and type(string_value) is str and not string_value.startswith("mlmd-"):
                out[owner_id][name] = string_value
            else:
                out[owner_id][name] = decode_value(int_value, double_value, string_value, proto_value, bool_value)
        return out

    def _in(self, query: Any, column: Any, ids: Sequence[Any], conn: Connection | None = None, *,
            raw: bool = False) -> list[Any]:
        """`query` restricted to `column IN ids`: one array parameter on PostgreSQL (psycopg sends it as
        one value; an expanded list of hundreds of placeholders costs more to build than to run), lists
        of at most IN_CHUNK literals elsewhere. `raw`: the driver's own tuples (see `_all`)."""
        ids = list(ids)
        if not ids:
            return []
        target = conn or self.mlmd
        if dialect_for(target).array_parameters:
            kind = Integer if isinstance(ids[0], int) else String
            return self._all(query.where(column == any_(bindparam(None, ids, type_=ARRAY(kind)))), conn, raw=raw)
        rows: list[Any] = []
        for chunk in chunks(ids, IN_CHUNK):
            rows.extend(self._all(query.where(column.in_(chunk)), conn, raw=raw))
        return rows

    def _all(self, query: Any, conn: Connection | None = None, *, raw: bool = False) -> list[Any]:
        """Every row of `query`. `raw`: the driver's tuples, without SQLAlchemy's row objects and result
        processing (for the hot per-page queries read by position, whose values are decoded here: a
        boolean may come back as 0/1, a binary as bytes or memoryview)."""
        self.queries += 1
        result = (conn or self.mlmd).execute(query)
        if not raw:
            return list(result.fetchall())
        try:
            return list(result.cursor.fetchall())
        finally:
            result.close()

    def _one(self, query: Any, conn: Connection | None = None) -> Any:
        self.queries += 1
        return (conn or self.mlmd).execute(query).first()
