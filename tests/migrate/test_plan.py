"""`plan` on every backend: counts against the sample's known composition, strict mode, reports,
a SELECT-only database user, streaming memory, and the MLMD schema-version gate."""

from __future__ import annotations

import gc

import json
import os
import tracemalloc
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.plan import build_plan  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from tests.helpers import execute, run_cli  # noqa: E402
from tests.sample.test_determinism import digest  # noqa: E402

# The default sample, counted by hand from the compiled IR (mlmd2kfp/sample/pipelines/INDEX.md):
# tasks: training-pipeline runs 3 each (ROOT, preprocess, train) × 4 migrated runs (training, cache-hit,
# spec-in-pipeline-version, in-flight) = 12; control-flow 30 (ROOT; flip-coin, condition-branches-6 and its
# three branches, print-heads; for-loop-1 with 3 × (process-item, condition-2, for-loop-4, 2 combine) and 2
# handle-large-item; aggregate, for-loop-5, report-pipeline, make-report, consume-report); failed 4 (ROOT,
# exit-handler-1, fail-op, exit-op); retried 5 (+ print-op, fail-op attempts merged); importer runs 6 each;
# loop-io 18 (ROOT; for-loop-1 with 2 × (make-shard, importer, check-shard); aggregate-shards; for-loop-2 with
# 2 for-loop-4, each with 2 make-cell; collect-cells; keyed-step) and its in-flight run 17 (no keyed-step).
EXPECTED_TASKS = 12 + 30 + 4 + 5 + 6 + 6 + 18 + 17
# mapping version 3: the nested for-loop-4 tasks are DAG (3 in control-flow, 2 in each loop-io run)
EXPECTED_TASK_TYPES = {"ROOT": 11, "RUNTIME": 33 + 11 + 10, "IMPORTER": 6 + 2 + 2, "LOOP": 2 + 2 + 2,
                       "CONDITION_BRANCH": 6, "DAG": 4 + 3 + 2 + 2}
# artifacts, one row per (MLMD artifact, namespace), metrics split into 5 rows:
# team-a: training 10 (dataset, 2 logs, model, classification, 5 metrics; the cache hit reuses them) +
#         control-flow 20 (13 logs... see test_golden) = 30; kubeflow-user-example-com: spec-in-version 10 +
#         importer 5 + importer-reuse 3 (iris and wine reused) = 18, + the failed `train` attempt's logs = 19;
#         team-b: in-flight 2 + failed 3 (its exit task was stopped before its logs) + retried 6 = 11;
#         loop-io (team-a) 19: 2 × (shard, logs, imported model, check logs), aggregate logs, 4 × (cell, logs),
#         collect and keyed logs; loop-io-in-flight (team-b) 17 (no keyed-step, collect-cells never logged).
EXPECTED_ARTIFACTS = {"team-a": 30 + 19, "kubeflow-user-example-com": 19, "team-b": 11 + 17}
# links: training-like runs 11 each (3; spec-in-version + 1: the failed attempt's logs; its second
# INPUT event of the dataset is merged), in-flight 3, control-flow 28 (4 of them derived), failed 3,
# retried 6, importer runs 8 each; loop-io 43 (12 derived: for-loop-1 4, the for-loop-4 tasks 4, for-loop-2 4),
# its in-flight run 41 (no keyed-step logs, no collect-cells logs).
EXPECTED_LINKS = 11 * 3 + 1 + 3 + 28 + 3 + 6 + 8 * 2 + 43 + 41
EXPECTED_LEDGER = {"flattened-iteration": 9 + 8 + 8,  # loop-io runs: 2 + 2 + 2 × 2 iteration DAGs each
                   "superseded-attempt": 2, "merged-link": 1, "split": 3,
                   "dag-driver-failure-not-in-mlmd": 1,  # the one run-less note (mapping.md §3, v3)
                   "orphan-run": 1 + 3 + 7,          # the run, its 3 executions, its 7 events
                   "orphan-artifact": 3 + 6,         # in-flight's unpublished outputs, the orphan run's artifacts
                   "unsupported-v1": 1 + 2 + 2}      # the KfpRun context, its 2 executions, 2 artifacts


@pytest.fixture(scope="module")
def samples(module_databases):
    out = {}
    for mode in ("multi", "single"):
        m, k = module_databases.new("m"), module_databases.new("k")
        write_sample(m, k, seed=2, single_user=mode == "single")
        out[mode] = (m, k)
    return out


@pytest.mark.parametrize("mode", ["multi", "single"])
def test_plan_counts_match_the_sample(samples, mode, tmp_path):
    mlmd_url, kfp_url = samples[mode]
    before = digest(mlmd_url), digest(kfp_url)
    result = run_cli("plan", "--mlmd-url", mlmd_url, "--kfp-url", kfp_url, "--json", str(tmp_path / "p.json"),
                     "--markdown", str(tmp_path / "p.md"))
    assert result.code == 0, result.stderr
    assert (digest(mlmd_url), digest(kfp_url)) == before, "plan must write nothing"
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["mode"] == ("multi-user" if mode == "multi" else "single-user") and report["mode_detected"]
    assert report["runs_total"] == 12 and report["runs_migrated"] == 11 and report["runs_skipped"] == {"orphan-run": 1}
    assert report["target_rows"] == {"tasks": EXPECTED_TASKS, "artifacts": 96, "artifact_tasks": EXPECTED_LINKS}
    assert report["tasks_by_type"] == EXPECTED_TASK_TYPES
    assert report["derived_links"] == 4 + 12 + 12
    if mode == "multi":
        assert report["artifacts_by_namespace"] == EXPECTED_ARTIFACTS
        assert report["tasks_by_namespace"] == {"team-a": 3 + 3 + 30 + 18, "team-b": 3 + 4 + 5 + 17,
                                                "kubeflow-user-example-com": 3 + 6 + 6}
    else:
        assert report["artifacts_by_namespace"] == {"": 96} and report["tasks_by_namespace"] == {"": EXPECTED_TASKS}
    assert {r: v["count"] for r, v in report["ledger"].items()} == EXPECTED_LEDGER
    assert len(report["orphan_runs"]) == 1
    assert report["old_tasks"]["cache_rows"] == 47 and report["old_tasks"]["node_rows"] > 47
    assert report["target_schema"] == "old form"
    assert report["executions_by_type_state"]["system.DAGExecution CANCELED"] == 3
    md = (tmp_path / "p.md").read_text()
    assert "| tasks | %d |" % EXPECTED_TASKS in md and "orphan-run" in md
    assert "tasks" in result.stdout and "ledger" in result.stdout


def test_plan_strict_exits_1_on_the_sample(samples):
    mlmd_url, kfp_url = samples["multi"]
    result = run_cli("plan", "--mlmd-url", mlmd_url, "--kfp-url", kfp_url, "--strict")
    assert result.code == 1
    assert "--strict" in result.stderr and "would be skipped" in result.stderr


def test_plan_mode_option_overrides_detection(samples, tmp_path):
    mlmd_url, kfp_url = samples["single"]
    result = run_cli("plan", "--mlmd-url", mlmd_url, "--kfp-url", kfp_url, "--multi-user",
                     "--json", str(tmp_path / "p.json"))
    assert result.code == 0
    report = json.loads((tmp_path / "p.json").read_text())
    # single-user runs have empty namespaces: in multi-user mode every run is a namespace mismatch
    assert report["runs_skipped"] == {"orphan-run": 1, "namespace-mismatch": 11}


def _read_only_url(backend: str, url: str) -> str:
    """A URL for a new user that may only SELECT from the database of `url`."""
    parsed = make_url(url)
    user, password = f"ro_{uuid.uuid4().hex[:8]}", "R3ad-0nly-pass"
    if backend == "mariadb":
        execute(url, f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{password}'",
                f"CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'",
                f"GRANT SELECT ON `{parsed.database}`.* TO '{user}'@'127.0.0.1'",
                f"GRANT SELECT ON `{parsed.database}`.* TO '{user}'@'localhost'")
    else:
        execute(url, f"CREATE ROLE {user} LOGIN PASSWORD '{password}'",
                f'GRANT CONNECT ON DATABASE "{parsed.database}" TO {user}',
                f"GRANT USAGE ON SCHEMA public TO {user}", f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user}")
    return parsed.set(username=user, password=password).render_as_string(hide_password=False)


def test_plan_reads_through_a_select_only_user(samples, module_databases):
    if module_databases.backend == "sqlite":
        pytest.skip("SQLite has no database users")
    mlmd_url, kfp_url = samples["multi"]
    ro_mlmd = _read_only_url(module_databases.backend, mlmd_url)
    ro_kfp = _read_only_url(module_databases.backend, kfp_url)
    engine = create_engine(ro_mlmd)
    with pytest.raises(DBAPIError):  # the user really cannot write
        with engine.begin() as conn:
            table = "execution" if module_databases.backend == "postgresql" else "Execution"
            conn.execute(text(f"UPDATE {table} SET last_known_state = 3 WHERE id = 1"))
    engine.dispose()
    before = digest(mlmd_url)
    result = run_cli("plan", "--mlmd-url", ro_mlmd, "--kfp-url", ro_kfp)
    assert result.code == 0, result.stderr
    assert "runs to migrate" in result.stdout
    assert digest(mlmd_url) == before


def test_plan_memory_does_not_grow_with_runs(tmp_path):
    """Peak traced memory of plan at 1x and 10x the sample, same page size: streaming keeps it flat."""
    peaks = {}
    for scale in (1, 10):
        m, k = f"sqlite:///{tmp_path}/m{scale}.sqlite", f"sqlite:///{tmp_path}/k{scale}.sqlite"
        write_sample(m, k, runs=13 * scale, seed=4)
        build_plan(m, k, page_runs=5)  # warm caches (spec parsing, SQLAlchemy compiled statements)
        gc.collect()  # garbage left by the warm-up would count towards the peak
        tracemalloc.start()
        report = build_plan(m, k, page_runs=5)
        peaks[scale] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert report.runs_total == 12 * scale  # the v1 run of each repetition is no run
    # 10x the runs may not cost 10x the memory; 256 KiB absorb the allocator's and GC's jitter at this
    # ~2 MB scale (seen: 1.22x locally, 1.34x on CI), while loading all runs at once would add megabytes
    assert peaks[10] <= peaks[1] * 1.3 + 256 * 1024, peaks


def test_plan_refuses_another_mlmd_schema_version(tmp_path):
    m, k = f"sqlite:///{tmp_path}/m.sqlite", f"sqlite:///{tmp_path}/k.sqlite"
    write_sample(m, k, runs=2)
    execute(m, "UPDATE MLMDEnv SET schema_version = 9")
    result = run_cli("plan", "--mlmd-url", m, "--kfp-url", k)
    assert result.code == 3
    assert "MLMD schema version 9 is not supported" in result.stderr
    assert os.path.exists(f"{tmp_path}/m.sqlite")
