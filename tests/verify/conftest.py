"""A migrated sample per test module and backend (read-only tests, or tests that undo their damage)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def migrated(module_databases):
    pytest.importorskip("ml_metadata")
    from mlmd2kfp.migrate.runner import MigrateOptions, migrate
    from tests.samples import write_sample

    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    return m, k


@pytest.fixture(scope="module")
def pre_verified(module_databases):
    """The operator's window (issue #30): staged, verified while the old KFP still serves (the per-run records
    written), then the cutover; the next verify is incremental."""
    pytest.importorskip("ml_metadata")
    from mlmd2kfp.migrate.runner import MigrateOptions, migrate
    from mlmd2kfp.verify import VerifyOptions, run_verify
    from tests.samples import write_sample

    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions(stage_only=True))
    pre = run_verify(m, k, VerifyOptions())
    assert (pre.kind, pre.passed, pre.not_recorded) == ("full", True, None)
    migrate(m, k, MigrateOptions())
    return m, k
