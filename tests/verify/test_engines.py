"""`run_verify` on engines the caller made (issue #28): in-memory SQLite copies of a migrated sample verify as
the files do, read in this process, and the result is recorded through the same engine."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mlmd2kfp.errors import UsageError
from tests.samples import in_memory_copy


@pytest.mark.mlmd
def test_verify_on_in_memory_engines_passes_as_on_the_files(tmp_path):
    from mlmd2kfp.migrate.runner import MigrateOptions, migrate
    from mlmd2kfp.verify import VerifyOptions, run_verify
    from tests.samples import write_sample

    m, k = f"sqlite:///{tmp_path / 'mlmd.sqlite'}", f"sqlite:///{tmp_path / 'kfp.sqlite'}"
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    on_files = run_verify(m, k, VerifyOptions(record=False))
    mlmd, kfp = in_memory_copy(m, "MLMD"), in_memory_copy(k, "KFP")
    try:
        report = run_verify(mlmd, kfp)  # `auto`: ml-metadata cannot open an in-memory database, SQL reads it
        assert report.passed and report.runs_checked == on_files.runs_checked > 0
        assert report.mlmd_url == report.kfp_url == "sqlite://" and report.source_path == "SQL"
        assert report.not_recorded is None
        with kfp.connect() as conn:  # recorded in the in-memory database, through the caller's engine
            assert conn.execute(text("SELECT verify_passed FROM mlmd2kfp_state")).scalar() == 1
        with pytest.raises(UsageError, match="--source api cannot read an in-memory SQLite MLMD database"):
            run_verify(mlmd, kfp, VerifyOptions(source_path="api", record=False))
    finally:
        mlmd.dispose()
        kfp.dispose()
