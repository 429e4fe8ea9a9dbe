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
