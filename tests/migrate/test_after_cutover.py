"""After the cutover the new KFP owns the data (issue #27): operator sequences through the real CLI on every
backend, one test per numbered item of the issue, each failing with the bug put back."""

from __future__ import annotations

import hashlib
import json
import re
import uuid

import pytest
from sqlalchemy import create_engine, inspect

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate import producer as producer_module  # noqa: E402
from mlmd2kfp.target import digest as digest_module  # noqa: E402
from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.target.legacy import old_tasks_scan  # noqa: E402
from mlmd2kfp.target.old_cache import OldCacheRows  # noqa: E402
from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import Db, run_cli  # noqa: E402
from tests.migrate.helpers import digest, kfp_retry, rows, run_rows  # noqa: E402


def test_item_1_cleanup_keeps_the_startup_gate_open(databases):
    """cleanup, then the API server's init container runs the gate at every restart: it stays open and says
    the migration was cleaned up; what would need the dropped tables is refused without a change."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k).passed
    cleaned = run_cli("cleanup", "--kfp-url", k, "--yes")
    assert cleaned.code == 0, cleaned.stderr
    assert cleaned.stdout.splitlines() == [
        "dropped `tasks_pre_migration`", "dropped `mlmd2kfp_verified`", "dropped `mlmd2kfp_ledger`",
        "dropped `mlmd2kfp_runs`",
        "kept `mlmd2kfp_state`: it records the cleanup, and `mlmd2kfp status --check` stays open on it"]
    for _ in range(2):  # a restart behind the gate, and another
        gate = run_cli("status", "--kfp-url", k, "--check")
        assert gate.code == 0, gate.stdout + gate.stderr
        assert gate.stdout.startswith("OK: migration finished, verified and cleaned up (")
    db = Db(k)
    tables = {n for n in inspect(db.engine).get_table_names() if n.startswith("mlmd2kfp_") or n.startswith("tasks")}
    assert tables == {"mlmd2kfp_state", "tasks"}
    after = digest(k, tables=None)
    again = run_cli("cleanup", "--kfp-url", k, "--yes")
    assert (again.code, again.stdout) == (0, "nothing to clean up: the migration was cleaned up before\n")
    for command, why in ((("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes"), "KFP owns its runs now"),
                         (("rollback", "--kfp-url", k, "--yes"), "the old `tasks` it would restore"),
                         (("verify", "--mlmd-url", m, "--kfp-url", k), "nothing left to compare")):
        refused = run_cli(*command)
        assert refused.code == 3, (command, refused.stdout, refused.stderr)
        assert "cleaned up" in refused.stderr and why in refused.stderr, refused.stderr
    assert digest(k, tables=None) == after
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    db.engine.dispose()


def test_item_4_verify_counts_valid_kfp_rows_and_compares_parameters_as_multisets(databases):
    """Two tasks KFP wrote with a NULL LogicalKey (the unique index admits NULLs) and a migrated task whose
    InputParameters KFP stored in another order (order is not significant): verify passes, and counts KFP's."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    db = Db(k)
    root = db.one('SELECT * FROM tasks WHERE "ParentTaskUUID" IS NULL ORDER BY "RunUUID"')
    for name in ("retried-a", "retried-b"):
        db.insert("tasks", {**root, "UUID": str(uuid.uuid4()), "ParentTaskUUID": root["UUID"], "Name": name,
                            "ScopePath": f"root.{name}", "Type": 2, "LogicalKey": None})
    task = next(t for t in db.sql('SELECT "UUID", "InputParameters" FROM tasks ORDER BY "UUID"')
                if len(_entries(t["InputParameters"])) >= 2)
    entries = _entries(task["InputParameters"])
    db.set("tasks", "UUID", task["UUID"], "InputParameters", json.dumps(list(reversed(entries))))
    report = run_verify(m, k)
    assert report.passed, [f.line() for c in report.checks.values() for f in c.failures][:5]
    assert report.checks["coverage"].info["rows written by KFP, not checked"] == {"tasks": 2}
    # the true-up: the database's sums of those runs moved, but the tool's rows did not (their digest decides,
    # mapping.md W15), so nothing is read again or taken from KFP, and verify still passes
    again = migrate(m, k, MigrateOptions())
    assert (again.runs_read, again.runs_unchanged, dict(again.runs_skipped)) == (0, 12, {}), again
    report = run_verify(m, k)
    assert report.passed, [f.line() for c in report.checks.values() for f in c.failures][:5]
    db.engine.dispose()


def _entries(value):
    return (json.loads(value) if isinstance(value, str) else value) or []


def _damage_old_tasks(db: Db, damage: str) -> None:
    victim, other = (r["UUID"] for r in db.sql('SELECT "UUID" FROM tasks_pre_migration ORDER BY "UUID"')[:2])
    if damage == "one row deleted":
        db.sql('DELETE FROM tasks_pre_migration WHERE "UUID" = :u', u=victim)
    elif damage == "one row changed":
        db.sql('UPDATE tasks_pre_migration SET "PodName" = \'edited\' WHERE "UUID" = :u', u=victim)
    elif damage == "'' and NULL swapped":
        db.sql('UPDATE tasks_pre_migration SET "Name" = CASE WHEN "Name" IS NULL THEN \'\' ELSE NULL END, '
               '"ParentTaskUUID" = CASE WHEN "ParentTaskUUID" IS NULL THEN \'\' ELSE NULL END WHERE "UUID" = :u',
               u=victim)
    elif damage == "two rows' values swapped":
        pods = {r["UUID"]: r["PodName"] for r in db.sql('SELECT "UUID", "PodName" FROM tasks_pre_migration')}
        assert pods[victim] != pods[other]
        for row, pod in ((victim, pods[other]), (other, pods[victim])):
            db.sql('UPDATE tasks_pre_migration SET "PodName" = :p WHERE "UUID" = :u', p=pod, u=row)
    else:
        db.sql("DROP TABLE tasks_pre_migration")


@pytest.mark.parametrize("recorded", ["server", "streamed"])
@pytest.mark.parametrize("damage", ["one row deleted", "one row changed", "'' and NULL swapped",
                                    "two rows' values swapped", "table dropped"])
def test_item_3_the_rollback_copy_is_checked(databases, damage, recorded):
    """`tasks_pre_migration` damaged after the cutover: verify fails (so the gate stays closed and cleanup is
    refused), rollback refuses with one line and changes nothing, and rolls back only when forced. The same
    when the digest was recorded by a release before the server computed it (streamed: a SHA-256)."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    db = Db(k)
    form = db.one("SELECT old_tasks_digest FROM mlmd2kfp_state")["old_tasks_digest"]
    assert form.startswith("rowsum2:" if databases.backend == "sqlite" else "rowsum1:")
    if recorded == "streamed":
        earlier = _streamed_sha256(db)
        db.sql("UPDATE mlmd2kfp_state SET old_tasks_digest = :d", d=earlier)
        assert run_verify(m, k, VerifyOptions(record=False)).passed  # the earlier form is still honoured
    _damage_old_tasks(db, damage)
    report = run_verify(m, k)
    [finding] = [f for f in report.checks["invariants"].failures if f.field == "rollback copy"]
    assert finding.expected.startswith("399 row(s), digest ")
    assert finding.found == ("missing" if damage == "table dropped" else
                             f"{398 if damage == 'one row deleted' else 399} row(s), digest {finding.found.split()[-1]}")
    assert run_cli("status", "--kfp-url", k, "--check").code == 1
    assert run_cli("cleanup", "--kfp-url", k, "--yes").code == 3
    before = digest(k, tables=None)
    refused = run_cli("rollback", "--kfp-url", k, "--yes")
    assert refused.code == 3 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "rollback refused: `tasks_pre_migration`" in refused.stderr and "--force-without-old-tasks" in refused.stderr
    assert digest(k, tables=None) == before
    forced = run_cli("rollback", "--kfp-url", k, "--yes", "--force-without-old-tasks")
    assert forced.code == 0, forced.stderr
    assert "rolled back without it (--force-without-old-tasks)" in forced.stderr
    db.engine.dispose()


def _streamed_sha256(db: Db) -> str:
    """The digest releases before the server computed it recorded, written out here: a SHA-256 over the
    sorted column names, then each row (primary-key order) as a JSON list of its values' text."""
    rows = db.sql('SELECT * FROM tasks_pre_migration ORDER BY "UUID"')
    columns = sorted(rows[0])
    h = hashlib.sha256(json.dumps(columns).encode())
    for r in rows:
        h.update(json.dumps([None if r[c] is None else str(r[c]) for c in columns]).encode() + b"\n")
    return h.hexdigest()


def _md5_form(rows: list[dict], columns: list[str], backend: str) -> int:
    """The sum of the first 64 bits of each row's hash (unsigned on MariaDB, signed elsewhere), a row's hash being
    the hash of its sorted columns' hex hashes ('-' for NULL) joined by ','; SHA-256 on MariaDB, MD5 elsewhere."""
    algorithm = hashlib.sha256 if backend == "mariadb" else hashlib.md5
    total = 0
    for r in rows:
        text = ",".join("-" if r[c] is None else algorithm(str(r[c]).encode()).hexdigest() for c in columns)
        top = int(algorithm(text.encode()).hexdigest()[:16], 16)
        total += top - 2 ** 64 if backend != "mariadb" and top >= 2 ** 63 else top
    return total


def test_item_3_the_server_digest_written_out(databases):
    """The digest the database computes for the old tasks, derived here in Python (`_md5_form` on the servers;
    on SQLite since issue #30 the signed first 64 bits of BLAKE2b over the `repr` of each row's values in
    sorted column order, summed). A SQLite digest recorded the MD5 way before is still checked that way."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    db = Db(k)
    rows = db.sql("SELECT * FROM tasks_pre_migration")
    columns = sorted(rows[0])
    names = hashlib.sha256(json.dumps(columns).encode()).hexdigest()[:12]
    recorded = db.one("SELECT old_tasks_digest FROM mlmd2kfp_state")["old_tasks_digest"]
    if databases.backend != "sqlite":
        assert recorded == f"rowsum1:{names}:{_md5_form(rows, columns, databases.backend)}"
    else:
        total = sum(int.from_bytes(hashlib.blake2b(repr(tuple(r[c] for c in columns)).encode(), digest_size=8)
                                   .digest(), "big", signed=True) for r in rows)
        assert recorded == f"rowsum2:{names}:{total}"
        earlier = f"rowsum1:{names}:{_md5_form(rows, columns, 'sqlite')}"
        db.sql("UPDATE mlmd2kfp_state SET old_tasks_digest = :d", d=earlier)
        assert run_verify(m, k, VerifyOptions(record=False)).passed  # the earlier form is honoured
        db.sql('UPDATE tasks_pre_migration SET "PodName" = \'x\' WHERE "UUID" = :u', u=rows[0]["UUID"])
        assert not run_verify(m, k, VerifyOptions(record=False)).passed  # and still catches damage
    db.engine.dispose()


def test_verify_s_one_scan_of_the_rollback_copy_gives_the_same_digest_and_cache_rows(databases):
    """Verify reads the rollback copy once for its digest and its cache rows (`old_tasks_scan`, issue #30): the
    digest is the one recorded at the cutover (written out in `test_item_3_the_server_digest_written_out`), and
    the cache rows are those `OldCacheRows.read` reads alone, with the rows written out here."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    db = Db(k)
    recorded = db.one("SELECT old_tasks_rows, old_tasks_digest FROM mlmd2kfp_state")
    with db.engine.connect() as conn:
        rows, digest_now, cache = old_tasks_scan(conn, "tasks_pre_migration", recorded["old_tasks_digest"])
        alone = OldCacheRows.read(conn, "tasks_pre_migration")
        assert old_tasks_scan(conn, "tasks_pre_migration", "a3f0") is None  # a streamed digest: streamed again
    assert (rows, digest_now) == (recorded["old_tasks_rows"], recorded["old_tasks_digest"]) and rows == 399
    cache_rows = db.sql('SELECT "MLMDExecutionID", "RunUUID", "Fingerprint" FROM tasks_pre_migration '
                        'WHERE "MLMDExecutionID" <> \'\' ORDER BY "MLMDExecutionID"')
    assert len(cache.executions) == len(cache_rows) > 0
    assert list(cache.executions) == sorted(int(r["MLMDExecutionID"]) for r in cache_rows)
    for name in ("executions", "runs", "fingerprints"):
        assert sorted(getattr(cache, name)) == sorted(getattr(alone, name))
    assert cache.by_run() == alone.by_run()
    db.engine.dispose()


def test_item_3_a_whole_copy_lets_rollback_restore_it(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    before = digest(k, tables=["tasks"])
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k).passed
    restored = run_cli("rollback", "--kfp-url", k, "--yes")
    assert restored.code == 0 and "moved `tasks_pre_migration` back to `tasks`" in restored.stdout, restored.stderr
    assert digest(k, tables=["tasks"]) == before
    assert Db(k).one("SELECT old_tasks_digest FROM mlmd2kfp_state")["old_tasks_digest"] is None  # nothing aside now


def test_item_7_usage_errors_exit_2_and_debug_keeps_exit_codes(databases):
    """What the README promises: 2 for a usage error (a missing URL or --yes, a URL no backend takes, a
    `--run` that names no run), 3 for an operational one, 1 for differences, also with --debug."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    before = digest(k, tables=None)
    usage = {
        ("verify", "--mlmd-url", m, "--kfp-url", k, "--run", "no-such-run"): "--run no-such-run: no MLMD run context",
        ("migrate", "--mlmd-url", m): "--kfp-url is required",
        ("status", "--kfp-url", "oracle://db/kfp"): "uses backend `oracle`",
        ("migrate", "--mlmd-url", m, "--kfp-url", k): "pass --yes",
        ("rollback", "--kfp-url", k): "pass --yes",
        ("cleanup", "--kfp-url", k): "pass --yes",
    }
    for command, why in usage.items():
        result = run_cli(*command, env={"MLMD2KFP_KFP_URL": ""})
        assert (result.code, why in result.stderr) == (2, True), (command, result.code, result.stderr)
    assert digest(k, tables=None) == before
    db = Db(k)
    db.sql('UPDATE tasks SET "DisplayName" = \'renamed\' WHERE "Name" = \'train\'')  # a difference
    assert run_cli("--debug", "verify", "--mlmd-url", m, "--kfp-url", k).code == 1
    refused = run_cli("--debug", "cleanup", "--kfp-url", k, "--yes")  # the gate is closed: operational
    assert refused.code == 3 and "Traceback" in refused.stderr
    db.engine.dispose()


def test_item_5_a_mode_the_data_contradicts_is_refused_unless_forced(databases):
    """--single-user on a store whose runs are namespaced: refused before any write, naming runs; forced, it
    migrates and verify reports the contradiction (reported, not failing: the operator chose it)."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    before = digest(k, tables=None)
    refused = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--single-user")
    assert refused.code == 3, refused.stderr
    line = " ".join(refused.stderr.split())
    assert "--single-user contradicts run_details: 12 run(s) have a namespace" in line and "e.g. run " in line
    assert "--force-mode" in line and "nothing was written" in line
    assert digest(k, tables=None) == before
    forced = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--single-user", "--force-mode")
    assert forced.code == 0, forced.stderr
    report = run_verify(m, k)
    [mode] = [f for f in report.checks["run-state"].failures if f.field == "mode"]
    assert (mode.expected, mode.found) == ("multi-user", "single-user") and "12 run(s) in run_details with" in mode.row
    assert Db(k).one('SELECT COUNT(*) AS n FROM tasks WHERE "Namespace" <> \'\'')["n"] == 0  # as forced


def test_item_7_after_a_rollback_another_mode_migrates_and_cleanup_removes_the_tools_tables(databases):
    """A migration rolled back whole keeps no mode: the next migrate may use the other one; and cleanup then
    removes the tool's tables, the only thing of it left."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8, single_user=True)
    migrate(m, k, MigrateOptions(multi_user=False))
    assert run_cli("rollback", "--kfp-url", k, "--yes").code == 0
    again = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--multi-user", "--force-mode")
    assert again.code == 0, again.stderr
    assert Db(k).one("SELECT multi_user FROM mlmd2kfp_state")["multi_user"] == 1
    assert run_cli("rollback", "--kfp-url", k, "--yes").code == 0
    before = digest(k, tables=["tasks", "run_details"])
    cleaned = run_cli("cleanup", "--kfp-url", k, "--yes")
    assert cleaned.code == 0, cleaned.stderr
    assert cleaned.stdout.splitlines() == [
        "dropped `mlmd2kfp_verified`", "dropped `mlmd2kfp_ledger`", "dropped `mlmd2kfp_runs`",
        "dropped `mlmd2kfp_state`",
        "the migration was rolled back, so nothing of the tool is left now (the startup gate, which the new KFP "
        "needs, stays closed)"]
    assert not [n for n in inspect(create_engine(k)).get_table_names() if n.startswith("mlmd2kfp_")]
    assert digest(k, tables=["tasks", "run_details"]) == before  # the old KFP's tables untouched
    assert run_cli("status", "--kfp-url", k, "--check").code == 1


def test_item_1_no_source_migrates_after_cleanup(databases):
    """A second source after cleanup would write into KFP's live tables and close the gate for good."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    assert run_verify(m, k).passed and run_cli("cleanup", "--kfp-url", k, "--yes").code == 0
    before = digest(k, tables=None)
    refused = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--source-name", "second")
    assert refused.code == 3 and "cleaned up" in refused.stderr, refused.stderr
    assert digest(k, tables=None) == before
    assert run_cli("status", "--kfp-url", k, "--check").code == 0


def test_item_3_a_rollback_that_kept_runs_still_checks_the_copy(databases):
    """KFP wrote into a migrated run, so the first rollback keeps that run and the old tasks aside; the copy
    is damaged meanwhile; once KFP's rows are gone the rollback that restores must still refuse it. And
    cleanup, with the old tasks still aside, is refused rather than dropping the tool's record of them."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    db = Db(k)
    root = db.one('SELECT * FROM tasks WHERE "ParentTaskUUID" IS NULL ORDER BY "RunUUID"')
    kfp_task = str(uuid.uuid4())
    db.insert("tasks", {**root, "UUID": kfp_task, "ParentTaskUUID": root["UUID"], "Name": "retried-by-kfp",
                        "ScopePath": "root.retried-by-kfp", "Type": 2, "LogicalKey": None})
    kept = run_cli("rollback", "--kfp-url", k, "--yes")
    assert kept.code == 0, kept.stderr
    victim = db.one('SELECT "UUID" FROM tasks_pre_migration ORDER BY "UUID"')["UUID"]
    db.sql('DELETE FROM tasks_pre_migration WHERE "UUID" = :u', u=victim)
    db.sql('DELETE FROM tasks WHERE "UUID" = :u', u=kfp_task)
    before = digest(k, tables=None)
    refused = run_cli("rollback", "--kfp-url", k, "--yes")
    assert refused.code == 3 and "398 row(s) where the cutover moved 399 aside" in refused.stderr, refused.stderr
    assert digest(k, tables=None) == before
    assert run_cli("cleanup", "--kfp-url", k, "--yes").code == 3
    assert digest(k, tables=None) == before
    db.engine.dispose()


def _failed_run(k: str) -> str:
    """A migrated run KFP lets a user retry (it failed) with a task the retry resets."""
    return rows(k, 'SELECT MIN(t."RunUUID") AS r FROM tasks t JOIN run_details d ON d."UUID" = t."RunUUID" '
                   'WHERE t."State" = 4 AND d."State" = \'FAILED\'')[0]["r"]


def test_item_2_a_kfp_retry_after_the_gate_opened_is_never_rewritten(databases):
    """The gate opens, a user retries a migrated run (KFP resets its tasks in place, drops their links, sets
    the run running, writes a task of its own), then the operator reruns migrate because a guide said so: the
    retried rows stay byte-identical to what KFP wrote, the ledger says the run is KFP's, verify passes and
    counts it, the gate stays open. Put the bug back (rewrite from MLMD when the marks move) and the rerun
    overwrites KFP's states and brings the dropped links back."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    assert run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes").code == 0
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k).code == 0
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    run = _failed_run(k)
    reset = kfp_retry(k, run)
    assert reset, "the sample has a failed task to retry"
    retried = run_rows(k, run)
    again = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--report", str(databases.tmp_path / "r.json"))
    assert again.code == 0, again.stderr
    summary = json.loads((databases.tmp_path / "r.json").read_text())
    assert summary["runs_skipped"] == {"kfp-owned": 1} and summary["runs_written"] == 0, summary
    assert run_rows(k, run) == retried  # byte-identical: KFP's states, history, dropped links
    ledger = rows(k, "SELECT entity, reason FROM mlmd2kfp_ledger WHERE run_uuid = :r AND reason = 'kfp-owned'", r=run)
    assert ledger == [{"entity": "run", "reason": "kfp-owned"}]
    report = run_verify(m, k)
    assert report.passed, [f.line() for c in report.checks.values() for f in c.failures][:5]
    info = report.checks["coverage"].info
    assert info["runs KFP changed since the migration (KFP's now, counted, not compared)"] == 1
    assert info["rows written by KFP, not checked"] == {"tasks": 1}
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    third = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes")  # and again: still KFP's
    assert third.code == 0 and run_rows(k, run) == retried


def test_item_2_before_the_gate_opened_a_damaged_run_is_repaired_by_a_plain_migrate(databases):
    """The gate's advice "fix them, rerun migrate" works: a migrated row changed by hand (the run untouched by
    KFP, the gate never opened) fails verify, and a plain migrate rewrites that run only."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    assert run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes").code == 0
    pristine = {r["RunUUID"]: run_rows(k, r["RunUUID"]) for r in rows(k, 'SELECT DISTINCT "RunUUID" FROM tasks')}
    db = Db(k)
    victim = db.one('SELECT "UUID", "RunUUID" FROM tasks WHERE "Name" = \'train\' ORDER BY "UUID"')
    db.sql('UPDATE tasks SET "DisplayName" = \'edited\' WHERE "UUID" = :u', u=victim["UUID"])
    db.sql('DELETE FROM artifact_tasks WHERE "RunUUID" = :r AND "TaskID" = :u', r=victim["RunUUID"], u=victim["UUID"])
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k).code == 1
    repair = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--report", str(databases.tmp_path / "r.json"))
    assert repair.code == 0, repair.stderr
    summary = json.loads((databases.tmp_path / "r.json").read_text())
    assert (summary["runs_read"], summary["runs_written"], summary["runs_repaired"]) == (1, 1, 1), summary
    assert {r: run_rows(k, r) for r in pristine} == pristine
    assert run_cli("verify", "--mlmd-url", m, "--kfp-url", k).code == 0
    assert run_cli("status", "--kfp-url", k, "--check").code == 0
    db.engine.dispose()


@pytest.mark.parametrize("whole", [False, True], ids=["sums per page", "sums of the whole pass"])
def test_a_true_up_reads_back_only_the_damaged_run_however_it_reads_the_sums(databases, monkeypatch, whole):
    """A true-up compares the sums recorded per run with the sums now, per page of runs or, from
    `WHOLE_TABLE_RUNS` recorded runs on, for the whole pass in one GROUP BY per table (issue #30): either way
    the one damaged run is read again and repaired, and no other run is read, not even back from the target
    (equal sums prove the others unchanged: only the damaged run's rows go to `rows_digest`)."""
    if whole:
        monkeypatch.setattr(producer_module, "WHOLE_TABLE_RUNS", 1)
    whole_reads: list[int] = []
    sums = producer_module.run_sums
    monkeypatch.setattr(producer_module, "run_sums", lambda *a, **k: whole_reads.append(len(a[2])) or sums(*a, **k))
    read_back: list[str] = []
    reads = digest_module.read_rows_digests
    monkeypatch.setattr(digest_module, "read_rows_digests",
                        lambda conn, table, runs: read_back.extend(runs) or reads(conn, table, runs))
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    first = migrate(m, k, MigrateOptions(reader_process=False))
    pristine = {r["RunUUID"]: run_rows(k, r["RunUUID"]) for r in rows(k, 'SELECT DISTINCT "RunUUID" FROM tasks')}
    db = Db(k)
    victim = db.one('SELECT "UUID", "RunUUID" FROM tasks WHERE "Name" = \'train\' ORDER BY "UUID"')
    db.sql('UPDATE tasks SET "DisplayName" = \'edited\' WHERE "UUID" = :u', u=victim["UUID"])
    read_back.clear()
    again = migrate(m, k, MigrateOptions(reader_process=False))
    assert victim["RunUUID"] in read_back and set(read_back) <= {victim["RunUUID"]}, read_back
    recorded = rows(k, "SELECT COUNT(*) AS n FROM mlmd2kfp_runs WHERE sums IS NOT NULL")[0]["n"]
    assert whole_reads == ([recorded] if whole else []) and recorded >= len(pristine)  # all at once, or per page
    assert (again.runs_read, again.runs_written, again.runs_repaired) == (1, 1, 1) and first.runs_read > 10
    assert {r: run_rows(k, r) for r in pristine} == pristine
    assert migrate(m, k, MigrateOptions(reader_process=False)).runs_read == 0
    db.engine.dispose()


def test_item_2_before_the_gate_opened_a_run_kfp_retried_is_kfps(databases):
    """The new API server was started without the gate: a retry changes a migrated run and its run_details.
    The gate never opened, but run_details shows KFP took the run up: migrate keeps it, verify counts it, and
    rollback keeps it too (deleting it would lose what KFP wrote)."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    assert run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes").code == 0
    run = _failed_run(k)
    kfp_retry(k, run, new_driver=False)  # only in place: no row of KFP's own gives it away
    retried = run_rows(k, run)
    assert run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes").code == 0
    assert run_rows(k, run) == retried
    report = run_verify(m, k)
    assert report.passed, [f.line() for c in report.checks.values() for f in c.failures][:5]
    assert report.checks["coverage"].info["runs KFP changed since the migration (KFP's now, counted, not compared)"] == 1
    back = run_cli("rollback", "--kfp-url", k, "--yes")
    assert back.code == 0 and f"for example run {run}" in " ".join(back.stderr.split()), back.stderr
    assert sorted(rows(k, 'SELECT * FROM tasks WHERE "RunUUID" = :r', r=run), key=lambda t: t["UUID"]) == retried["tasks"]
    assert rows(k, "SELECT status FROM mlmd2kfp_state") == [{"status": "kept-runs"}]


def test_item_7_status_during_a_pass_and_progress_after_a_resume(databases):
    """`status` while a pass runs showed 0 rows (the counters were written only at its end); a resumed pass
    counted its progress against every run of the store. Killed after its second batch: status shows the rows
    committed so far; the resume's progress runs to the runs left after the checkpoint."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, runs=33, seed=8)
    killed = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--batch-rows", "30",
                     env={"MLMD2KFP_FAULT_AT": "after-batch:2"})
    assert killed.code == -9, killed.stderr
    shown = json.loads(run_cli("status", "--kfp-url", k, "--json").stdout)["state"]
    staged = rows(k, 'SELECT COUNT(*) AS n FROM tasks_migration_tmp')[0]["n"]
    links = rows(k, 'SELECT COUNT(*) AS n FROM artifact_tasks')[0]["n"]
    assert staged > 0 and (shown["tasks"], shown["links"]) == (staged, links), (shown, staged, links)
    after = shown["last_context_id"]
    ctx, typ = ("context", "type") if databases.backend == "postgresql" else ("Context", "Type")  # MLMD's names
    left = rows(m, f'SELECT COUNT(*) AS n FROM "{ctx}" c JOIN "{typ}" t ON t.id = c.type_id '
                   "WHERE t.name = 'system.PipelineRun' AND c.id > :a", a=after)[0]["n"]
    resumed = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--batch-rows", "30")
    assert resumed.code == 0, resumed.stderr
    totals = {int(t) for t in re.findall(r"migrating[^:]*: \d+/(\d+) runs", resumed.stderr)}
    assert totals == {left} and left < 33, (totals, left, resumed.stderr[-800:])


def test_item_2_before_the_cutover_a_changed_staged_run_is_damage(databases):
    """Staged rows (beside the old `tasks`, while the old KFP serves) no KFP can write: a staged run whose rows
    changed is damage even when the old server moved its run_details meanwhile (it finished), and the window's
    migrate repairs it instead of keeping it as KFP's."""
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    assert run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--stage-only").code == 0
    db = Db(k)
    victim = db.one('SELECT "UUID", "RunUUID" FROM tasks_migration_tmp WHERE "Name" = \'train\' ORDER BY "UUID"')
    db.sql('UPDATE tasks_migration_tmp SET "DisplayName" = \'edited\' WHERE "UUID" = :u', u=victim["UUID"])
    db.sql('UPDATE run_details SET "FinishedAtInSec" = "FinishedAtInSec" + 1 WHERE "UUID" = :r', r=victim["RunUUID"])
    window = run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--report", str(databases.tmp_path / "w.json"))
    assert window.code == 0, window.stderr
    summary = json.loads((databases.tmp_path / "w.json").read_text())
    assert (summary["runs_read"], summary["runs_written"], summary["runs_repaired"], summary["runs_skipped"]) == (1, 1, 1, {}), \
        summary
    report = run_verify(m, k)
    assert report.passed, [f.line() for c in report.checks.values() for f in c.failures][:5]
    assert "runs KFP changed since the migration (KFP's now, counted, not compared)" not in report.checks["coverage"].info
    db.engine.dispose()
