"""A sample per backend (multi-user and single-user), read back through ml-metadata's API."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.engine import make_url

pytest.importorskip("ml_metadata")

from google.protobuf.json_format import MessageToDict  # noqa: E402

from mlmd2kfp.sample import SampleReport, write_sample  # noqa: E402
from mlmd2kfp.source.mlmd_api import open_read_only  # noqa: E402


def open_reader(url: str) -> Any:
    """A read-only ml-metadata store on `url` (no schema creation, no upgrade)."""
    return open_read_only(make_url(url))


def value(v: Any) -> Any:
    """Decode one MLMD `Value` as the API returns it (structs already decoded by the library)."""
    which = v.WhichOneof("value")
    if which == "struct_value":
        return MessageToDict(v.struct_value)
    return getattr(v, which) if which else None


def props(node: Any) -> dict[str, Any]:
    """Custom properties of an execution, artifact or context, decoded."""
    return {k: value(v) for k, v in node.custom_properties.items()}


@dataclass
class RunView:
    """One run read back through the ml-metadata API."""

    context: Any
    executions: list[Any]
    events: list[Any]
    store: Any

    def by_task(self, task_name: str) -> list[Any]:
        """Executions with this `task_name`, in id order."""
        return sorted((e for e in self.executions if props(e).get("task_name") == task_name), key=lambda e: e.id)

    def one(self, task_name: str) -> Any:
        [execution] = self.by_task(task_name)
        return execution

    def children(self, parent: Any) -> list[Any]:
        return sorted((e for e in self.executions if props(e).get("parent_dag_id") == parent.id), key=lambda e: e.id)

    def root(self) -> Any:
        [root] = [e for e in self.executions if "parent_dag_id" not in props(e)]
        return root

    def events_of(self, execution: Any, event_type: int) -> list[Any]:
        return [e for e in self.events if e.execution_id == execution.id and e.type == event_type]

    def artifacts(self, ids: list[int]) -> list[Any]:
        return list(self.store.get_artifacts_by_id(ids))


@dataclass
class SampleDb:
    """A written sample and a reader on it."""

    backend: str
    mlmd_url: str
    kfp_url: str
    report: SampleReport
    store: Any

    def run(self, scenario: str, index: int = 0) -> RunView:
        record = self.report.runs_of(scenario)[index]
        context = self.store.get_context_by_type_and_name("system.PipelineRun", record.run_id)
        assert context is not None, f"no run context for {scenario}"
        executions = list(self.store.get_executions_by_context(context.id))
        events = list(self.store.get_events_by_execution_ids([e.id for e in executions]))
        return RunView(context, executions, events, self.store)


def _write(module_databases: Any, single_user: bool) -> SampleDb:
    mlmd_url, kfp_url = module_databases.new("mlmd"), module_databases.new("kfp")
    report = write_sample(mlmd_url, kfp_url, seed=7, single_user=single_user)
    return SampleDb(module_databases.backend, mlmd_url, kfp_url, report, open_reader(mlmd_url))


@pytest.fixture(scope="module")
def sample(module_databases: Any) -> SampleDb:
    """The default (multi-user) sample on one backend."""
    return _write(module_databases, single_user=False)


@pytest.fixture(scope="module")
def single_user_sample(module_databases: Any) -> SampleDb:
    """The single-user sample on one backend."""
    return _write(module_databases, single_user=True)


def group_by(items: list[Any], key: Any) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out
