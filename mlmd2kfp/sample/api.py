"""`write_sample`: the `mlmd2kfp sample` command's library function."""

from __future__ import annotations

from collections.abc import Callable

import random
import uuid
from dataclasses import dataclass, field

from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Engine

from ..db import make_engine, parse_url
from ..errors import ConfigError, UsageError
from .kfp_db import RunRecord, create_legacy_tables, normalise_spec, write_kfp_rows
from ..source.mlmd_api import open_store, require_mlmd
from .mlmd_client import Clock, KfpMetadataClient, restamp
from .runtime import CacheEntry, RunPlan, RunSimulator
from .scenarios import (MULTI_USER_NAMESPACES, SCENARIOS_PER_REPETITION, SINGLE_USER_POD_NAMESPACE, Scenario,
                        scenarios_for)
from .spec import PIPELINE_NAMES, load_pipeline
from .v1 import write_v1_run

BASE_TIME_S = 1_767_225_600  # 2026-01-01T00:00:00Z: sample runs start here, an hour apart


@dataclass
class SampleReport:
    """What `write_sample` wrote."""

    runs: list[RunRecord]
    kfp_rows: dict[str, int]
    single_user: bool
    seed: int
    mlmd_counts: dict[str, int] = field(default_factory=dict)

    def runs_of(self, scenario: str) -> list[RunRecord]:
        """The runs of one scenario, in write order."""
        return [r for r in self.runs if r.scenario == scenario]


def write_sample(mlmd_url: str, kfp_url: str, *, runs: int | None = None, seed: int = 0,
                 single_user: bool = False, no_spec: bool = False,
                 on_progress: Callable[[int, int], None] | None = None) -> SampleReport:
    """Write the sample: MLMD through `ml-metadata`, and the matching pre-upgrade KFP database.

    Args:
        mlmd_url: SQLAlchemy URL of the MLMD database (created if empty; must hold no runs).
        kfp_url: SQLAlchemy URL of the KFP database (must hold no `run_details` rows).
        runs: number of runs; default one of each scenario. More repeats the shapes with fresh ids.
        seed: makes the output deterministic.
        single_user: write a single-user installation (every KFP namespace empty).
        no_spec: the same runs with no pipeline spec anywhere (`PipelineSpecManifest` NULL, no pipeline
            version), as after the spec was lost: every run is mapped with mapping.md's fallbacks.
        on_progress: called with (runs written, runs in all) after each run.

    Raises:
        ConfigError: a database already holds runs, or `runs` is not positive.
        MissingDependencyError: `ml-metadata` is not installed.
    """
    require_mlmd()
    total = SCENARIOS_PER_REPETITION if runs is None else runs
    if total < 1:
        raise UsageError("--runs must be at least 1")
    m_url, k_url = parse_url(mlmd_url, "MLMD"), parse_url(kfp_url, "KFP")
    kfp_engine = make_engine(k_url, "KFP")
    _require_empty_kfp(kfp_engine, k_url)
    # Connect with SQLAlchemy first: its errors name the database, host and cause in one line.
    mlmd_engine = make_engine(m_url, "MLMD")
    store = open_store(m_url)
    client = KfpMetadataClient(store, Clock(BASE_TIME_S * 1000))
    if store.get_contexts():
        raise ConfigError(f"the MLMD database at {m_url.render_as_string()} already holds contexts; "
                          "`sample` writes only into an empty database")
    rng = random.Random(seed)
    records = _write_runs(client, rng, total, single_user, on_progress)
    restamp(mlmd_engine, client.clock)
    namespaces = [""] if single_user else list(MULTI_USER_NAMESPACES)
    specs = {name: normalise_spec(load_pipeline(name).text) for name in PIPELINE_NAMES}
    with kfp_engine.begin() as conn:
        create_legacy_tables(conn)
        kfp_rows = write_kfp_rows(conn, records, specs, rng, namespaces, BASE_TIME_S, no_spec=no_spec)
    kfp_engine.dispose()
    mlmd_engine.dispose()
    return SampleReport(records, kfp_rows, single_user, seed)


def _require_empty_kfp(kfp_engine: Engine, k_url: URL) -> None:
    """Refuse a KFP database that already holds `run_details` rows."""
    with kfp_engine.connect() as conn:
        if "run_details" in inspect(conn).get_table_names():
            if conn.execute(text("SELECT COUNT(*) FROM run_details")).scalar():
                raise ConfigError(f"the KFP database at {k_url.render_as_string()} already holds runs; "
                                  "`sample` writes only into an empty database")


def _write_runs(client: KfpMetadataClient, rng: random.Random, total: int, single_user: bool,
                on_progress: Callable[[int, int], None] | None) -> list[RunRecord]:
    """Write `total` runs into MLMD, cycling through the scenarios an hour apart; returns their records."""
    cache: dict[tuple[str, str, str], CacheEntry] = {}
    records: list[RunRecord] = []
    for index in range(total):
        rep, pos = divmod(index, SCENARIOS_PER_REPETITION)
        scenario = scenarios_for(rep)[pos]
        start_ms = (BASE_TIME_S + index * 3600) * 1000
        client.clock.now_ms = max(client.clock.now_ms, start_ms)
        run_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if scenario.v1:
            records.append(_write_v1(client, rng, scenario, run_id, start_ms, single_user))
        else:
            records.append(_write_v2(client, rng, cache, scenario, run_id, start_ms, single_user))
        if on_progress:  # after every run, a v1 run too (the count reaches the total whatever the last run is)
            on_progress(index + 1, total)
    return records


def _namespaces(scenario: Scenario, single_user: bool) -> tuple[str, str]:
    """The run's KFP namespace and the namespace its pods run in."""
    if single_user:
        return "", SINGLE_USER_POD_NAMESPACE
    return scenario.namespace, scenario.namespace


def _write_v1(client: KfpMetadataClient, rng: random.Random, scenario: Scenario, run_id: str, start_ms: int,
              single_user: bool) -> RunRecord:
    """Write one succeeded v1 run (`KfpRun` context) and return its record."""
    namespace, pod_ns = _namespaces(scenario, single_user)
    workflow = f"v1-pipeline-{rng.randint(10000, 99999)}"
    write_v1_run(client, rng, workflow)
    return RunRecord(scenario.name, run_id, namespace, pod_ns, scenario.pipeline, workflow,
                     "SUCCEEDED", start_ms // 1000, client.clock.now_ms // 1000, None)


def _write_v2(client: KfpMetadataClient, rng: random.Random, cache: dict[tuple[str, str, str], CacheEntry],
              scenario: Scenario, run_id: str, start_ms: int, single_user: bool) -> RunRecord:
    """Simulate one v2 run of the scenario's pipeline and return its record."""
    namespace, pod_ns = _namespaces(scenario, single_user)
    plan = RunPlan(run_id, scenario.pipeline, pod_ns, dict(scenario.params), dict(scenario.outputs),
                   scenario.fail, scenario.stop_at, scenario.stopped_as, scenario.retry_run,
                   use_cache=scenario.cache_source is not None, start_ms=start_ms, mlflow=scenario.mlflow)
    result = RunSimulator(client, load_pipeline(scenario.pipeline), plan, rng, cache).run()
    return RunRecord(scenario.name, run_id, namespace, pod_ns, scenario.pipeline,
                     result.workflow_name, result.state, start_ms // 1000,
                     result.finished_ms // 1000, result, params=plan.params,
                     spec_in_version_only=scenario.spec_in_version_only, orphan=scenario.orphan)
