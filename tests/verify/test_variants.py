"""Valid states an operator verifies in (issue #12): each gives exit 0, and the startup gate follows the
real commands (no direct writes of the verify record). Every backend."""

from __future__ import annotations

import uuid

import pytest

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.admin import read_status  # noqa: E402
from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import Db, run_cli  # noqa: E402


def _passes(m: str, k: str, **options) -> object:
    report = run_verify(m, k, VerifyOptions(**options))
    assert report.exit_code == 0, [f.line() for c in report.checks.values() for f in c.failures][:8]
    return report


def _gate(k: str) -> tuple[bool, str]:
    return read_status(k).gate


def test_staged_true_up_kfp_rows_physical_order_and_the_gate(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    db = Db(k)
    # 1. staged, before the cutover: reads the staging table and says so; the gate stays closed
    migrate(m, k, MigrateOptions(stage_only=True))
    report = _passes(m, k)
    assert report.phase.startswith("staged in `tasks_migration_tmp`")
    assert not _gate(k)[0] and "phase `staged`" in _gate(k)[1]
    # 2. a true-up (a run renamed while the old KFP served traffic), then the cutover
    run = db.one('SELECT "UUID" FROM run_details ORDER BY "UUID"')["UUID"]
    db.sql('UPDATE run_details SET "DisplayName" = :d WHERE "UUID" = :u', d="renamed while staged", u=run)
    migrate(m, k, MigrateOptions())
    assert not _gate(k)[0] and "no longer holds" in _gate(k)[1]  # this migrate came after the staged verify
    root = db.one('SELECT "DisplayName" FROM tasks WHERE "RunUUID" = :u AND "ParentTaskUUID" IS NULL', u=run)
    assert root["DisplayName"] == "renamed while staged"
    report = _passes(m, k)
    assert report.phase == "after cutover" and report.scope == "whole"
    assert _gate(k) == (True, "migration finished and verified")
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    # 3. a later migrate that rewrites a run closes the gate until the next verify
    db.sql('UPDATE run_details SET "DisplayName" = :d WHERE "UUID" = :u', d="renamed again", u=run)
    migrate(m, k, MigrateOptions())
    status = run_cli("status", "--kfp-url", k, "--check")
    assert status.code == 1 and "migrate` ran again" in status.stdout + status.stderr
    _passes(m, k)
    assert _gate(k)[0]
    # 4. a subset verify passes but does not open the gate
    report = _passes(m, k, run_ids=(run,))
    assert report.scope == "partial" and report.runs_checked == 1
    assert not _gate(k)[0] and "only some runs" in _gate(k)[1]
    _passes(m, k)
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k, "--run", run).code == 0  # the CLI records it too
    assert run_cli("status", "--kfp-url", k, "--check").code == 1
    assert run_cli("cleanup", "--kfp-url", k, "--yes").code == 3  # refused for the same reason
    _passes(m, k)
    # 5. the new API server writes a run of its own and a task under a migrated ROOT (version-4 ids)
    template = db.one('SELECT * FROM tasks WHERE "RunUUID" = :u AND "ParentTaskUUID" IS NULL', u=run)
    kfp_run = str(uuid.uuid4())
    other = db.one('SELECT * FROM run_details WHERE "UUID" = :u', u=run)
    db.insert("run_details", {**other, "UUID": kfp_run, "DisplayName": "written by KFP"})
    for owner, parent, name in ((kfp_run, None, "ROOT"), (run, template["UUID"], "kfp-child")):
        db.insert("tasks", {**template, "UUID": str(uuid.uuid4()), "RunUUID": owner, "ParentTaskUUID": parent,
                            "Name": name, "ScopePath": "root" if parent is None else f"root.{name}",
                            "Type": 1 if parent is None else 2, "LogicalKey": uuid.uuid4().hex * 2})
    report = _passes(m, k)
    assert report.checks["coverage"].info["rows written by KFP, not checked"] == {"tasks": 2}
    # 6. the same rows in another physical order (the ledger read back reversed)
    ledger = db.sql("SELECT * FROM mlmd2kfp_ledger ORDER BY id DESC")
    db.sql("DELETE FROM mlmd2kfp_ledger")
    for row in ledger:
        db.insert("mlmd2kfp_ledger", row)
    _passes(m, k)
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    db.engine.dispose()


def test_single_user_source_name_and_an_over_long_key_without_spec(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8, single_user=True)
    db, mlmd = Db(k), Db(m)
    # a run whose spec is gone, with a task key longer than the 128 characters of `tasks.Name`
    run = db.one('SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'training%\' ORDER BY "UUID"')["UUID"]
    db.sql('UPDATE run_details SET "PipelineSpecManifest" = NULL, "PipelineVersionId" = NULL WHERE "UUID" = :u', u=run)
    tables = {n: (n.lower() if mlmd.engine.dialect.name == "postgresql" else n)
              for n in ("Context", "Association", "ExecutionProperty")}
    execution = mlmd.one(
        f'SELECT p.execution_id AS e FROM "{tables["ExecutionProperty"]}" p JOIN "{tables["Association"]}" a ON '
        f'a.execution_id = p.execution_id JOIN "{tables["Context"]}" c ON c.id = a.context_id WHERE c.name = :u AND '
        f"p.name = 'task_name' AND p.string_value = 'train'", u=run)["e"]
    mlmd.sql(f'UPDATE "{tables["ExecutionProperty"]}" SET string_value = :v WHERE execution_id = :e AND '
             "name = 'task_name'", v="t" * 130, e=execution)
    migrate(m, k, MigrateOptions(source_name="second-store"))
    skipped = db.one("SELECT reason FROM mlmd2kfp_ledger WHERE run_uuid = :u AND entity = 'run'", u=run)
    assert skipped["reason"] == "identifier-too-long"
    report = _passes(m, k)
    assert report.mode == "single-user"
    assert db.one('SELECT COUNT(*) AS n FROM tasks WHERE "RunUUID" = :u', u=run)["n"] == 0
    db.engine.dispose()
    mlmd.engine.dispose()
