"""The expected side's own read path (independent of `source/reader.py`, issue #5).

`ApiSource` reads MLMD through the `ml-metadata` library (the default when it is installed);
`SqlSource` is a separate, deliberately plain SQL path for installs without it. Both yield
`SourceRun`s, one `system.PipelineRun` context at a time.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format, struct_pb2
from google.protobuf.message import DecodeError
from sqlalchemy import text
from sqlalchemy.engine import Connection, URL

from ..batching import chunks
from ..bitmap import Bitmap
from ..dialects import dialect_for, holds_nul_sql, untyped_integer_sql

RUN_TYPE = "system.PipelineRun"
KFP_TYPES = {"system.DAGExecution", "system.ContainerExecution", "system.ImporterExecution",
             "system.ImporterWorkspaceExecution"}
"""The execution types KFP v2 writes (mlmd-source-model.md); `expect` re-exports them."""


def _ms(value: Any) -> int:
    """A time column as milliseconds; -1 (a time before 1970, mapping.md M17) when it is not a number."""
    if value is None:
        return 0
    try:
        return int(str(value)) if not isinstance(value, (int, float)) else int(value)
    except ValueError:
        return -1


@dataclass
class SourceExecution:
    id: int
    type: str
    state: int | None
    name: str | None
    props: dict[str, Any]
    create_ms: int = 0
    update_ms: int = 0
    bad: tuple[str, ...] = ()
    """Properties left out because they cannot be decoded (mapping.md M17)."""


@dataclass
class SourceArtifact:
    id: int
    type: str
    uri: str | None
    props: dict[str, Any]
    create_ms: int = 0
    update_ms: int = 0
    bad: tuple[str, ...] = ()
    first_key: str | None = None
    """Key of the artifact's earliest OUTPUT event in the whole store (filled by `verify.source_chunks`)."""
    first_type: str | None = None
    """Execution type of that event."""


@dataclass
class SourceEvent:
    artifact_id: int
    execution_id: int
    type: int
    key: str | None
    id: int = 0
    """MLMD `Event.id` (the API does not expose it: filled from SQL by `verify.source_chunks`)."""


@dataclass
class SourceRun:
    """One run context as the expected side sees it."""

    context_id: int
    run_id: str
    executions: list[SourceExecution]
    events: list[SourceEvent]
    artifacts: dict[int, SourceArtifact] = field(default_factory=dict)


def _api_value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "struct_value":
        return json_format.MessageToDict(v.struct_value)
    if which is None:
        return None
    return getattr(v, which)


class ApiSource:
    """MLMD through `ml-metadata`'s own API (read-only, no schema creation, no upgrade)."""

    name = "ml-metadata API"

    def __init__(self, url: URL, fallback: SqlSource | None = None) -> None:
        from ..source.mlmd_api import open_read_only, require_mlmd

        require_mlmd()
        self.store = open_read_only(url)
        self.fallback = fallback
        self.fallback_runs: list[str] = []
        """Runs ml-metadata refused to read (undecodable values); read through `fallback` instead."""

    def _run_contexts(self, page: int = 500) -> Iterator[Any]:
        """Run contexts in ascending id, a page at a time (memory stays flat as the store grows)."""
        import ml_metadata as mlmd

        last = 0
        while True:
            contexts = self.store.get_contexts(list_options=mlmd.ListOptions(
                limit=page, order_by=mlmd.OrderByField.ID, is_asc=True,
                filter_query=f"type = '{RUN_TYPE}' AND id > {last}"))
            if not contexts:
                return
            yield from contexts
            last = contexts[-1].id

    def runs(self, only: set[int] | None = None) -> Iterator[SourceRun]:
        """Every run (`only`: the run contexts of these ids), in ascending context id."""
        page: list[Any] = []
        twins = self.fallback.twin_run_contexts() if self.fallback is not None else set()
        for ctx in (self._run_contexts() if only is None else self._contexts_by_id(only)):
            if ctx.id in twins:
                continue
            page.append(ctx)
            if len(page) >= 100:
                yield from self._read_page(page)
                page = []
        yield from self._read_page(page)

    def _contexts_by_id(self, ids: set[int], page: int = 500) -> Iterator[Any]:
        ordered = sorted(ids)
        for start in range(0, len(ordered), page):
            yield from sorted(self.store.get_contexts_by_id(ordered[start:start + page]), key=lambda c: c.id)

    def _read_page(self, contexts: list[Any]) -> Iterator[SourceRun]:
        """A page of runs: executions per context, then the page's events and artifacts in one call each."""
        if not contexts:
            return
        ids = [c.id for c in contexts]
        # ml-metadata's C++ core aborts the process on a time column holding text, and cuts strings at a NUL
        untyped = self.fallback.untyped_times(ids) | self.fallback.nul_text(ids) if self.fallback is not None else set()
        if untyped:  # read those runs through SQL
            for ctx in contexts:
                if ctx.id in untyped:
                    self.fallback_runs.append(ctx.name)
                    yield self.fallback.read_context(ctx.id, ctx.name)  # type: ignore[union-attr]
                else:
                    yield from self._read_page([ctx])
            return
        try:
            executions = {c.id: sorted(self.store.get_executions_by_context(c.id), key=lambda e: e.id) for c in contexts}
            ids = [e.id for c in contexts for e in executions[c.id]]
            events = self.store.get_events_by_execution_ids(ids) if ids else []
            artifact_ids = sorted({ev.artifact_id for ev in events})
            artifacts = {a.id: a for a in (self.store.get_artifacts_by_id(artifact_ids) if artifact_ids else [])}
        except Exception:  # a value ml-metadata cannot decode somewhere in the page: run by run
            for ctx in contexts:
                yield self._read_one(ctx)
            return
        if self.fallback is not None:
            # ml-metadata silently leaves out rows it cannot decode (a time column that holds text): a run
            # whose executions or artifacts the library did not all return is read through SQL instead
            listed = self.fallback.executions_of([c.id for c in contexts])
            short = {c.id for c in contexts if {e.id for e in executions[c.id]} != listed.get(c.id, set())}
            if len(artifacts) != len(artifact_ids):
                missing = set(artifact_ids) - set(artifacts)
                short |= {c.id for c in contexts for e in executions[c.id] for ev in events
                          if ev.execution_id == e.id and ev.artifact_id in missing}
            if short:
                for ctx in contexts:
                    if ctx.id in short:
                        self.fallback_runs.append(ctx.name)
                        yield self.fallback.read_context(ctx.id, ctx.name)
                    else:
                        yield from self._read_page_unchecked([ctx], executions, events, artifacts)
                return
        yield from self._read_page_unchecked(contexts, executions, events, artifacts)

    def _read_page_unchecked(self, contexts: list[Any], executions: dict[int, list[Any]], events: list[Any],
                             artifacts: dict[int, Any]) -> Iterator[SourceRun]:
        run_of: dict[int, list[int]] = {}
        for c in contexts:
            for e in executions[c.id]:
                run_of.setdefault(e.id, []).append(c.id)
        events_of: dict[int, list[Any]] = {c.id: [] for c in contexts}
        for ev in events:  # in ml-metadata's order, as a per-run call returns them
            for ctx_id in run_of.get(ev.execution_id, []):
                events_of[ctx_id].append(ev)
        for ctx in contexts:
            mine = events_of[ctx.id]
            yield self._source_run(ctx, executions[ctx.id], mine,
                                   [artifacts[i] for i in sorted({ev.artifact_id for ev in mine}) if i in artifacts])

    def _read_one(self, ctx: Any) -> SourceRun:
        try:
            executions = sorted(self.store.get_executions_by_context(ctx.id), key=lambda e: e.id)
            events = self.store.get_events_by_execution_ids([e.id for e in executions]) if executions else []
            ids = sorted({ev.artifact_id for ev in events})
            return self._source_run(ctx, executions, events, self.store.get_artifacts_by_id(ids) if ids else [])
        except Exception:  # ml-metadata refuses a value it cannot decode; mapping.md M17 drops such values
            if self.fallback is None:
                raise
            self.fallback_runs.append(ctx.name)
            return self.fallback.read_context(ctx.id, ctx.name)

    @staticmethod
    def _props(message: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
        """Decoded custom properties, and the names of those that are not valid UTF-8 text (left out,
        mapping.md M17: the library hands such values back as bytes)."""
        props, bad = {}, []
        for k, v in message.custom_properties.items():
            if v.WhichOneof("value") == "proto_value":  # KFP never writes one: left out (docs/mapping.md M11)
                bad.append(k)
                continue
            value = _api_value(v)
            if isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    bad.append(k)
                    continue
            props[k] = value
        return props, tuple(bad)

    @classmethod
    def _source_run(cls, ctx: Any, executions: list[Any], events: list[Any], artifacts: list[Any]) -> SourceRun:
        execs = []
        for e in executions:
            props, bad = cls._props(e)
            execs.append(SourceExecution(e.id, e.type, e.last_known_state if e.HasField("last_known_state") else None,
                                         e.name if e.HasField("name") else None, props,
                                         e.create_time_since_epoch, e.last_update_time_since_epoch, bad))
        arts = {}
        for a in artifacts:
            props, bad = cls._props(a)
            uri = a.uri if a.HasField("uri") else None  # bytes where MLMD holds bytes that are not UTF-8
            uri = uri.decode("utf-8", "surrogateescape") if isinstance(uri, bytes) else uri
            arts[a.id] = SourceArtifact(a.id, a.type, uri, props,
                                        a.create_time_since_epoch, a.last_update_time_since_epoch, bad)
        return SourceRun(
            ctx.id, ctx.name, execs,
            [SourceEvent(ev.artifact_id, ev.execution_id, ev.type,
                         next((s.key for s in ev.path.steps if s.HasField("key")), None)) for ev in events], arts)


class SqlSource:
    """A plain SQL path over MLMD's tables (no code shared with the migrator's reader)."""

    name = "SQL"

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.q = dialect_for(conn).mlmd_table
        self._type_names: dict[int, str] | None = None
        self._twins: set[int] | None = None

    def _props(self, table: str, owner: str, ids: list[int],
               bad: dict[int, list[str]] | None = None) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for part in chunks(ids):
            chunk = ",".join(str(int(x)) for x in part)
            for r in self.conn.execute(text(
                    f"SELECT {owner}, name, int_value, double_value, string_value, bool_value, "
                    f"proto_value IS NOT NULL FROM {self.q(table)} "
                    f"WHERE {owner} IN ({chunk}) AND is_custom_property = {'true' if dialect_for(self.conn).native_booleans else '1'}")):
                value: Any = None
                if r[2] is not None:
                    value = int(r[2])
                elif r[3] is not None:
                    value = float(r[3])
                elif r[4] is not None:
                    try:
                        raw = r[4].decode() if isinstance(r[4], bytes) else r[4]
                        if raw.startswith("mlmd-struct::"):
                            s = struct_pb2.Struct()
                            s.ParseFromString(base64.b64decode(raw[len("mlmd-struct::"):], validate=True))
                            value = json_format.MessageToDict(s)
                        else:
                            value = raw
                    except (ValueError, DecodeError):  # undecodable: left out, as mapping.md M17 says
                        if bad is not None:
                            bad.setdefault(int(r[0]), []).append(r[1])
                        continue
                elif r[6]:  # a protobuf value, which KFP never writes: left out (docs/mapping.md M11)
                    if bad is not None:
                        bad.setdefault(int(r[0]), []).append(r[1])
                    continue
                elif r[5] is not None:
                    value = bool(r[5])
                out.setdefault(int(r[0]), {})[r[1]] = value
        return out

    def _types(self) -> dict[int, str]:
        if self._type_names is None:
            self._type_names = {int(r[0]): r[1] for r in self.conn.execute(text(f"SELECT id, name FROM {self.q('Type')}"))}
        return self._type_names

    def untyped_times(self, context_ids: list[int]) -> set[int]:
        """SQLite only (a server's BIGINT column holds numbers): run contexts with an execution or artifact
        whose time column holds something other than an integer."""
        d = dialect_for(self.conn)
        if untyped_integer_sql(d, "x") is None or not context_ids:
            return set()
        ids = ",".join(str(int(c)) for c in context_ids)
        bad = (f"({untyped_integer_sql(d, '{t}.create_time_since_epoch')} OR "
               f"{untyped_integer_sql(d, '{t}.last_update_time_since_epoch')})")
        q = self.q
        rows = self.conn.execute(text(
            f"SELECT a.context_id FROM {q('Association')} a JOIN {q('Execution')} e ON e.id = a.execution_id "
            f"WHERE a.context_id IN ({ids}) AND {bad.format(t='e')} UNION "
            f"SELECT a.context_id FROM {q('Association')} a JOIN {q('Event')} ev ON ev.execution_id = a.execution_id "
            f"JOIN {q('Artifact')} ar ON ar.id = ev.artifact_id WHERE a.context_id IN ({ids}) AND {bad.format(t='ar')}"))
        return {int(r[0]) for r in rows}

    def nul_text(self, context_ids: list[int]) -> set[int]:
        """Run contexts whose MLMD text holds a NUL: an execution's name or string property, an event's
        path key, an artifact's URI, name or string property, the context's own string properties.
        ml-metadata hands such strings back cut at the NUL, so those runs are read through SQL."""
        d = dialect_for(self.conn)
        if holds_nul_sql(d, "x") is None or not context_ids:
            return set()
        ids = ",".join(str(int(c)) for c in context_ids)
        q = self.q

        def nul(column: str) -> str:
            return str(holds_nul_sql(d, column))

        by_execution = f"FROM {q('Association')} a JOIN {{t}} WHERE a.context_id IN ({ids}) AND {{cond}}"
        by_artifact = (f"FROM {q('Association')} a JOIN {q('Event')} ev ON ev.execution_id = a.execution_id "
                       f"JOIN {{t}} WHERE a.context_id IN ({ids}) AND {{cond}}")
        parts = [
            by_execution.format(t=f"{q('Execution')} e ON e.id = a.execution_id", cond=nul("e.name")),
            by_execution.format(t=f"{q('ExecutionProperty')} p ON p.execution_id = a.execution_id",
                                cond=nul("p.string_value")),
            by_artifact.format(t=f"{q('Artifact')} ar ON ar.id = ev.artifact_id",
                               cond=f"({nul('ar.uri')} OR {nul('ar.name')})"),
            by_artifact.format(t=f"{q('ArtifactProperty')} p ON p.artifact_id = ev.artifact_id",
                               cond=nul("p.string_value")),
            by_artifact.format(t=f"{q('EventPath')} ep ON ep.event_id = ev.id", cond=nul("ep.step_key")),
        ]
        context = (f"SELECT cp.context_id FROM {q('ContextProperty')} cp WHERE cp.context_id IN ({ids}) "
                   f"AND {nul('cp.string_value')}")
        rows = self.conn.execute(text(" UNION ".join([*(f"SELECT a.context_id {p}" for p in parts), context])))
        return {int(r[0]) for r in rows}

    def executions_of(self, context_ids: list[int]) -> dict[int, set[int]]:
        """Execution ids per context, from `Association`."""
        out: dict[int, set[int]] = {}
        if context_ids:
            for ctx, execution in self.conn.execute(text(
                    f"SELECT context_id, execution_id FROM {self.q('Association')} WHERE context_id IN "
                    f"({','.join(str(int(c)) for c in context_ids)})")):
                out.setdefault(int(ctx), set()).add(int(execution))
        return out

    def count_runs(self) -> int:
        """How many run contexts the store holds."""
        run_types = [i for i, n in self._types().items() if n == RUN_TYPE]
        if not run_types:
            return 0
        return int(self.conn.execute(text(f"SELECT COUNT(*) FROM {self.q('Context')} WHERE type_id IN "
                                          f"({','.join(map(str, run_types))})")).scalar() or 0)

    def runs(self, only: set[int] | None = None) -> Iterator[SourceRun]:
        """Every run (`only`: the run contexts of these ids), in ascending context id."""
        types = self._types()
        run_types = [i for i, n in types.items() if n == RUN_TYPE]
        if not run_types:
            return
        twins = self.twin_run_contexts()
        contexts = self._run_contexts(run_types) if only is None else self._contexts_by_id(run_types, only)
        for ctx_id, name in contexts:
            if ctx_id not in twins:
                yield self.read_context(ctx_id, name)

    def twin_run_contexts(self) -> set[int]:
        """Run contexts whose run id a run context of lower id holds already (two `system.PipelineRun` type
        rows): not runs of their own (docs/mapping.md M30)."""
        if self._twins is None:
            run_types = ",".join(str(i) for i, n in self._types().items() if n == RUN_TYPE) or "-1"
            q = self.q("Context")
            self._twins = {int(r[0]) for r in self.conn.execute(text(
                f"SELECT c.id FROM {q} c WHERE c.type_id IN ({run_types}) AND EXISTS (SELECT 1 FROM {q} d "
                f"WHERE d.type_id IN ({run_types}) AND d.name = c.name AND d.id < c.id)"))} \
                if "," in run_types else set()
        return self._twins

    def read_context(self, ctx_id: int, name: str) -> SourceRun:
        """One run context's executions, events and artifacts."""
        q = self.q
        types = self._types()
        rows = self.conn.execute(text(
            f"SELECT e.id, e.type_id, e.last_known_state, e.name, e.create_time_since_epoch, "
            f"e.last_update_time_since_epoch FROM {q('Execution')} e JOIN {q('Association')} a "
            f"ON a.execution_id = e.id WHERE a.context_id = {int(ctx_id)} ORDER BY e.id")).all()
        ids = [int(r[0]) for r in rows]
        bad: dict[int, list[str]] = {}
        props = self._props("ExecutionProperty", "execution_id", ids, bad)
        events: Sequence[Any] = []
        if ids:
            events = self.conn.execute(text(
                f"SELECT ev.id, ev.artifact_id, ev.execution_id, ev.type FROM {q('Event')} ev "
                f"WHERE ev.execution_id IN ({','.join(map(str, ids))}) ORDER BY ev.id")).all()
        keys: dict[int, str] = {}
        if events:
            for r in self.conn.execute(text(
                    f"SELECT event_id, step_key FROM {q('EventPath')} WHERE event_id IN "
                    f"({','.join(str(int(e[0])) for e in events)}) AND step_key IS NOT NULL")):
                keys.setdefault(int(r[0]), r[1])
        art_ids = sorted({int(e[1]) for e in events})
        arts = {}
        if art_ids:
            abad: dict[int, list[str]] = {}
            aprops = self._props("ArtifactProperty", "artifact_id", art_ids, abad)
            for r in self.conn.execute(text(
                    f"SELECT id, type_id, uri, create_time_since_epoch, last_update_time_since_epoch FROM "
                    f"{q('Artifact')} WHERE id IN ({','.join(map(str, art_ids))})")):
                uri = r[2].decode("utf-8", "surrogateescape") if isinstance(r[2], bytes) else r[2]
                arts[int(r[0])] = SourceArtifact(int(r[0]), types.get(int(r[1]), "?"), uri, aprops.get(int(r[0]), {}),
                                                 _ms(r[3]), _ms(r[4]), tuple(abad.get(int(r[0]), ())))
        return SourceRun(int(ctx_id), name,
                         [SourceExecution(int(r[0]), types.get(int(r[1]), "?"), r[2], r[3], props.get(int(r[0]), {}),
                                          _ms(r[4]), _ms(r[5]), tuple(bad.get(int(r[0]), ())))
                          for r in rows],
                         [SourceEvent(int(e[1]), int(e[2]), int(e[3]), keys.get(int(e[0])), int(e[0])) for e in events],
                         arts)

    def _contexts_by_id(self, run_types: list[int], ids: set[int]) -> Iterator[tuple[int, str]]:
        ordered = sorted(ids)
        for start in range(0, len(ordered), 500):
            yield from ((int(r[0]), r[1]) for r in self.conn.execute(text(
                f"SELECT id, name FROM {self.q('Context')} WHERE type_id IN ({','.join(map(str, run_types))}) "
                f"AND id IN ({','.join(str(int(i)) for i in ordered[start:start + 500])}) ORDER BY id")))

    def _run_contexts(self, run_types: list[int], page: int = 500) -> Iterator[tuple[int, str]]:
        last = 0
        while True:
            rows = self.conn.execute(text(
                f"SELECT id, name FROM {self.q('Context')} WHERE type_id IN ({','.join(map(str, run_types))}) "
                f"AND id > {int(last)} ORDER BY id LIMIT {int(page)}")).all()
            if not rows:
                return
            yield from ((int(r[0]), r[1]) for r in rows)
            last = rows[-1][0]


def mlmd_table(conn: Any, name: str) -> str:
    """MLMD's table `name` as this connection's backend spells and quotes it."""
    return str(dialect_for(conn).mlmd_table(name))


def enrich(conn: Any, runs: list[Any]) -> None:
    """Event ids (the API does not expose them) and each artifact's earliest OUTPUT event in the whole store
    (its key and execution type name the artifact, mapping.md §5), read with plain SQL."""
    ev_t, path_t, ex_t, ty_t = (mlmd_table(conn, n) for n in ("Event", "EventPath", "Execution", "Type"))
    execution_ids = sorted({e.id for src in runs for e in src.executions})
    # MLMD's Event has UNIQUE(artifact_id, execution_id, type): the tuple names one event
    ids: dict[tuple[int, int, int, str | None], int] = {}
    for part in chunks(execution_ids):
        chunk = ",".join(str(int(x)) for x in part)
        keys: dict[int, str] = {}
        rows = conn.execute(text(f"SELECT id, artifact_id, execution_id, type FROM {ev_t} "
                                 f"WHERE execution_id IN ({chunk}) ORDER BY id")).all()
        for inner in chunks(rows):
            for r in conn.execute(text(f"SELECT event_id, step_key FROM {path_t} WHERE step_key IS NOT NULL AND "
                                       f"event_id IN ({','.join(str(int(x[0])) for x in inner)})")):
                keys.setdefault(int(r[0]), r[1])
        for r in rows:
            ids.setdefault((int(r[1]), int(r[2]), int(r[3]), keys.get(int(r[0]))), int(r[0]))
    for src in runs:
        for ev in src.events:
            if not ev.id:
                ev.id = ids.get((ev.artifact_id, ev.execution_id, ev.type, ev.key), 0)
    artifact_ids = sorted({a for src in runs for a in src.artifacts})
    first: dict[int, tuple[str | None, str | None]] = {}
    for part in chunks(artifact_ids):
        chunk = ",".join(str(int(x)) for x in part)
        events = {int(r[1]): int(r[0]) for r in conn.execute(text(
            f"SELECT MIN(id), artifact_id FROM {ev_t} WHERE type = 4 AND artifact_id IN ({chunk}) GROUP BY artifact_id"))}
        if not events:
            continue
        listed = ",".join(map(str, events.values()))
        keys = {}
        for r in conn.execute(text(f"SELECT event_id, step_key FROM {path_t} WHERE step_key IS NOT NULL AND "
                                   f"event_id IN ({listed})")):
            keys.setdefault(int(r[0]), r[1])
        types = _execution_types(conn, (ev_t, ex_t, ty_t), listed)
        for artifact_id, event_id in events.items():
            first[artifact_id] = (keys.get(event_id), types.get(event_id))
    for src in runs:
        for a in src.artifacts.values():
            a.first_key, a.first_type = first.get(a.id, (None, None))


def _execution_types(conn: Any, tables: tuple[str, str, str], listed: str) -> dict[int, str]:
    """The type name of the execution of each of these events (ids as SQL text), by primary keys in steps:
    as one three-table join, MariaDB at 200k executions planned it from `Type` outwards and examined
    311 M rows for 521 pages (137 s of a 274 s verify; BENCHMARKS.md)."""
    ev_t, ex_t, ty_t = tables
    execution_of = {int(r[0]): int(r[1]) for r in conn.execute(text(
        f"SELECT id, execution_id FROM {ev_t} WHERE id IN ({listed})"))}
    if not execution_of:
        return {}
    type_of = {int(r[0]): int(r[1]) for r in conn.execute(text(
        f"SELECT id, type_id FROM {ex_t} WHERE id IN ({','.join(map(str, sorted(set(execution_of.values()))))})"))}
    if not type_of:
        return {}
    names = {int(r[0]): r[1] for r in conn.execute(text(
        f"SELECT id, name FROM {ty_t} WHERE id IN ({','.join(map(str, sorted(set(type_of.values()))))})"))}
    return {event: names[type_of[x]] for event, x in execution_of.items() if x in type_of and type_of[x] in names}


def expected_runless(mconn: Any, linked: Bitmap) -> set[tuple[str, int, str]]:
    """The run-less ledger entries (entity, MLMD id, reason), re-derived from MLMD with plain SQL (linear
    scans and bitmaps, no per-row subqueries): executions in no run context, artifacts of v1 types or no
    migrated run links (`linked`: MLMD ids), events whose execution row is missing, v1 run contexts, second
    contexts of one run id, and the one note of the migration."""
    ctx_t, assoc_t, ex_t, art_t, ev_t, ty_t = (mlmd_table(mconn, n) for n in (
        "Context", "Association", "Execution", "Artifact", "Event", "Type"))
    types = {int(r[0]): (str(r[1]), int(r[2] or 0)) for r in mconn.execute(text(f"SELECT id, name, type_kind FROM {ty_t}"))}
    run_types = [i for i, (n, k) in types.items() if n == "system.PipelineRun"] or [-1]
    in_run, exists_ = Bitmap(), Bitmap()
    twins = SqlSource(mconn).twin_run_contexts()  # a second context of one run id is no run (docs/mapping.md M30)
    stream = mconn.execution_options(yield_per=5000)
    for execution_id, context_id in stream.execute(text(
            f"SELECT a.execution_id, a.context_id FROM {assoc_t} a JOIN {ctx_t} c ON c.id = a.context_id "
            f"WHERE c.type_id IN ({','.join(map(str, run_types))})")):
        if context_id not in twins:
            in_run.add(execution_id)
    want: set[tuple[str, int, str]] = {("migration", 0, "dag-driver-failure-not-in-mlmd")}  # mapping.md §3 (v3)
    want |= {("context", int(c), "duplicate-run") for c in twins}
    for execution_id, type_id in stream.execute(text(f"SELECT id, type_id FROM {ex_t}")):
        exists_.add(execution_id)
        if execution_id not in in_run:
            name = types.get(int(type_id), ("?", 0))[0]
            want.add(("execution", int(execution_id), "no-run" if name in KFP_TYPES else
                      "unsupported-v1" if name.startswith("components.") else "unsupported-type"))
    for artifact_id, type_id in stream.execute(text(f"SELECT id, type_id FROM {art_t}")):
        name = types.get(int(type_id), ("?", 0))[0]
        if "." in name and not name.startswith("mlmd."):
            if artifact_id not in linked:
                want.add(("artifact", int(artifact_id), "orphan-artifact"))
        else:
            want.add(("artifact", int(artifact_id), "unsupported-v1"))
    for event_id, execution_id in stream.execute(text(f"SELECT id, execution_id FROM {ev_t}")):
        if execution_id not in exists_:
            want.add(("event", int(event_id), "dangling-event"))
    v1 = [i for i, (n, k) in types.items() if k == 2 and n in ("KfpRun", "pipeline_run")]
    if v1:
        for (context_id,) in stream.execute(text(f"SELECT id FROM {ctx_t} WHERE type_id IN ({','.join(map(str, v1))})")):
            want.add(("context", int(context_id), "unsupported-v1"))
    return want
