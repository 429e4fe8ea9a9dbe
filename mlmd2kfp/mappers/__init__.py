"""Pure functions from one MLMD run bundle to KFP target rows (no I/O, no clock, no logging).

`map_run` implements mapping.md: the task tree (tree.py), task columns and states (tasks.py),
artifacts (artifacts.py), parameters and links (io.py), ids and keys (keys.py), all JSON in the
canonical protojson form (protojson.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from ..records import (EVENT_INPUT, EVENT_OUTPUT, ArtifactRow, LedgerEntry, LinkRow, MlmdEvent, MlmdExecution,
                       RunBundle, RunRows, TaskRow)
from ..source.values import BAD_TIME, BadValue
from . import keys
from .artifacts import map_artifact
from .enums import CONDITION, CONDITION_BRANCH, LOOP, ROOT, RUNTIME
from .wiring import Link, RunIO
from .protojson import dumps
from .tasks import (assign_ids, compute_finished, compute_states, pods, state_history, status_metadata,
                    type_attrs)
from .tree import SkipRun, TaskNode, Tree, build_tree

NAME_LIMIT, NAMESPACE_LIMIT, KEY_LIMIT, DISPLAY_LIMIT = 128, 63, 191, 128
_FIXED_LABELS = {LOOP: "Loop", CONDITION_BRANCH: "Condition Branch", CONDITION: "Condition"}

__all__ = ["MapOptions", "map_run", "effective_namespace"]


@dataclass(frozen=True)
class MapOptions:
    """How runs are mapped."""

    multi_user: bool
    """Multi-user install: tasks and artifacts carry the experiment namespace; else `''`."""
    source_name: str = ""
    """Mixed into every id so two MLMD databases can share one KFP database."""
    max_value_bytes: int | None = None
    """The largest single column value the target accepts (MySQL's `max_allowed_packet`, less a margin);
    a run holding a larger one is skipped (`value-too-long`), never truncated. None: no limit."""


def effective_namespace(bundle: RunBundle, multi_user: bool) -> str:
    """The run's namespace N (mapping.md §4 `Namespace`).

    Raises:
        SkipRun: `namespace-mismatch` or `identifier-too-long`.
    """
    if not multi_user:
        return ""
    run = bundle.run
    assert run is not None
    ns = run.experiment_namespace
    if not ns or ns != run.namespace:
        raise SkipRun("namespace-mismatch", f"experiment namespace `{ns}` and run namespace `{run.namespace}` "
                                            "must be equal and non-empty in a multi-user install")
    if len(ns) > NAMESPACE_LIMIT:
        raise SkipRun("identifier-too-long", f"namespace `{ns[:40]}…` is longer than {NAMESPACE_LIMIT}")
    return ns


def map_run(bundle: RunBundle, options: MapOptions) -> RunRows:
    """Map one run bundle to target rows plus ledger entries; a run that cannot be migrated is skipped whole."""
    bundle, notes = _sanitise(bundle)
    try:
        rows = _map(bundle, options)
    except SkipRun as skip:
        return _skipped(bundle, skip)
    rows.ledger[:0] = notes
    return rows


def _sanitise(bundle: RunBundle) -> tuple[RunBundle, list[LedgerEntry]]:
    """Values no target column can hold, set aside before mapping (mapping.md M17): undecodable
    properties are dropped (`bad-property`), times before 1970 become 0 (`bad-time`)."""
    notes: list[LedgerEntry] = []
    clean: list[MlmdExecution] = []
    for e in bundle.executions:
        bad = sorted(k for k, v in e.props.items() if isinstance(v, BadValue))
        for key in bad:
            notes.append(LedgerEntry(bundle.run_id, "execution", e.id, "bad-property", f"`{key}`: {e.props[key].reason}"))
        fingerprint = e.props.get("cache_fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):  # docs/mapping.md M28
            bad.append("cache_fingerprint")
            notes.append(LedgerEntry(bundle.run_id, "execution", e.id, "bad-property",
                                     f"`cache_fingerprint`: a {type(fingerprint).__name__}, not text; no fingerprint written"))
        times_bad = _unusable(e.create_ms) or _unusable(e.update_ms)
        if times_bad:
            notes.append(LedgerEntry(bundle.run_id, "execution", e.id, "bad-time", _bad_time(e.create_ms, e.update_ms)))
        if bad or times_bad:
            e = replace(e, props={k: v for k, v in e.props.items() if k not in bad},
                        create_ms=_usable(e.create_ms), update_ms=_usable(e.update_ms))
        clean.append(e)
    artifacts = dict(bundle.artifacts)
    for artifact_id, a in bundle.artifacts.items():
        if _unusable(a.create_ms) or _unusable(a.update_ms):
            notes.append(LedgerEntry(bundle.run_id, "artifact", a.id, "bad-time", _bad_time(a.create_ms, a.update_ms)))
            artifacts[artifact_id] = replace(a, create_ms=_usable(a.create_ms), update_ms=_usable(a.update_ms))
    if not notes:
        return bundle, notes
    return replace(bundle, executions=clean, artifacts=artifacts), notes


_TIME_END_MS = 253_402_300_800_000
"""10000-01-01T00:00:00Z: the first time an RFC 3339 timestamp cannot write (StateHistory's `updateTime`)."""


def _unusable(ms: int) -> bool:
    """Before 1970 (or not a number), or past year 9999 (docs/mapping.md M17)."""
    return ms < 0 or ms >= _TIME_END_MS


def _usable(ms: int) -> int:
    return 0 if _unusable(ms) else ms


def _bad_time(create_ms: int, update_ms: int) -> str:
    shown = ["not a number" if ms == BAD_TIME else f"{ms} ms" for ms in (create_ms, update_ms)]
    return f"create/update time {shown[0]} / {shown[1]} is not a time between 1970 and 9999; written as 0"


def _skipped(bundle: RunBundle, skip: SkipRun) -> RunRows:
    rows = RunRows(bundle.run_id, skipped=skip.reason)
    rows.ledger.append(LedgerEntry(bundle.run_id, "run", bundle.context_id, skip.reason, skip.detail))
    for e in bundle.executions:
        rows.ledger.append(LedgerEntry(bundle.run_id, "execution", e.id, skip.reason))
    for ev in bundle.events:
        rows.ledger.append(LedgerEntry(bundle.run_id, "event", ev.id, skip.reason))
    return rows


def _display_name(task: TaskNode, bundle: RunBundle) -> str:
    if task.type == ROOT:
        return bundle.run.display_name if bundle.run else ""
    if task.type in _FIXED_LABELS:
        return _FIXED_LABELS[task.type]
    info = ((task.task_spec or {}).get("taskInfo") or {}).get("name")
    if isinstance(info, str) and info:
        return info
    shown = task.effective.props.get("display_name")
    return shown if isinstance(shown, str) and shown else task.name


def _platform_op(task: TaskNode, spec: dict[str, Any] | None) -> bool:
    """Kubernetes platform ops (createpvc/deletepvc): their MLMD pod is the driver's."""
    label = (task.component or {}).get("executorLabel")
    executor = (((spec or {}).get("deploymentSpec") or {}).get("executors") or {}).get(label) if label else None
    image = ((executor or {}).get("container") or {}).get("image", "")
    return isinstance(image, str) and image.startswith("argostub/")


def _map(bundle: RunBundle, options: MapOptions) -> RunRows:
    """The rows of one sanitised run: tree, states, events, artifacts, parameters and links, then task rows."""
    run = bundle.run
    if run is None:
        raise SkipRun("orphan-run", "no `run_details` row (the run was deleted, or never recorded)")
    namespace = effective_namespace(bundle, options.multi_user)
    out = RunRows(bundle.run_id, namespace=namespace)
    if bundle.spec is None:
        detail = bundle.spec_error or "neither `PipelineSpecManifest` nor the pipeline version holds a spec"
        out.ledger.append(LedgerEntry(bundle.run_id, "run", bundle.context_id, "no-spec", detail))
        out.warnings.append(f"run {bundle.run_id}: no pipeline spec ({detail}); mapped with the fallbacks")
    tree = build_tree(bundle)
    out.ledger.extend(tree.ledger)
    root = tree.root
    assign_ids(root, bundle.run_id, options.source_name, bundle.context_id)
    tasks = root.walk()
    for task in tasks:
        if len(task.name) > NAME_LIMIT:
            raise SkipRun("identifier-too-long", f"task name `{task.name[:40]}…` is longer than {NAME_LIMIT}",
                          task.effective.id)
    compute_states(root, run)
    compute_finished(root, run)

    events_of = _events_by_execution(bundle, tree, tasks, out.ledger)
    rows_of = _map_artifacts(bundle, events_of, namespace, options, out)
    io = _wire(root, rows_of, bundle, events_of)
    out.ledger.extend(io.ledger)
    for task in tasks:
        out.tasks.append(_task_row(task, bundle, namespace, out.ledger))
        out.links.extend(_link_rows(task, io.links[task], bundle, options.source_name))
    _check_storable(out, options)
    return out


def _events_by_execution(bundle: RunBundle, tree: Tree, tasks: list[TaskNode],
                         ledger: list[LedgerEntry]) -> dict[int, list[MlmdEvent]]:
    """The INPUT and OUTPUT events of every attempt in the tree; any other event is ledgered, with the reason
    its execution did not become a task when it did not."""
    in_tree = {a.id: t for t in tasks for a in t.attempts}
    events_of: dict[int, list[MlmdEvent]] = {}
    ledger_reason = {e.execution_id: "flattened-iteration" for e in tree.iteration_events}
    for entry in tree.ledger:
        if entry.entity == "execution" and entry.reason in ("unsupported-type", "detached-execution"):
            ledger_reason[entry.mlmd_id] = entry.reason
    for ev in bundle.events:
        if ev.execution_id in in_tree and ev.type not in (EVENT_INPUT, EVENT_OUTPUT):  # docs/mapping.md M29
            ledger.append(LedgerEntry(bundle.run_id, "event", ev.id, "unsupported-event-type",
                                      f"MLMD event type {ev.type}; only INPUT (3) and OUTPUT (4) become links"))
        elif ev.execution_id in in_tree:
            events_of.setdefault(ev.execution_id, []).append(ev)
        else:
            ledger.append(LedgerEntry(bundle.run_id, "event", ev.id,
                                      ledger_reason.get(ev.execution_id, "detached-execution")))
    return events_of


def _map_artifacts(bundle: RunBundle, events_of: dict[int, list[MlmdEvent]], namespace: str, options: MapOptions,
                   out: RunRows) -> dict[int, list[ArtifactRow]]:
    """Rows of every artifact an event of the tree names (added to `out`), by MLMD artifact id."""
    rows_of = {}
    for artifact_id in sorted({ev.artifact_id for evs in events_of.values() for ev in evs}):
        artifact = bundle.artifacts.get(artifact_id)
        if artifact is None:
            continue
        artifact_rows, artifact_ledger = map_artifact(artifact, namespace, bundle.run_id, options.source_name)
        rows_of[artifact_id] = artifact_rows
        out.ledger.extend(artifact_ledger)
        out.artifacts.extend(artifact_rows)
    return rows_of


def _wire(root: TaskNode, rows_of: dict[int, list[ArtifactRow]], bundle: RunBundle,
          events_of: dict[int, list[MlmdEvent]]) -> RunIO:
    """Parameters and links of the whole tree, in the order each step needs the one before."""
    io = RunIO(root, rows_of, bundle.run_id)
    io.own_output_params()
    io.output_links(events_of)
    io.propagate(bundle.spec is not None)
    io.input_params(bundle.spec is not None)
    io.input_links(events_of)
    return io


def _task_row(task: TaskNode, bundle: RunBundle, namespace: str, ledger: list[LedgerEntry]) -> TaskRow:
    """The `tasks` row of `task`; a DisplayName over the limit is cut (and ledgered)."""
    display = _display_name(task, bundle)
    if len(display) > DISPLAY_LIMIT:
        ledger.append(LedgerEntry(bundle.run_id, "execution", task.effective.id, "truncated",
                                  f"DisplayName of `{task.name}` cut to {DISPLAY_LIMIT}"))
        display = display[:DISPLAY_LIMIT]
    parent_id = task.parent.uuid if task.parent else None
    return TaskRow(
        uuid=task.uuid, namespace=namespace, run_uuid=bundle.run_id,
        pods=dumps(pods(task, _platform_op(task, bundle.spec))),
        created_at=task.created, started_at=0, finished_at=task.finished,
        fingerprint=str(task.effective.props.get("cache_fingerprint") or "") if task.type == RUNTIME else "",
        name=task.name, display_name=display, parent_task_uuid=parent_id, state=task.state,
        status_metadata=dumps(status_metadata(task)), state_history=dumps(state_history(task)),
        input_parameters=dumps(_sorted_params(task.input_params) or None),
        output_parameters=dumps(_sorted_params(task.output_params) or None),
        type=task.type, type_attrs=dumps(type_attrs(task)), scope_path=task.scope_path,
        logical_key=keys.logical_key(bundle.run_id, parent_id, task.scope_path, task.name, task.type,
                                     task.iteration) or "",
        mlmd_execution_ids=tuple(a.id for a in task.attempts),
    )


def _link_rows(task: TaskNode, links: list[Link], bundle: RunBundle, source_name: str) -> list[LinkRow]:
    """The `artifact_tasks` rows of `task` (in run `bundle`).

    Raises:
        SkipRun: `identifier-too-long` (an artifact key over 191 characters).
    """
    rows = []
    for link in links:
        if len(link.key) > KEY_LIMIT:
            raise SkipRun("identifier-too-long", f"artifact key `{link.key[:40]}…` is longer than {KEY_LIMIT}")
        rows.append(LinkRow(
            keys.link_id(task.uuid, link.artifact.uuid, link.type, link.iteration, link.key, source_name,
                         bundle.context_id),
            link.artifact.uuid, task.uuid, link.type, link.iteration, bundle.run_id, dumps(link.producer),
            link.key, link.event_id))
    return rows


URI_LIMIT, FINGERPRINT_LIMIT = 2048, 255
_TEXT_COLUMNS = {"tasks": ("Name", "DisplayName", "Fingerprint", "ScopePath"), "artifacts": ("URI", "Name"),
                 "artifact_tasks": ("ArtifactKey",)}


def _check_storable(out: RunRows, options: MapOptions) -> None:
    """Values no target column can hold whole (mapping.md §3, docs/mapping.md M20): the run is skipped.

    Raises:
        SkipRun: `value-too-long` (URI over 2048, Fingerprint over 255 characters, any value over the
            server's packet limit) or `unstorable-value` (a NUL character in a text column, which
            PostgreSQL cannot store, or MLMD bytes that were not UTF-8).
    """
    for a in out.artifacts:
        if a.uri is not None and len(a.uri) > URI_LIMIT:
            raise SkipRun("value-too-long", f"artifacts.URI of MLMD artifact {a.mlmd_artifact_id} has "
                                            f"{len(a.uri)} characters; the column holds {URI_LIMIT}")
    for t in out.tasks:
        if len(t.fingerprint) > FINGERPRINT_LIMIT:
            raise SkipRun("value-too-long", f"tasks.Fingerprint of `{t.scope_path[:60]}` has {len(t.fingerprint)} "
                                            f"characters; the column holds {FINGERPRINT_LIMIT}")
    tables = (("tasks", out.tasks, {"Name": "name", "DisplayName": "display_name", "Fingerprint": "fingerprint",
                                    "ScopePath": "scope_path", "pods": "pods", "StatusMetadata": "status_metadata",
                                    "StateHistory": "state_history", "InputParameters": "input_parameters",
                                    "OutputParameters": "output_parameters", "TypeAttrs": "type_attrs"}),
              ("artifacts", out.artifacts, {"URI": "uri", "Name": "name", "Metadata": "metadata"}),
              ("artifact_tasks", out.links, {"ArtifactKey": "artifact_key", "Producer": "producer"}))
    limit = options.max_value_bytes
    nul: SkipRun | None = None  # value-too-long anywhere in the run wins over a NUL (order-free)
    for table, rows, columns in tables:
        for row in rows:
            for column, attr in columns.items():
                value = getattr(row, attr)
                if not isinstance(value, str):
                    continue
                if nul is None and column in _TEXT_COLUMNS[table] and "\x00" in value:
                    nul = SkipRun("unstorable-value", f"{table}.{column} of row {row.uuid} holds a NUL character, "
                                                      "which PostgreSQL cannot store in text")
                if nul is None and column in _TEXT_COLUMNS[table] and not value.isascii() and not _utf8(value):
                    nul = SkipRun("unstorable-value", f"{table}.{column} of row {row.uuid} was not valid UTF-8 in "
                                                      "MLMD, which no target text column can hold")
                if limit is not None and len(value) * 4 > limit and len(value.encode()) > limit:
                    raise SkipRun("value-too-long", f"{table}.{column} of row {row.uuid} is {len(value.encode())} "
                                                    f"bytes; the server accepts {limit} (max_allowed_packet)")
    if nul is not None:
        raise nul


def _utf8(value: str) -> bool:
    """`value` can be written as UTF-8 (MLMD bytes that were not UTF-8 come back holding lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _sorted_params(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (e["parameterKey"], e["type"], e["producer"].get("taskName", ""),
                                          int(e["producer"].get("iteration", -1))))
