"""Mapping version 3 over a database that version 2 migrated (issue #26), on every backend: the gate stays
closed and verify says to rerun `migrate`, which rewrites every run (issue #29: a version-3 migration's ids
change with mapping version 4, and the rerun rewrites it under the new ones)."""

from __future__ import annotations

import json
import signal
import uuid

import pytest

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import Db, run_cli  # noqa: E402
from tests.migrate.helpers import digest  # noqa: E402

IN_LOOP_BODY = 't."TypeAttrs" LIKE \'%iterationIndex%\''  # aliased: tests.helpers.Db compares json as text


def _as_version_2(db: Db) -> str:
    """Rows as mapping version 2 wrote them: loop-body outputs OUTPUT, nested loops LOOP labelled `Loop`, a
    link row under a version-2 id; the state says version 2. Returns the extra link's id."""
    for r in db.sql(f'SELECT t."UUID" FROM tasks t WHERE t."Type" = 2 AND {IN_LOOP_BODY}'):
        db.sql('UPDATE artifact_tasks SET "Type" = 9 WHERE "Type" = 8 AND "TaskID" = :t', t=r["UUID"])
    for r in db.sql(f'SELECT t."UUID" FROM tasks t WHERE t."Type" = 8 AND {IN_LOOP_BODY} '
                    'AND t."TypeAttrs" LIKE \'%iterationCount%\''):
        db.sql('UPDATE tasks SET "Type" = 5, "DisplayName" = \'Loop\' WHERE "UUID" = :t', t=r["UUID"])
    link = db.one('SELECT * FROM artifact_tasks WHERE "Type" = 9 ORDER BY "UUID"')
    old_id = str(uuid.uuid5(uuid.NAMESPACE_URL, "a version-2 link id"))
    db.insert("artifact_tasks", {**link, "UUID": old_id, "ArtifactKey": link["ArtifactKey"] + "-v2"})
    db.sql("UPDATE mlmd2kfp_state SET mapping_version = '2'")
    # the release that wrote version 2 kept no record of its rows nor of the gate (docs/mapping.md W15)
    db.sql("UPDATE mlmd2kfp_runs SET digest = NULL, run_mark = NULL, sums = NULL")  # as a release before them wrote
    db.sql("UPDATE mlmd2kfp_state SET gate_opened_at = NULL")
    return old_id


def test_a_version_2_migration_is_rewritten_by_the_next_migrate_and_the_gate_waits(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k).passed
    db = Db(k)
    old_link = _as_version_2(db)
    link_run = db.one('SELECT "RunUUID" FROM artifact_tasks WHERE "UUID" = :u', u=old_link)["RunUUID"]
    assert db.one(f'SELECT COUNT(*) AS n FROM tasks t WHERE t."Type" = 5 AND {IN_LOOP_BODY}')["n"] == 7  # `for-loop-4`: 3 in control-flow, 2 in each loop-io run

    gate = run_cli("status", "--kfp-url", k, "--check")
    assert gate.code == 1
    assert ("the migration was written with mapping version 2; this mlmd2kfp writes mapping version 4: rerun "
            "`mlmd2kfp migrate` (it rewrites every run, under this version's ids), then `mlmd2kfp verify`") in gate.stdout

    report = run_verify(m, k, VerifyOptions(record=False))
    assert not report.passed
    [version] = [f for f in report.checks["coverage"].failures if f.field == "mapping version"]
    assert (version.expected, version.found) == ("4", "2")
    assert "rerun `mlmd2kfp migrate`" in version.row

    before = digest(k)
    partial = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--namespace", "team-a", "--yes")
    assert partial.code == 3 and "without --namespace/--run (nothing was written)" in partial.stderr
    assert digest(k) == before

    # killed midway through the rewrite: the state still names version 2 (recorded once a whole pass is in), so
    # the gate stays closed and a partial pass is still refused
    killed = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--batch-rows", "40",
                     env={"MLMD2KFP_FAULT_AT": "mid-batch:2"})
    assert killed.code == -signal.SIGKILL, killed.stderr[-500:]
    assert db.one("SELECT mapping_version FROM mlmd2kfp_state")["mapping_version"] == "2"
    assert "mapping version 2" in run_cli("status", "--kfp-url", k, "--check").stdout
    assert run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--run", link_run).code == 3

    rerun = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes")
    assert rerun.code == 0, rerun.stderr
    assert "this migration was written with mapping version 2; mapping version 4 rewrites each of its" in (
        rerun.stdout + rerun.stderr)
    assert db.one("SELECT mapping_version FROM mlmd2kfp_state")["mapping_version"] == "4"
    assert db.sql('SELECT * FROM artifact_tasks WHERE "UUID" = :u', u=old_link) == []
    nested = db.sql('SELECT "Type", "DisplayName", "TypeAttrs" FROM tasks WHERE "Name" = \'for-loop-4\' AND "RunUUID" = '
                    '(SELECT "UUID" FROM run_details WHERE "DisplayName" LIKE \'control-flow run%\')')
    assert sorted(((r["Type"], r["DisplayName"], json.loads(r["TypeAttrs"]) if isinstance(r["TypeAttrs"], str)
                    else r["TypeAttrs"]) for r in nested), key=lambda r: r[2]["iterationIndex"]) == [
        (8, "for-loop-4", {"iterationCount": "2", "iterationIndex": str(i)}) for i in range(3)]
    assert db.one(f'SELECT COUNT(*) AS n FROM artifact_tasks l JOIN tasks t ON t."UUID" = l."TaskID" '
                  f'WHERE t."Type" = 2 AND {IN_LOOP_BODY} AND l."Type" = 9')["n"] == 0
    assert run_cli("status", "--kfp-url", k, "--check").code == 1  # not verified since the rewrite
    assert run_verify(m, k).passed
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    db.engine.dispose()


def test_a_migration_of_a_newer_mapping_version_is_left_alone(databases):
    """An older mlmd2kfp never rewrites what a newer one wrote: migrate refuses before writing, the gate and
    verify name the version and send the operator to the release that wrote it."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k).passed
    db = Db(k)
    db.sql("UPDATE mlmd2kfp_state SET mapping_version = '5'")
    before = digest(k, tables=None)
    refused = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes")
    assert refused.code == 3 and "written with mapping version 5, which this mlmd2kfp (mapping version 4) does not " \
        "know" in " ".join(refused.stderr.split())
    assert digest(k, tables=None) == before
    gate = run_cli("status", "--kfp-url", k, "--check")
    assert gate.code == 1 and "run the gate of the release that wrote it" in gate.stdout
    [version] = [f for f in run_verify(m, k, VerifyOptions(record=False)).checks["coverage"].failures
                 if f.field == "mapping version"]
    assert (version.expected, version.found) == ("4", "5") and "use the mlmd2kfp release that wrote it" in version.row
    db.engine.dispose()


def test_a_later_releases_phase_is_named_not_a_crash(databases):
    """A state row a later release wrote, with a phase this one does not know: the gate and migrate name the
    newer mapping version (a typed phase must not turn the row into an unexpected error)."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    Db(k).sql("UPDATE mlmd2kfp_state SET phase = 'verifying', status = 'waiting', mapping_version = '5'")
    gate = run_cli("status", "--kfp-url", k, "--check")
    assert gate.code == 1 and "mapping version 5" in gate.stdout, gate.stdout + gate.stderr
    refused = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes")
    assert refused.code == 3 and "does not know" in refused.stderr, refused.stderr
    assert run_cli("status", "--kfp-url", k).code == 0


def _version_3_row_id(name: str, source_name: str = "", position: int = 0) -> str:
    """Mapping version 3's ids: the UUIDv5 of the name, whatever the position (docs/mapping.md §2 before #29)."""
    return str(uuid.uuid5(uuid.UUID("6c2f3a0e-5b7d-5e4a-9a51-6d6c6d64326b"),
                          f"{source_name}|{name}" if source_name else name))


def test_a_version_3_migration_is_rewritten_under_the_ordered_ids(databases, monkeypatch):
    """Issue #29: a database version 3 migrated holds UUIDv5 ids; the next `migrate` deletes every one of them
    (they are the tool's) and writes the runs under version-8 ids in key order; verify then passes and the
    gate opens. KFP's own rows (version 4) are never touched."""
    from mlmd2kfp.mappers import keys

    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    with monkeypatch.context() as patched:  # this process writes as version 3 did
        patched.setattr(keys, "row_id", _version_3_row_id)
        migrate(m, k, MigrateOptions(reader_process=False))
    db = Db(k)
    db.sql("UPDATE mlmd2kfp_state SET mapping_version = '3'")
    versions = {t: {r["UUID"][14] for r in db.sql(f'SELECT "UUID" FROM {t}')} for t in ("tasks", "artifacts",
                                                                                         "artifact_tasks")}
    assert versions == {"tasks": {"5"}, "artifacts": {"5"}, "artifact_tasks": {"5"}}
    counts = {t: db.one(f"SELECT COUNT(*) AS n FROM {t}")["n"] for t in versions}
    assert not run_verify(m, k, VerifyOptions(record=False)).passed  # the ids verify derives are version 8

    rerun = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes")
    assert rerun.code == 0, rerun.stderr
    assert "this migration was written with mapping version 3; mapping version 4 rewrites each of its" in (
        rerun.stdout + rerun.stderr)
    after = {t: {r["UUID"][14] for r in db.sql(f'SELECT "UUID" FROM {t}')} for t in versions}
    assert after == {"tasks": {"8"}, "artifacts": {"8"}, "artifact_tasks": {"8"}}
    assert {t: db.one(f"SELECT COUNT(*) AS n FROM {t}")["n"] for t in versions} == counts  # the same rows, re-keyed
    assert run_verify(m, k).passed
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    db.engine.dispose()


def test_verify_tells_a_source_still_at_version_3_from_extra_rows(databases, monkeypatch):
    """Two sources, one migrated by a version-3 release and not since: verifying the other source counts the
    version-3 source's runs as another source's (its ROOT ids are UUIDv5), not as rows no MLMD run accounts
    for; renamed away, the same rows are extra."""
    from mlmd2kfp.mappers import keys
    from mlmd2kfp.target.schema import STAGING_TABLE
    from tests.migrate.helpers import add_second_source

    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    m2, second_runs = add_second_source(databases, k)
    with monkeypatch.context() as patched:
        patched.setattr(keys, "row_id", _version_3_row_id)
        migrate(m2, k, MigrateOptions(source_name="second", stage_only=True, reader_process=False))
    db = Db(k)
    db.sql("UPDATE mlmd2kfp_state SET mapping_version = '3' WHERE source_name = 'second'")
    migrate(m, k, MigrateOptions(stage_only=True))
    staged = db.sql(f'SELECT "UUID", "RunUUID" FROM {STAGING_TABLE}')
    theirs = set(second_runs) & {r["RunUUID"] for r in staged}
    assert theirs and {r["UUID"][14] for r in staged if r["RunUUID"] in theirs} == {"5"}
    report = run_verify(m, k, VerifyOptions(source_name="", record=False))
    assert report.passed, report.summary()
    assert report.checks["coverage"].info["runs of other sources, not checked"] == len(theirs)
    db.sql("UPDATE mlmd2kfp_state SET source_name = 'renamed' WHERE source_name = 'second'")
    blind = run_verify(m, k, VerifyOptions(source_name="", record=False))
    assert {f.run for f in blind.checks["coverage"].failures if f.field == "extra rows"} == theirs
    db.engine.dispose()
