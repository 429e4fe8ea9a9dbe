"""`verify` on every backend (issues #5, #12): passes after a migration and lists every check, sees a
source added after migration; the damage suite is `test_damage.py`, the valid variants `test_variants.py`."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest
from sqlalchemy.engine import make_url

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import run_cli  # noqa: E402
from tests.migrate.helpers import rows  # noqa: E402


@pytest.mark.parametrize("source", ["api", "sql"])
def test_verify_passes_after_migration_and_junit_lists_every_check(migrated, source, tmp_path):
    m, k = migrated
    junit = tmp_path / "v.xml"
    result = run_cli("verify", "--mlmd-url", m, "--kfp-url", k, "--source", source, "--junit", str(junit),
                     "--json", str(tmp_path / "v.json"), "--markdown", str(tmp_path / "v.md"))
    assert result.code == 0, result.stdout + result.stderr
    assert ("ml-metadata API" if source == "api" else "SQL") in result.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    names = {c.get("name") for c in suite.findall("testcase")}
    assert names == {"coverage", "counts", "lineage", "invariants", "cache", "run-state"}
    assert suite.get("failures") == "0"
    status = run_cli("status", "--kfp-url", k, "--check")
    assert status.code == 0 and "verified" in status.stdout


def test_execution_added_to_the_source_is_a_coverage_gap(module_databases):
    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    from mlmd2kfp.source.mlmd_api import open_store
    from ml_metadata.proto import metadata_store_pb2 as pb

    store = open_store(make_url(m))
    run_id = rows(k, 'SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'training%\'')[0]["UUID"]
    run_ctx = store.get_context_by_type_and_name("system.PipelineRun", run_id)
    [pipe_ctx] = store.get_parent_contexts_by_context(run_ctx.id)
    root = [e for e in store.get_executions_by_context(run_ctx.id) if e.name == f"run/{run_id}"][0]
    type_id = store.get_execution_type("system.ContainerExecution").id
    late = pb.Execution(type_id=type_id, last_known_state=3)
    late.custom_properties["task_name"].string_value = "late-task"
    late.custom_properties["parent_dag_id"].int_value = root.id
    new_id, _, _ = store.put_execution(late, [], [pipe_ctx, run_ctx], reuse_context_if_already_exist=True)
    del store
    report = run_verify(m, k, VerifyOptions(record=False))
    assert report.exit_code == 1
    # a task the spec does not know: the run can no longer be placed, and its migrated rows are flagged
    assert new_id and any(f.run == run_id for f in report.checks["coverage"].failures), \
        [f.line() for f in report.checks["coverage"].failures]
    cli = run_cli("verify", "--mlmd-url", m, "--kfp-url", k)
    assert cli.code == 1
    assert run_cli("status", "--kfp-url", k, "--check").code == 1  # the gate follows the last verify


def test_a_source_reader_process_that_dies_is_a_clear_error_and_nothing_is_recorded(migrated, monkeypatch):
    import sys

    from mlmd2kfp.errors import ToolkitError

    m, k = migrated
    before = rows(k, "SELECT verify_at, verify_passed, verify_result FROM mlmd2kfp_state")
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the expected side's process exits 1 at once
    with pytest.raises(ToolkitError, match=r"source reader process ended unexpectedly \(exit code 1\).*rerun"):
        run_verify(m, k, VerifyOptions(source_process=True))
    monkeypatch.undo()
    assert rows(k, "SELECT verify_at, verify_passed, verify_result FROM mlmd2kfp_state") == before
    assert run_verify(m, k, VerifyOptions(record=False)).passed


def test_verify_loads_nothing_of_the_migrators_mapping():
    """The second opinion shares no mapping code: importing verify (and everything it imports) loads no
    module of `mlmd2kfp.mappers`, and of `mlmd2kfp.migrate` only the gate with its lock and state."""
    import subprocess
    import sys

    code = ("import sys, mlmd2kfp.verify, mlmd2kfp.verify.expect, mlmd2kfp.verify.checks, mlmd2kfp.verify.source; "
            "print(sorted(m for m in sys.modules if m.startswith(('mlmd2kfp.mappers', 'mlmd2kfp.migrate'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(["mlmd2kfp.migrate", "mlmd2kfp.migrate.gate", "mlmd2kfp.migrate.lock",
                               "mlmd2kfp.migrate.state"])


def test_expected_rows_derived_in_the_source_process_give_the_same_report(migrated):
    """Issue #29 item 4: with the source reader in a second process, that process derives the expected rows
    too; the report is the same as when this process derives them, whole and for a `--run`/`--namespace`
    subset, damage included."""
    from tests.helpers import Db

    m, k = migrated
    db = Db(k)
    task = db.one('SELECT "UUID", "RunUUID", "DisplayName" FROM tasks WHERE "ParentTaskUUID" IS NOT NULL '
                  'ORDER BY "UUID"')
    opened = db.one("SELECT gate_opened_at FROM mlmd2kfp_state")["gate_opened_at"]
    db.sql("UPDATE mlmd2kfp_state SET gate_opened_at = NULL")  # a changed run is damage, not KFP's (W15)
    undo = db.set("tasks", "UUID", task["UUID"], "DisplayName", "damaged")
    try:
        for options in ({}, {"run_ids": (task["RunUUID"],)}, {"namespaces": ("team-a",)}):
            here = run_verify(m, k, VerifyOptions(record=False, source_process=False, **options))
            there = run_verify(m, k, VerifyOptions(record=False, source_process=True, **options))
            assert not here.passed and here.runs_checked > 0
            assert there.summary() == here.summary()
            assert [f.line() for c in there.checks.values() for f in c.failures] == \
                [f.line() for c in here.checks.values() for f in c.failures]
    finally:
        undo()
        db.sql("UPDATE mlmd2kfp_state SET gate_opened_at = :t", t=opened)
        db.engine.dispose()
