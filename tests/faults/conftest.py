"""The fault suite's shared set-up: one MLMD sample per server backend, a pristine KFP database to
clone for every case, and the digest of a clean migration to compare each recovered one with."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.samples import write_sample

from ..conftest import BACKENDS, DatabaseFactory
from ..helpers import run_cli
from ..migrate.helpers import digest

SERVER_BACKENDS = [b for b in BACKENDS if b != "sqlite"]
BATCH_ROWS = "40"
"""Small batches: the 22-run sample is written in ~10 of them, so kills land between and inside many."""


@dataclass
class FaultSample:
    """What every case starts from."""

    factory: DatabaseFactory
    mlmd: str
    pristine_kfp: str
    clean_digest: dict[str, str]
    pristine_digest: dict[str, str]
    hits: Counter[str]
    """How often a clean `migrate` passes each fault point (cases are drawn from these)."""

    def clone(self) -> str:
        """A fresh copy of the pristine KFP database."""
        return clone_database(self.factory, self.pristine_kfp)


def clone_database(factory: DatabaseFactory, source: str) -> str:
    """A copy of a database on the same server (`tests.samples.copy_database`)."""
    from tests.samples import copy_database

    target = factory.new("clone")
    copy_database(source, target)
    return target


def cli_migrate(sample: FaultSample, kfp: str, *extra: str, env: dict[str, str] | None = None):
    return run_cli("migrate", "--mlmd-url", sample.mlmd, "--kfp-url", kfp, "--yes", "--batch-rows", BATCH_ROWS,
                   *extra, env=env)


@pytest.fixture(scope="module", params=SERVER_BACKENDS or ["none"])
def fault_sample(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultSample]:
    backend = str(request.param)
    if backend == "none":
        pytest.skip("the fault suite runs on MariaDB and PostgreSQL (scripts/test.sh starts them)")
    tmp: Path = tmp_path_factory.mktemp(f"faults-{backend}")
    factory = DatabaseFactory(backend, tmp)
    mlmd, kfp = factory.new("fm"), factory.new("fk")
    write_sample(mlmd, kfp, runs=22, seed=6)
    pristine = digest(kfp, tables=None)
    sample = FaultSample(factory, mlmd, kfp, {}, pristine, Counter())
    clean = sample.clone()
    trace = tmp / "trace.txt"
    result = cli_migrate(sample, clean, env={"MLMD2KFP_FAULT_TRACE": str(trace)})
    assert result.code == 0, result.stderr
    sample.clean_digest = digest(clean, tables=None, exclude_prefix="mlmd2kfp_")
    sample.hits = Counter(trace.read_text().split())
    os.remove(trace)
    yield sample
    factory.drop_all()
