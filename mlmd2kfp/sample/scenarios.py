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
    stopped_as: str = "RUNNING"
    """The run's state in `run_details` when it stops at `stop_at` (FAILED: stopped, never finished)."""
    retry_run: bool = False
    spec_in_version_only: bool = False
    """`run_details.PipelineSpecManifest` is empty; the spec is in `pipeline_versions` only."""
    orphan: bool = False
    """The run's `run_details` row is gone (run deleted), its MLMD rows remain."""
    v1: bool = False
    """A KFP v1 run written by the metadata-writer (`KfpRun` context)."""
    cache_source: str | None = None
    """Name of the scenario whose outputs this run reuses through cache hits."""
    mlflow: bool = False
    """The MLflow task plugin ran: `plugins.mlflow.run_id` on the root DAG, every DAG that is not an iteration
    and every container (mlmd-source-model.md §3: `plugins.*`, KFP ≥ 2.17)."""


def _p(rows: int, rep: int) -> dict[str, Any]:
    # Distinct parameters per scenario and repetition keep cache hits where the scenario wants them.
    return {"message": f"hello-{rep}", "rows": float(rows)}


def importer_uri(rep: int) -> str:
    """The model URI the importer runs of repetition `rep` import: percent-escapes (Go's `url.Parse`
    decodes them: name `model final.joblib`) in even repetitions, a plain path in odd ones. The
    pipeline's other importers take a trailing slash and a bucket without a path (docs/mapping.md M18)."""
    if rep % 2 == 0:
        return f"gs://ml-models/iris%20v{rep + 1}/model%20final.joblib"
    return f"gs://ml-models/iris/v{rep + 1}/model.joblib"


def scenarios_for(rep: int) -> list[Scenario]:
    """The scenario runs of repetition `rep` (0-based), in the order they are written."""
    a, b, c = MULTI_USER_NAMESPACES
    # even repetitions: the failed run is stopped inside its exit handler (never finished in MLMD)
    failed: dict[str, Any] = {"stop_at": "exit-op", "stopped_as": "FAILED"} if rep % 2 == 0 else {}
    return [
        Scenario("training", "training-pipeline", a, _p(100, rep)),
        Scenario("cache-hit", "training-pipeline", a, _p(100, rep), cache_source="training"),
        # `train` fails, then the run is retried: two attempts with the same INPUT event (the dataset)
        Scenario("spec-in-pipeline-version", "training-pipeline", c, _p(250, rep), spec_in_version_only=True,
                 fail=frozenset({"train"}), retry_run=True),
        Scenario("in-flight", "training-pipeline", b, _p(300, rep), stop_at="train"),
        Scenario("control-flow", "control-flow-pipeline", a, {"message": f"nested-{rep}"},
                 outputs={"flip-coin": "heads"}),
        Scenario("failed", "exit-handler-pipeline", b, {"message": f"fail-{rep}"}, fail=frozenset({"fail-op"}),
                 **failed),
        Scenario("retried", "exit-handler-pipeline", b, {"message": f"retry-{rep}"},
                 fail=frozenset({"fail-op"}), retry_run=True),
        Scenario("importer", "importer-pipeline", c, {"model_uri": importer_uri(rep)}),
        Scenario("importer-reuse", "importer-pipeline", c, {"model_uri": importer_uri(rep)}),
        Scenario("orphan", "training-pipeline", a, _p(400, rep), orphan=True),
        # mapping version 3's shapes: outputs inside loop bodies read by siblings and by collected consumers,
        # nested loops, a custom cache key (a cache hit from the second repetition on)
        Scenario("loop-io", "loop-io-pipeline", a, {"message": "loop-io"}, mlflow=True),
        # stopped while `collect-cells` runs, after `aggregate-shards` failed: ROOT has a FAILED and a RUNNING child
        Scenario("loop-io-in-flight", "loop-io-pipeline", b, {"message": f"in-flight-{rep}"},
                 fail=frozenset({"aggregate-shards"}), stop_at="collect-cells"),
        Scenario("v1", "v1-pipeline", b, v1=True),
    ]


SCENARIOS_PER_REPETITION = len(scenarios_for(0))
