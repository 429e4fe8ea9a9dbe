"""`rollback` killed at every step and rerun, and rollback after a migration killed while it was
creating the schema: each time the KFP database ends exactly as it was before the migration."""

from __future__ import annotations

import signal

import pytest

from ..helpers import run_cli
from ..migrate.helpers import digest
from .conftest import cli_migrate

POINTS = ["rollback-data:1", "rollback-drop:1", "rollback-drop:2", "rollback-drop:3", "rollback-restore:1"]


def _pre_migration(fault_sample, kfp):
    return digest(kfp, tables=None, exclude_prefix="mlmd2kfp_") == {
        k: v for k, v in fault_sample.pristine_digest.items() if not k.startswith("mlmd2kfp_")}


@pytest.mark.parametrize("point", POINTS)
def test_rollback_killed_then_rerun_restores_the_pre_migration_database(fault_sample, point):
    kfp = fault_sample.clone()
    assert cli_migrate(fault_sample, kfp).code == 0
    killed = run_cli("rollback", "--kfp-url", kfp, "--yes", env={"MLMD2KFP_FAULT_AT": point})
    assert killed.code == -signal.SIGKILL, (point, killed.stderr[-800:])
    again = run_cli("rollback", "--kfp-url", kfp, "--yes")
    assert again.code == 0, (point, again.stderr[-1500:])
    assert _pre_migration(fault_sample, kfp), point
    status = run_cli("status", "--kfp-url", kfp, "--check")
    assert status.code == 1 and "rolled back" in status.stdout
    assert cli_migrate(fault_sample, kfp).code == 0  # and it migrates again afterwards
    assert digest(kfp, tables=None, exclude_prefix="mlmd2kfp_") == fault_sample.clean_digest


@pytest.mark.parametrize("point", ["schema:1", "schema:2"])
def test_rollback_after_a_kill_during_schema_creation_drops_what_was_created(fault_sample, point):
    kfp = fault_sample.clone()
    killed = cli_migrate(fault_sample, kfp, env={"MLMD2KFP_FAULT_AT": point})
    assert killed.code == -signal.SIGKILL
    result = run_cli("rollback", "--kfp-url", kfp, "--yes")
    assert result.code == 0, result.stderr[-1500:]
    assert _pre_migration(fault_sample, kfp), point
