"""SIGKILL `migrate` at seeded random points across every phase, rerun it to completion, and compare
the KFP database with a clean migration's (issue #7: ≥ 20 points per server backend).

The points are drawn from the fault points a clean run actually passes (`MLMD2KFP_FAULT_TRACE`), so
a case always kills: schema creation, page reads, inside a batch, just before its checkpoint, just
after its commit, the global ledger, the totals, the index builds, the cutover statements and just after the swap.
"""

from __future__ import annotations

import json
import random
import signal

import pytest

from ..migrate.helpers import check_invariants, digest
from ..helpers import run_cli
from .conftest import cli_migrate

SEED = 20261127
CASES = 22
PHASES = ["schema", "read-page", "mid-batch", "before-checkpoint", "after-batch", "global-ledger", "totals",
          "indexes", "cutover", "after-cutover"]


def draw_cases(hits, seed: int = SEED, n: int = CASES) -> list[str]:
    """`n` (point, n-th pass) pairs: every phase once, the rest at random, weighted to where runs spend time."""
    rng = random.Random(seed)
    phases = [p for p in PHASES if hits.get(p)]
    cases = [f"{p}:{rng.randint(1, hits[p])}" for p in phases]
    while len(cases) < n:
        p = rng.choice(phases + ["mid-batch", "before-checkpoint", "after-batch", "read-page"])
        case = f"{p}:{rng.randint(1, hits[p])}"
        if case not in cases or len(set(cases)) >= sum(hits[x] for x in phases):
            cases.append(case)
    return cases


@pytest.mark.parametrize("case", range(CASES), ids=lambda i: f"kill{i:02d}")
def test_sigkill_at_a_seeded_point_then_rerun_equals_a_clean_migration(fault_sample, case, tmp_path):
    assert set(PHASES) <= set(fault_sample.hits), f"a phase has no fault point passed: {fault_sample.hits}"
    point = draw_cases(fault_sample.hits)[case]
    kfp = fault_sample.clone()
    killed = cli_migrate(fault_sample, kfp, env={"MLMD2KFP_FAULT_AT": point})
    assert killed.code == -signal.SIGKILL, (point, killed.code, killed.stderr[-800:])
    resumed = cli_migrate(fault_sample, kfp)
    assert resumed.code == 0, (point, resumed.stderr[-2000:])
    assert digest(kfp, tables=None, exclude_prefix="mlmd2kfp_") == fault_sample.clean_digest, point
    check_invariants(kfp)
    assert run_cli("schema", "check", "--kfp-url", kfp).code == 0, point  # the deferred indexes were built
    if case % 4:
        return
    again = cli_migrate(fault_sample, kfp, "--report", str(tmp_path / "again.json"))
    assert again.code == 0, again.stderr[-1500:]
    assert json.loads((tmp_path / "again.json").read_text())["runs_read"] == 0  # a third run has nothing to do


def test_the_draw_is_reproducible_and_covers_every_phase(fault_sample):
    first, second = draw_cases(fault_sample.hits), draw_cases(fault_sample.hits)
    assert first == second and len(first) == CASES
    assert {c.split(":")[0] for c in first} == set(PHASES)
