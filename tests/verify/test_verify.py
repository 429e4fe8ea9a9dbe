"""`verify` on every backend (issue #5 acceptance): passes after a migration, fails on each of 12
kinds of damage naming the run, the row and the field, and sees a source added after migration."""

from __future__ import annotations

import uuid
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy.engine import make_url

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.admin import rollback  # noqa: E402
from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from mlmd2kfp.sample import write_sample  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import execute, run_cli  # noqa: E402
from tests.migrate.helpers import quote as Q  # noqa: E402
from tests.migrate.helpers import rows  # noqa: E402


@pytest.fixture(scope="module")
def migrated(module_databases):
    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    return m, k


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


def _pick(k, sql, **params):
    found = rows(k, sql, **params)
    assert found, sql
    return found[0]


def damage_cases(k):
    """(name, SQL statements, (check, field) the report must name)."""
    q = lambda n: Q(k, n)  # noqa: E731
    preprocess = _pick(k, 'SELECT "UUID", "RunUUID" FROM tasks WHERE "Name" = \'preprocess\' ORDER BY "UUID"')
    train = _pick(k, 'SELECT "UUID", "RunUUID", "ParentTaskUUID" FROM tasks WHERE "Name" = \'train\' AND "State" = 2 '
                     'ORDER BY "UUID"')
    link = _pick(k, 'SELECT "UUID", "RunUUID" FROM artifact_tasks WHERE "ArtifactKey" = \'dataset\' ORDER BY "UUID"')
    metric = _pick(k, 'SELECT "UUID" FROM artifacts WHERE "Type" = 6 AND "Name" = \'f1\' ORDER BY "UUID"')
    model = _pick(k, 'SELECT "UUID" FROM artifacts WHERE "Type" = 2 ORDER BY "UUID"')
    out_link = _pick(k, 'SELECT "UUID", "RunUUID", "ArtifactID" FROM artifact_tasks WHERE "ArtifactKey" = '
                        '\'output_dataset\' AND "Type" = 9 ORDER BY "UUID"')
    combine = _pick(k, 'SELECT "UUID", "RunUUID" FROM tasks WHERE "Name" = \'combine\' ORDER BY "UUID"')
    extra = f"{uuid.uuid4().hex[:12]}-0000-5000-8000-000000000000"
    extra = str(uuid.uuid5(uuid.NAMESPACE_DNS, extra))
    return [
        ("delete a task", [f"DELETE FROM artifact_tasks WHERE {q('TaskID')} = '{preprocess['UUID']}'",
                           f"DELETE FROM tasks WHERE {q('UUID')} = '{preprocess['UUID']}'"],
         preprocess["RunUUID"], ("coverage", "task row")),
        ("delete one link", [f"DELETE FROM artifact_tasks WHERE {q('UUID')} = '{link['UUID']}'"],
         link["RunUUID"], ("coverage", "link row")),
        ("delete one split metric row", [f"DELETE FROM artifact_tasks WHERE {q('ArtifactID')} = '{metric['UUID']}'",
                                         f"DELETE FROM artifacts WHERE {q('UUID')} = '{metric['UUID']}'"],
         None, ("coverage", "artifact row")),
        ("change a metric value", [f"UPDATE artifacts SET {q('NumberValue')} = 0.123 WHERE {q('UUID')} = '{metric['UUID']}'"],
         None, ("lineage", "NumberValue")),
        ("change a task state", [f"UPDATE tasks SET {q('State')} = 4 WHERE {q('UUID')} = '{train['UUID']}'"],
         train["RunUUID"], ("lineage", "State")),
        ("re-parent a task", [f"UPDATE tasks SET {q('ParentTaskUUID')} = '{preprocess['UUID']}' WHERE {q('UUID')} = "
                              f"'{train['UUID']}'"] if preprocess["RunUUID"] == train["RunUUID"] else [
            f"UPDATE tasks SET {q('ParentTaskUUID')} = (SELECT x.{q('UUID')} FROM (SELECT {q('UUID')} FROM tasks WHERE "
            f"{q('RunUUID')} = '{train['RunUUID']}' AND {q('Name')} = 'preprocess') x) WHERE {q('UUID')} = '{train['UUID']}'"],
         train["RunUUID"], ("lineage", "ParentTaskUUID")),
        ("swap a link's IO type", [f"UPDATE artifact_tasks SET {q('Type')} = 2 WHERE {q('UUID')} = '{out_link['UUID']}'"],
         out_link["RunUUID"], ("lineage", "Type")),
        ("change an artifact URI", [f"UPDATE artifacts SET {q('URI')} = 's3://elsewhere/model' WHERE {q('UUID')} = "
                                    f"'{model['UUID']}'"], None, ("lineage", "URI")),
        ("change a namespace on one link's artifact", [f"UPDATE artifacts SET {q('Namespace')} = 'team-z' WHERE "
                                                       f"{q('UUID')} = '{out_link['ArtifactID']}'"],
         out_link["RunUUID"], ("invariants", "Namespace")),
        ("add an extra task with a migrated-looking id", [
            f"INSERT INTO tasks ({q('UUID')}, {q('Namespace')}, {q('RunUUID')}, {q('pods')}, {q('CreatedAtInSec')}, "
            f"{q('Fingerprint')}, {q('Name')}, {q('ParentTaskUUID')}, {q('State')}, {q('Type')}, {q('TypeAttrs')}, "
            f"{q('ScopePath')}, {q('LogicalKey')}) SELECT '{extra}', {q('Namespace')}, {q('RunUUID')}, '[]', 1, '', "
            f"'ghost', {q('UUID')}, 2, 2, 'null', 'root.ghost', '{'f' * 64}' FROM tasks WHERE {q('UUID')} = "
            f"'{train['ParentTaskUUID']}'"], train["RunUUID"], ("coverage", "extra row")),
        ("remove a ledger entry", ["DELETE FROM mlmd2kfp_ledger WHERE reason = 'flattened-iteration' AND mlmd_id = "
                                   "(SELECT x.m FROM (SELECT MIN(mlmd_id) AS m FROM mlmd2kfp_ledger WHERE reason = "
                                   "'flattened-iteration') x)"], combine["RunUUID"], ("coverage", "ledger")),
        ("change a fingerprint", [f"UPDATE tasks SET {q('Fingerprint')} = 'deadbeef' WHERE {q('UUID')} = "
                                  f"'{train['UUID']}'"], train["RunUUID"], ("lineage", "Fingerprint")),
    ]


def test_damage_suite(module_databases):
    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k, VerifyOptions(record=False)).passed
    names = [c[0] for c in damage_cases(k)]
    caught = []
    for index, name in enumerate(names):
        case = damage_cases(k)[index]
        _, statements, run_id, expect = case
        execute(k, *statements)
        report = run_verify(m, k, VerifyOptions(record=False))
        assert report.exit_code == 1, name
        check, field = expect
        findings = report.checks[check].failures
        assert any(f.field == field and (run_id is None or f.run == run_id) and f.row for f in findings), \
            (name, [f.line() for c in report.checks.values() for f in c.failures][:5])
        caught.append(name)
        rollback(k)
        migrate(m, k, MigrateOptions())
        assert run_verify(m, k, VerifyOptions(record=False)).passed, f"restore after {name}"
    assert len(caught) >= 12


def test_execution_added_to_the_source_is_a_coverage_gap(module_databases):
    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    from mlmd2kfp.sample.mlmd_client import open_store
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
