"""Database sessions ended by the server, stop requests inside a batch, and two migrators at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ..helpers import run_cli
from ..migrate.helpers import check_invariants, digest, rows
from .conftest import BATCH_ROWS, cli_migrate


def _clean(fault_sample, kfp):
    assert digest(kfp, tables=None, exclude_prefix="mlmd2kfp_") == fault_sample.clean_digest
    check_invariants(kfp)


def test_session_killed_mid_batch_is_retried_and_the_result_is_clean(fault_sample, tmp_path):
    kfp = fault_sample.clone()
    report = tmp_path / "report.json"
    result = cli_migrate(fault_sample, kfp, "--report", str(report),
                         env={"MLMD2KFP_FAULT_AT": "mid-batch:3", "MLMD2KFP_FAULT_ACTION": "drop-connection"})
    assert result.code == 0, result.stderr[-1500:]
    assert "transient database error" in result.stderr and "retrying the batch" in result.stderr
    assert json.loads(report.read_text())["retries"] == 1
    _clean(fault_sample, kfp)


def test_session_killed_on_every_attempt_fails_cleanly_with_the_state_recorded(fault_sample):
    kfp = fault_sample.clone()
    result = cli_migrate(fault_sample, kfp,
                         env={"MLMD2KFP_FAULT_AT": "before-checkpoint:2+", "MLMD2KFP_FAULT_ACTION": "drop-connection"})
    assert result.code == 3, result.stderr[-1500:]
    assert "failed and was rolled back whole" in result.stderr and "rerun `mlmd2kfp migrate` to resume" in result.stderr
    state = rows(kfp, "SELECT status, last_error, runs_migrated FROM mlmd2kfp_state")[0]
    assert state["status"] == "failed" and "rolled back whole" in state["last_error"]
    # exactly the first batch is committed: its runs and no row of the failed one
    runs = rows(kfp, "SELECT COUNT(*) AS n FROM mlmd2kfp_runs")[0]["n"]
    assert runs == state["runs_migrated"] + rows(kfp, "SELECT runs_skipped AS n FROM mlmd2kfp_state")[0]["n"] > 0
    tasks_runs = rows(kfp, 'SELECT COUNT(DISTINCT "RunUUID") AS n FROM tasks_migration_tmp')[0]["n"]
    assert tasks_runs <= runs
    status = run_cli("status", "--kfp-url", kfp)
    assert status.code == 0 and "failed" in status.stdout
    assert cli_migrate(fault_sample, kfp).code == 0
    _clean(fault_sample, kfp)


def test_sigterm_inside_a_batch_commits_it_exits_130_and_resumes(fault_sample):
    kfp = fault_sample.clone()
    result = cli_migrate(fault_sample, kfp, env={"MLMD2KFP_FAULT_AT": "mid-batch:2", "MLMD2KFP_FAULT_ACTION": "sigterm"})
    assert result.code == 130, result.stderr[-1500:]
    assert "finishing the current batch" in result.stderr and "resume" in result.stderr
    state = rows(kfp, "SELECT status, last_context_id FROM mlmd2kfp_state")[0]
    assert state["status"] == "interrupted" and state["last_context_id"] > 0
    # the batch that was being written when the signal came is committed whole
    written = rows(kfp, "SELECT COUNT(*) AS n FROM mlmd2kfp_runs")[0]["n"]
    assert written >= 2
    assert cli_migrate(fault_sample, kfp).code == 0
    _clean(fault_sample, kfp)


def test_two_migrators_started_together_exactly_one_writes(fault_sample):
    kfp = fault_sample.clone()
    command = [sys.executable, "-m", "mlmd2kfp", "migrate", "--mlmd-url", fault_sample.mlmd, "--kfp-url", kfp,
               "--yes", "--batch-rows", BATCH_ROWS, "--max-rows-per-second", "400"]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
             for _ in range(2)]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        outcomes.append((proc.returncode, err))
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 3], outcomes
    loser = next(err for code, err in outcomes if code == 3)
    assert "already running" in loser
    _clean(fault_sample, kfp)
    assert rows(kfp, "SELECT pass_number FROM mlmd2kfp_state")[0]["pass_number"] == 1  # one pass, by one process
