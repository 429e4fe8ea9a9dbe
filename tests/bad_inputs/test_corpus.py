"""The bad-input corpus (issue #7): every kind in `corpus.CASES`, on every backend that can hold it.

Each case: nothing half-written (invariants hold; a run skipped whole has no rows), every other run
migrated as in the undamaged baseline, the expected ledger entry or refusal, and `verify` passing —
it re-derives the same decisions from MLMD independently, so it agrees with the ledger.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from mlmd2kfp.migrate.runner import MigrateOptions, migrate
from tests.samples import write_sample
from mlmd2kfp.verify import VerifyOptions, run_verify

from ..conftest import BACKENDS, DatabaseFactory
from ..faults.conftest import clone_database
from ..helpers import run_cli
from ..migrate.helpers import check_invariants, digest, rows
from .corpus import CASES, Case, Db, Ledger, Migrated, Refused


@dataclass
class Base:
    backend: str
    factory: DatabaseFactory
    mlmd: str
    kfp: str
    migrated: set[str]
    ledger: Counter[tuple[str, str]]

    def copy(self) -> tuple[str, str]:
        if self.backend == "sqlite":
            out = []
            for url in (self.mlmd, self.kfp):
                target = self.factory.new("copy")
                shutil.copy(make_url(url).database, make_url(target).database)
                out.append(target)
            return out[0], out[1]
        return clone_database(self.factory, self.mlmd), clone_database(self.factory, self.kfp)


def _outcome(kfp: str) -> tuple[set[str], Counter[tuple[str, str]], dict[str, str]]:
    runs = {r["run_uuid"]: r["skipped"] for r in rows(kfp, "SELECT run_uuid, skipped FROM mlmd2kfp_runs")}
    ledger = Counter((r["run_uuid"], r["reason"]) for r in rows(kfp, "SELECT run_uuid, reason FROM mlmd2kfp_ledger"))
    return {r for r, s in runs.items() if not s}, ledger, runs


@pytest.fixture(scope="module", params=BACKENDS)
def base(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Base]:
    backend = str(request.param)
    factory = DatabaseFactory(backend, tmp_path_factory.mktemp(f"bad-{backend}"))
    mlmd, kfp = factory.new("bm"), factory.new("bk")
    write_sample(mlmd, kfp, runs=11, seed=7)
    b = Base(backend, factory, mlmd, kfp, set(), Counter())
    m2, k2 = b.copy()
    migrate(m2, k2, MigrateOptions())
    b.migrated, b.ledger, _ = _outcome(k2)
    assert len(b.migrated) == 10  # the first 11 scenarios (through `loop-io`): the orphan run is skipped
    yield b
    factory.drop_all()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input(base: Base, case: Case) -> None:
    if base.backend not in case.backends:
        pytest.skip(case.why)
    mlmd, kfp = base.copy()
    db = Db(base.backend, mlmd, kfp)
    hurt = case.damage(db)
    if isinstance(case.expect, Refused):
        before = digest(kfp, tables=None)
        result = run_cli("migrate", "--mlmd-url", mlmd, "--kfp-url", kfp, "--yes")
        assert result.code == 3, (result.code, result.stderr[-1500:])
        assert case.expect.text in result.stderr, result.stderr[-1500:]
        assert "Traceback" not in result.stderr and result.stderr.startswith("Error: ")  # no traceback
        assert digest(kfp, tables=None) == before, "a refused migration wrote something"
        return
    migrate(mlmd, kfp, MigrateOptions())
    check_invariants(kfp)
    migrated, ledger, runs = _outcome(kfp)
    others = base.migrated - {hurt}
    assert others <= migrated, f"other runs were not migrated: {sorted(others - migrated)}"
    if isinstance(case.expect, Migrated):
        assert hurt in migrated
        new = {k[1] for k in ledger if k[0] in (hurt, "")} - {k[1] for k in base.ledger if k[0] in (hurt, "")}
        assert not new, f"unexpected ledger reasons {sorted(new)}"
    else:
        assert isinstance(case.expect, Ledger)
        owner = hurt if hurt is not None else ""
        assert ledger[(owner, case.expect.reason)] >= 1, sorted(k for k in ledger if k[0] == owner)
        if case.expect.whole_run:
            assert runs[hurt] == case.expect.reason
            assert rows(kfp, 'SELECT COUNT(*) AS n FROM tasks WHERE "RunUUID" = :r', r=hurt)[0]["n"] == 0
        elif hurt is not None:
            assert hurt in migrated
    report = run_verify(mlmd, kfp, VerifyOptions())
    assert report.exit_code == 0, [f.line() for c in report.checks.values() for f in c.failures][:10]


def test_the_corpus_has_at_least_25_kinds() -> None:
    assert len({c.name for c in CASES}) == len(CASES) >= 25
    refused = [c for c in CASES if isinstance(c.expect, Refused)]
    assert refused and len(refused) < len(CASES)
    assert all(Path(__file__).with_name("corpus.py").read_text().count(f'"{c.name}"') == 1 for c in CASES)
