"""The runs of the default sample: one per scenario of issue #2, repeated by `--runs N`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MULTI_USER_NAMESPACES = ("team-a", "team-b", "kubeflow-user-example-com")
SINGLE_USER_POD_NAMESPACE = "kubeflow"


@dataclass(frozen=True)
class Scenario:
    """One run shape of the sample."""

    name: str
    pipeline: str
    namespace: str
    """KFP profile namespace in a multi-user install (single-user: every namespace is empty)."""
    params: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    fail: frozenset[str] = frozenset()
    stop_at: str | None = None
    retry_run: bool = False
    spec_in_version_only: bool = False
    """`run_details.PipelineSpecManifest` is empty; the spec is in `pipeline_versions` only."""
    orphan: bool = False
    """The run's `run_details` row is gone (run deleted), its MLMD rows remain."""
    v1: bool = False
    """A KFP v1 run written by the metadata-writer (`KfpRun` context)."""
    cache_source: str | None = None
    """Name of the scenario whose outputs this run reuses through cache hits."""


def _p(rows: int, rep: int) -> dict[str, Any]:
    # Distinct parameters per scenario and repetition keep cache hits where the scenario wants them.
    return {"message": f"hello-{rep}", "rows": float(rows)}


def scenarios_for(rep: int) -> list[Scenario]:
    """The scenario runs of repetition `rep` (0-based), in the order they are written."""
    a, b, c = MULTI_USER_NAMESPACES
    return [
        Scenario("training", "training-pipeline", a, _p(100, rep)),
        Scenario("cache-hit", "training-pipeline", a, _p(100, rep), cache_source="training"),
        Scenario("spec-in-pipeline-version", "training-pipeline", c, _p(250, rep), spec_in_version_only=True),
        Scenario("in-flight", "training-pipeline", b, _p(300, rep), stop_at="train"),
        Scenario("control-flow", "control-flow-pipeline", a, {"message": f"nested-{rep}"},
                 outputs={"flip-coin": "heads"}),
        Scenario("failed", "exit-handler-pipeline", b, {"message": f"fail-{rep}"}, fail=frozenset({"fail-op"})),
        Scenario("retried", "exit-handler-pipeline", b, {"message": f"retry-{rep}"},
                 fail=frozenset({"fail-op"}), retry_run=True),
        Scenario("importer", "importer-pipeline", c, {"model_uri": f"gs://ml-models/iris/v{rep + 1}/model.joblib"}),
        Scenario("importer-reuse", "importer-pipeline", c,
                 {"model_uri": f"gs://ml-models/iris/v{rep + 1}/model.joblib"}),
        Scenario("orphan", "training-pipeline", a, _p(400, rep), orphan=True),
        Scenario("v1", "v1-pipeline", b, v1=True),
    ]


SCENARIOS_PER_REPETITION = len(scenarios_for(0))
