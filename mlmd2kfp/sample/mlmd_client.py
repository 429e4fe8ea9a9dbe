"""A Python replica of KFP's Go metadata client write path, over the real `ml-metadata` library.

One method per Go call of `backend/src/v2/metadata/client.go` (mlmd-source-model.md §2, §4.1):
the database-level side effects (associations, attributions, struct encoding, double
truncation, unique constraints) come from MLMD itself. MLMD stamps times with the wall
clock; `Clock` records the virtual time of every write so `restamp` can make the sample
deterministic afterwards (recipe §4.1 step 5).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, text
from ..dialects import dialect_for
from ..source.mlmd_api import mlmd_pb

RUNNING, COMPLETE, FAILED, CACHED, CANCELED = 2, 3, 4, 5, 6  # Execution.State
INPUT, OUTPUT = 3, 4  # Event.Type
LIVE = 2  # Artifact.State


@dataclass
class Clock:
    """Virtual milliseconds for every MLMD row the sample writes."""

    now_ms: int
    executions: dict[int, list[int]] = field(default_factory=dict)
    artifacts: dict[int, list[int]] = field(default_factory=dict)
    contexts: dict[int, list[int]] = field(default_factory=dict)
    events: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(artifact_id, execution_id, type, ms)"""

    def tick(self, ms: int) -> int:
        """Advance the clock and return the new time."""
        self.now_ms += ms
        return self.now_ms

    def touch(self, table: dict[int, list[int]], node_id: int) -> None:
        """Record a create (first call) or an update of a node at the current time."""
        if node_id in table:
            table[node_id][1] = self.now_ms
        else:
            table[node_id] = [self.now_ms, self.now_ms]


def _value(v: Any, target: Any) -> None:
    """Set an MLMD `Value` the way KFP's converter does (converter.go:138-168)."""
    if isinstance(v, bool):
        target.int_value = int(v)
    elif isinstance(v, int):
        target.double_value = float(v)
    elif isinstance(v, float):
        target.double_value = v
    elif isinstance(v, str):
        target.string_value = v
    elif isinstance(v, list):
        target.struct_value.update({"list": v})
    elif isinstance(v, dict):
        target.struct_value.update({"struct": v})
    else:
        raise ValueError(f"unsupported metadata value {v!r}")


def go_json(obj: Any) -> str:
    """Go encoding/json text for maps with sorted keys (no spaces)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


class KfpMetadataClient:
    """The writes KFP's driver and launcher make, one method per Go client call."""

    def __init__(self, store: Any, clock: Clock) -> None:
        self.store = store
        self.clock = clock
        self._type_ids: dict[tuple[str, str], int] = {}

    # --- types -----------------------------------------------------------------------------
    def type_id(self, kind: str, name: str, properties: dict[str, int] | None = None) -> int:
        """Get-or-create a schemaless (or, for v1, typed) type by name."""
        key = (kind, name)
        if key not in self._type_ids:
            cls = {"execution": mlmd_pb.ExecutionType, "artifact": mlmd_pb.ArtifactType,
                   "context": mlmd_pb.ContextType}[kind]
            t = cls(name=name)
            for prop, data_type in (properties or {}).items():
                t.properties[prop] = data_type
            put = {"execution": self.store.put_execution_type, "artifact": self.store.put_artifact_type,
                   "context": self.store.put_context_type}[kind]
            self._type_ids[key] = put(t)
        return self._type_ids[key]

    # --- contexts --------------------------------------------------------------------------
    def get_pipeline(self, pipeline_name: str, run_id: str, namespace: str, pipeline_root: str,
                     session_info: str) -> tuple[Any, Any]:
        """client.GetPipeline: get-or-create the pipeline and run contexts and link them."""
        pipeline_ctx = self._get_or_create_context("system.Pipeline", pipeline_name, {})
        run_ctx = self._get_or_create_context(
            "system.PipelineRun", run_id,
            {"namespace": namespace, "resource_name": "run-resource",
             "pipeline_root": f"{pipeline_root}/{pipeline_name}/{run_id}",
             "store_session_info": session_info},
        )
        if not any(p.id == pipeline_ctx.id for p in self.store.get_parent_contexts_by_context(run_ctx.id)):
            self.store.put_parent_contexts([mlmd_pb.ParentContext(child_id=run_ctx.id, parent_id=pipeline_ctx.id)])
        return pipeline_ctx, run_ctx

    def _get_or_create_context(self, type_name: str, name: str, props: dict[str, str]) -> Any:
        existing = self.store.get_context_by_type_and_name(type_name, name)
        if existing is not None:
            return existing
        ctx = mlmd_pb.Context(type_id=self.type_id("context", type_name), name=name)
        for k, v in props.items():
            ctx.custom_properties[k].string_value = v
        [ctx_id] = self.store.put_contexts([ctx])
        self.clock.touch(self.clock.contexts, ctx_id)
        return self.store.get_contexts_by_id([ctx_id])[0]

    # --- executions ------------------------------------------------------------------------
    def create_execution(self, type_name: str, props: dict[str, Any], state: int,
                         input_artifacts: list[tuple[int, str]], contexts: list[Any],
                         name: str | None = None) -> int:
        """client.CreateExecution: a new execution with INPUT events (event-only pairs)."""
        execution = mlmd_pb.Execution(type_id=self.type_id("execution", type_name), last_known_state=state)
        if name:
            execution.name = name
        for key, value in props.items():
            self._set_prop(execution.custom_properties[key], value)
        pairs = [(None, self._event(artifact_id, INPUT, key)) for artifact_id, key in input_artifacts]
        exec_id, _, _ = self.store.put_execution(execution, pairs, contexts, reuse_context_if_already_exist=True)
        self.clock.touch(self.clock.executions, exec_id)
        self._stamp_events(exec_id, pairs)
        return int(exec_id)

    def update_execution(self, exec_id: int, state: int | None = None, props: dict[str, Any] | None = None,
                         output_artifacts: Sequence[tuple[int, str]] = (), contexts: Sequence[Any] = ()) -> None:
        """client.PrePublishExecution / PublishExecution: state, properties, OUTPUT events."""
        [execution] = self.store.get_executions_by_id([exec_id])
        if state is not None:
            execution.last_known_state = state
        for key, value in (props or {}).items():
            self._set_prop(execution.custom_properties[key], value)
        pairs = [(None, self._event(artifact_id, OUTPUT, key)) for artifact_id, key in output_artifacts]
        self.store.put_execution(execution, pairs, list(contexts), reuse_context_if_already_exist=True)
        self.clock.touch(self.clock.executions, exec_id)
        self._stamp_events(exec_id, pairs)

    def record_artifact(self, type_name: str, uri: str, metadata: dict[str, Any]) -> int:
        """client.RecordArtifact: put the artifact type and a LIVE artifact with converted metadata."""
        artifact = mlmd_pb.Artifact(type_id=self.type_id("artifact", type_name), uri=uri, state=LIVE)
        for key, value in metadata.items():
            _value(value, artifact.custom_properties[key])
        [artifact_id] = self.store.put_artifacts([artifact])
        self.clock.touch(self.clock.artifacts, artifact_id)
        return int(artifact_id)

    def find_matched_artifact(self, pipeline_ctx: Any, type_name: str, uri: str,
                              metadata: dict[str, Any]) -> int | None:
        """client.FindMatchedArtifact: an importer's reuse lookup within the pipeline context."""
        probe = mlmd_pb.Artifact()
        for key, value in metadata.items():
            _value(value, probe.custom_properties[key])
        for artifact in self.store.get_artifacts_by_context(pipeline_ctx.id):
            if (artifact.uri == uri and artifact.type == type_name and artifact.state == LIVE
                    and dict(artifact.custom_properties) == dict(probe.custom_properties)):
                return int(artifact.id)
        return None

    def children_of(self, dag_id: int) -> list[Any]:
        """Executions whose `parent_dag_id` is `dag_id` (the filter KFP itself uses)."""
        from ml_metadata.metadata_store import ListOptions

        options = ListOptions(filter_query=f"custom_properties.parent_dag_id.int_value = {dag_id}")
        return list(self.store.get_executions(list_options=options))

    def update_dag_state(self, dag_id: int) -> None:
        """client.UpdateDAGExecutionsState (master ≥ 2.17: propagates upwards; skips the root)."""
        [dag] = self.store.get_executions_by_id([dag_id])
        props = dag.custom_properties
        if "total_dag_tasks" not in props:  # the root DAG: never updated on ≥ 2.17
            return
        expected = props["iteration_count"].int_value if "iteration_count" in props else props["total_dag_tasks"].int_value
        children = self.children_of(dag_id)
        seen = set()
        for child in children:
            key = (child.custom_properties["task_name"].string_value,
                   child.custom_properties["iteration_index"].int_value
                   if "iteration_index" in child.custom_properties else -1)
            if key in seen:  # duplicate task names after a "Retry run": the Go code errors out
                return
            seen.add(key)
        done = sum(1 for c in children if c.last_known_state in (COMPLETE, CACHED, CANCELED))
        new_state = None
        if done == expected:
            new_state = COMPLETE
        elif any(c.last_known_state == FAILED for c in children):
            new_state = FAILED
        if new_state is not None and new_state != dag.last_known_state:
            self.update_execution(dag_id, state=new_state)
        if "parent_dag_id" in props:
            self.update_dag_state(props["parent_dag_id"].int_value)

    # --- helpers ---------------------------------------------------------------------------
    def _event(self, artifact_id: int, event_type: int, key: str) -> Any:
        event = mlmd_pb.Event(artifact_id=artifact_id, type=event_type)
        event.path.steps.add().key = key
        return event

    def _stamp_events(self, exec_id: int, pairs: list[tuple[None, Any]]) -> None:
        for _, event in pairs:
            self.clock.events.append((event.artifact_id, exec_id, event.type, self.clock.now_ms))

    @staticmethod
    def _set_prop(target: Any, value: Any) -> None:
        if isinstance(value, bool):
            target.bool_value = value
        elif isinstance(value, int):
            target.int_value = value
        elif isinstance(value, float):
            target.double_value = value
        elif isinstance(value, str):
            target.string_value = value
        elif isinstance(value, dict):
            target.struct_value.SetInParent()  # an empty struct must still set the oneof
            target.struct_value.update(value)
        else:
            raise ValueError(f"unsupported property value {value!r}")


def restamp(engine: Engine, clock: Clock) -> None:
    """Replace MLMD's wall-clock stamps with the sample's virtual times (one UPDATE per table)."""
    with engine.connect() as conn:
        t = dialect_for(conn).mlmd_name

    with engine.begin() as conn:
        for table, times in ((t("Execution"), clock.executions), (t("Artifact"), clock.artifacts),
                             (t("Context"), clock.contexts)):
            if times:
                conn.execute(
                    text(f"UPDATE {table} SET create_time_since_epoch = :c, "
                         f"last_update_time_since_epoch = :u WHERE id = :i"),
                    [{"c": c, "u": u, "i": i} for i, (c, u) in times.items()],
                )
        if clock.events:
            conn.execute(
                text(f"UPDATE {t('Event')} SET milliseconds_since_epoch = :m "
                     "WHERE artifact_id = :a AND execution_id = :e AND type = :ty"),
                [{"m": m, "a": a, "e": e, "ty": ty} for a, e, ty, m in clock.events],
            )
