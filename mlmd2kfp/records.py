"""Plain records that cross module boundaries: MLMD run bundles in, KFP target rows out.

The reader fills the source records, the mappers turn one `RunBundle` into `RunRows`.
Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# MLMD enums (mlmd-source-model.md §1.4)
EXEC_NEW, EXEC_RUNNING, EXEC_COMPLETE, EXEC_FAILED, EXEC_CACHED, EXEC_CANCELED = 1, 2, 3, 4, 5, 6
EVENT_INPUT, EVENT_OUTPUT = 3, 4


def _reduce(self: Any) -> tuple[Any, tuple[Any, ...]]:
    """Pickle as the constructor's arguments. The rows cross to the writer's process (mapping.md W12);
    frozen slotted dataclasses otherwise unpickle field by field through `dataclasses.fields`, which
    cost the writer more than writing them."""
    return type(self), tuple([getattr(self, name) for name in self.__slots__])


@dataclass(frozen=True, slots=True)
class MlmdExecution:
    """One MLMD execution with its decoded custom properties."""

    id: int
    type_name: str
    state: int | None
    name: str | None
    create_ms: int
    update_ms: int
    props: dict[str, Any]


@dataclass(frozen=True, slots=True)
class MlmdArtifact:
    """One MLMD artifact with its decoded custom properties."""

    id: int
    type_name: str
    uri: str | None
    state: int | None
    create_ms: int
    update_ms: int
    props: dict[str, Any]
    first_output_key: str | None = None
    """Path key of the artifact's earliest OUTPUT event in the whole store."""
    first_output_type: str | None = None
    """Execution type of that event's execution (container or importer)."""


@dataclass(frozen=True, slots=True)
class MlmdEvent:
    """One MLMD event with its (single-step) path key."""

    id: int
    artifact_id: int
    execution_id: int
    type: int
    key: str | None
    ms: int


@dataclass(frozen=True, slots=True)
class RunRecord:
    """The KFP `run_details` row of a run, with its experiment's namespace."""

    uuid: str
    display_name: str
    name: str
    namespace: str
    experiment_uuid: str
    experiment_namespace: str | None
    state: str | None
    conditions: str
    created_at: int
    finished_at: int
    pipeline_version_id: str | None


@dataclass(slots=True)
class RunBundle:
    """Everything one `system.PipelineRun` context needs to be mapped (mapping.md §1)."""

    context_id: int
    run_id: str
    context_props: dict[str, Any]
    pipeline_name: str | None
    executions: list[MlmdExecution]
    events: list[MlmdEvent]
    artifacts: dict[int, MlmdArtifact]
    run: RunRecord | None
    spec: dict[str, Any] | None
    spec_source: str | None
    """`manifest`, `pipeline_version` or None (no spec could be loaded)."""
    spec_error: str | None = None
    platform_spec: dict[str, Any] | None = None


# --- target rows ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TaskRow:
    """One row of the new `tasks` table (kfp-native-schema.md §1.3); JSON columns as canonical text."""

    __reduce__ = _reduce

    uuid: str
    namespace: str
    run_uuid: str
    pods: str
    created_at: int
    started_at: int
    finished_at: int
    fingerprint: str
    name: str
    display_name: str
    parent_task_uuid: str | None
    state: int
    status_metadata: str
    state_history: str
    input_parameters: str
    output_parameters: str
    type: int
    type_attrs: str
    scope_path: str
    logical_key: str
    mlmd_execution_ids: tuple[int, ...] = ()
    """MLMD executions merged into this task (not a column; for the ledger and verify)."""


@dataclass(frozen=True, slots=True)
class ArtifactRow:
    """One row of `artifacts` (§1.1)."""

    __reduce__ = _reduce

    uuid: str
    namespace: str
    type: int
    uri: str | None
    uri_hash: str
    name: str
    description: str
    created_at: int
    last_update: int
    metadata: str
    number_value: float | None
    identity_key: str | None
    mlmd_artifact_id: int = 0
    """Not a column."""


@dataclass(frozen=True, slots=True)
class LinkRow:
    """One row of `artifact_tasks` (§1.2)."""

    __reduce__ = _reduce

    uuid: str
    artifact_id: str
    task_id: str
    type: int
    iteration: int
    run_uuid: str
    producer: str
    artifact_key: str
    mlmd_event_id: int | None = None
    """The MLMD event this link comes from; None for propagated (derived) links."""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """An MLMD row that did not become exactly one target row, and why (mapping.md §8)."""

    __reduce__ = _reduce

    run_id: str
    entity: str
    """`run`, `execution`, `artifact`, `event`, `context`."""
    mlmd_id: int
    reason: str
    detail: str = ""


@dataclass
class RunRows:
    """The mapper's output for one run bundle."""

    run_id: str
    tasks: list[TaskRow] = field(default_factory=list)
    artifacts: list[ArtifactRow] = field(default_factory=list)
    links: list[LinkRow] = field(default_factory=list)
    ledger: list[LedgerEntry] = field(default_factory=list)
    skipped: str | None = None
    """The ledger reason when the whole run is skipped."""
    namespace: str | None = None
    warnings: list[str] = field(default_factory=list)
