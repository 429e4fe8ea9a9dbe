"""Reading compiled KFP pipeline IR (the shipped `pipelines/*.yaml`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

PIPELINE_NAMES = ("training-pipeline", "control-flow-pipeline", "exit-handler-pipeline", "importer-pipeline",
                  "loop-io-pipeline")


@dataclass(frozen=True)
class PipelineSpec:
    """One compiled pipeline: its IR as a dict and the raw YAML text as shipped."""

    name: str
    ir: dict[str, Any]
    text: str
    platform: dict[str, Any] | None

    def component(self, ref: str) -> dict[str, Any]:
        """The component spec named `ref` (`root` for the pipeline's root DAG)."""
        component: dict[str, Any] = self.ir["root"] if ref == "root" else self.ir["components"][ref]
        return component

    def executor(self, component: dict[str, Any]) -> dict[str, Any] | None:
        """The deploymentSpec executor of a component, or None for a DAG component."""
        label = component.get("executorLabel")
        return self.ir["deploymentSpec"]["executors"][label] if label else None

    def kind(self, component: dict[str, Any]) -> str:
        """`dag`, `container` or `importer`."""
        if "dag" in component:
            return "dag"
        executor = self.executor(component) or {}
        return "importer" if "importer" in executor else "container"


@cache
def load_pipeline(name: str) -> PipelineSpec:
    """Load a shipped pipeline by its `pipelineInfo.name`."""
    text = resources.files(__package__).joinpath("pipelines", f"{name}.yaml").read_text("utf-8")
    docs = list(yaml.safe_load_all(text))
    return PipelineSpec(name, docs[0], text, docs[1] if len(docs) > 1 else None)


def ordered_tasks(dag: dict[str, Any]) -> list[str]:
    """Task keys of a DAG in a deterministic dependency order (Kahn, alphabetical ties)."""
    tasks: dict[str, Any] = dag.get("tasks", {})
    deps = {k: set(t.get("dependentTasks", [])) & tasks.keys() for k, t in tasks.items()}
    for key, task in tasks.items():
        for binding in (task.get("inputs", {}).get("parameters", {}) | task.get("inputs", {}).get("artifacts", {})).values():
            for ref in ("taskOutputParameter", "taskOutputArtifact"):
                if ref in binding:
                    deps[key].add(binding[ref]["producerTask"])
            if "taskFinalStatus" in binding:
                deps[key].add(binding["taskFinalStatus"]["producerTask"])
    order: list[str] = []
    while deps:
        ready = sorted(k for k, d in deps.items() if not d - set(order))
        if not ready:
            raise ValueError(f"dependency cycle among {sorted(deps)}")
        order.append(ready[0])
        del deps[ready[0]]
    return order


def evaluate_condition(expression: str, params: dict[str, Any]) -> bool:
    """Evaluate a KFP trigger condition (the CEL subset the SDK emits) over resolved parameters."""
    py = (
        expression.replace("inputs.parameter_values", "_p")
        .replace("&&", " and ")
        .replace("||", " or ")
        .replace("!(", " not (")
    )
    return bool(eval(py, {"__builtins__": {}, "int": int, "float": float, "str": str}, {"_p": params}))  # noqa: S307
