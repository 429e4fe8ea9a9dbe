"""Per-run sums computed by the database (issue #30): written out in Python on every backend, moved by any
change to a run's rows, its links' artifacts or its ledger entries, and by nothing else."""

from __future__ import annotations

import hashlib

import pytest

pytest.importorskip("ml_metadata")

from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from mlmd2kfp.migrate.state import LEDGER  # noqa: E402
from mlmd2kfp.target.run_sums import LEDGER_COLUMNS, run_sums  # noqa: E402
from mlmd2kfp.target.schema import ARTIFACT_TASKS, ARTIFACTS, TASKS  # noqa: E402
from tests.helpers import Db  # noqa: E402
from tests.samples import write_sample  # noqa: E402


def _migrated(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=8)
    migrate(m, k, MigrateOptions())
    return Db(k)


def _sums_of(db: Db, runs: list[str], whole: bool = False) -> dict[str, str]:
    with db.engine.connect() as conn:
        out = run_sums(conn, "tasks", runs, whole=whole)
    assert out is not None
    return out


def test_the_ledger_columns_are_the_ledgers():
    assert LEDGER_COLUMNS == tuple(c.name for c in LEDGER.columns)


def test_a_run_s_sums_written_out(databases):
    """One run's sums derived here: per part, the count and the sum of each row's first 64 bits of the hash
    of its columns' hex hashes ('-' for NULL) joined by ','; SHA-256 on MariaDB (unsigned), MD5 elsewhere
    (signed); on SQLite BLAKE2b over the `repr` of the row's values; the five parts' "count:sum" (the last: its `run_details` row, its experiment's namespace and its
pipeline version's spec) joined by '|' and hashed (SHA-256, 32 hex)."""
    db = _migrated(databases)
    ledgered = {r["run_uuid"] for r in db.sql("SELECT run_uuid FROM mlmd2kfp_ledger")}
    run = min(r["RunUUID"] for r in db.sql('SELECT "RunUUID" FROM artifact_tasks') if r["RunUUID"] in ledgered)
    algorithm = hashlib.sha256 if databases.backend == "mariadb" else hashlib.md5
    as_text = 'CAST(%s AS CHAR)' if databases.backend == "mariadb" else ("%s::text" if databases.backend == "postgresql"
                                                                          else "%s")

    def part(sql: str, columns: list[str]) -> str:
        values = [c if "." in c else f'x."{c}"' for c in columns]
        rows = db.sql(sql.format(cols=", ".join(as_text % v + f' AS "c{i}"' for i, v in enumerate(values))), r=run)
        total = 0
        for row in rows:
            if databases.backend == "sqlite":  # BLAKE2b over the repr of the row's values (issue #30)
                values = tuple(row[f"c{i}"] for i in range(len(columns)))
                total += int.from_bytes(hashlib.blake2b(repr(values).encode(), digest_size=8).digest(), "big",
                                        signed=True)
                continue
            line = ",".join("-" if row[f"c{i}"] is None else algorithm(str(row[f"c{i}"]).encode()).hexdigest()
                            for i in range(len(columns)))
            top = int(algorithm(line.encode()).hexdigest()[:16], 16)
            total += top - 2 ** 64 if databases.backend != "mariadb" and top >= 2 ** 63 else top
        return f"{len(rows)}:{total}"

    parts = [
        part('SELECT {cols} FROM tasks x WHERE x."RunUUID" = :r', [c.name for c in TASKS.columns]),
        part('SELECT {cols} FROM artifact_tasks x WHERE x."RunUUID" = :r', [c.name for c in ARTIFACT_TASKS.columns]),
        part('SELECT {cols} FROM artifact_tasks l JOIN artifacts x ON x."UUID" = l."ArtifactID" WHERE l."RunUUID" = :r',
             [c.name for c in ARTIFACTS.columns]),
        part('SELECT {cols} FROM mlmd2kfp_ledger x WHERE x."run_uuid" = :r', list(LEDGER_COLUMNS)),
        part('SELECT {cols} FROM run_details x LEFT JOIN experiments e ON e."UUID" = x."ExperimentUUID" '
             'LEFT JOIN pipeline_versions v ON v."UUID" = x."PipelineVersionId" WHERE x."UUID" = :r',
             ["UUID", "Namespace", "State", "Conditions", "PipelineVersionId", "ExperimentUUID", "DisplayName",
              "FinishedAtInSec", "PipelineSpecManifest", 'e."Namespace"', 'v."PipelineSpec"']),
    ]
    assert "0:0" not in parts  # every part has rows
    assert _sums_of(db, [run]) == {run: hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]}
    db.engine.dispose()


def test_one_group_by_over_the_table_gives_each_run_s_sums_as_the_lists_of_runs_do(databases):
    """`whole`: each part is one GROUP BY over the whole table; the sums are those the lists of runs give, for
    runs with rows and a run asked that has none, whatever other runs the tables hold."""
    db = _migrated(databases)
    runs = sorted({r["RunUUID"] for r in db.sql('SELECT "RunUUID" FROM tasks')})
    asked = runs[1:] + ["no-such-run"]
    by_lists = _sums_of(db, asked)
    assert _sums_of(db, asked, whole=True) == by_lists and len(by_lists) == len(runs)
    db.engine.dispose()


@pytest.mark.parametrize("whole", [False, True], ids=["lists of runs", "whole table"])
def test_sums_move_with_each_part_of_a_run_and_only_its_own(databases, whole):
    db = _migrated(databases)

    def _sums(db: Db, runs: list[str]) -> dict[str, str]:  # the part under test, one way or the other
        return _sums_of(db, runs, whole)

    runs = sorted({r["RunUUID"] for r in db.sql('SELECT "RunUUID" FROM artifact_tasks')})
    before = _sums(db, runs)
    assert len(set(before.values())) == len(runs)  # no two runs alike
    assert _sums(db, list(reversed(runs))) == before  # whatever order asked in
    assert _sums(db, ["no-such-run"])["no-such-run"] == _sums(db, ["another-run"])["another-run"]  # nothing: alike
    assert _sums(db, [runs[0], runs[0]]) == {runs[0]: before[runs[0]]}  # a run asked twice is one run
    run = runs[0]
    task = db.one('SELECT "UUID" FROM tasks WHERE "RunUUID" = :r AND "Type" = 2 ORDER BY "UUID"', r=run)["UUID"]
    link = db.one('SELECT "UUID", "ArtifactID" FROM artifact_tasks WHERE "RunUUID" = :r ORDER BY "UUID"', r=run)
    moves = [
        ('UPDATE tasks SET "DisplayName" = \'edited\' WHERE "UUID" = :u', {"u": task}),
        ('UPDATE tasks SET "Name" = CASE WHEN "Name" IS NULL THEN \'\' ELSE NULL END WHERE "UUID" = :u', {"u": task}),
        ('UPDATE tasks SET "pods" = \'[]\' WHERE "UUID" = :u', {"u": task}),
        ('UPDATE tasks SET "CreatedAtInSec" = "CreatedAtInSec" + 1 WHERE "UUID" = :u', {"u": task}),
        ('UPDATE artifact_tasks SET "ArtifactKey" = \'edited\' WHERE "UUID" = :u', {"u": link["UUID"]}),
        ('UPDATE artifacts SET "URI" = \'s3://elsewhere\' WHERE "UUID" = :u', {"u": link["ArtifactID"]}),
        ("INSERT INTO mlmd2kfp_ledger (id, run_uuid, entity, mlmd_id, reason, detail) "
         "VALUES ('test-entry', :r, 'execution', 1, 'test', NULL)", {"r": run}),
        ('DELETE FROM artifact_tasks WHERE "UUID" = :u', {"u": link["UUID"]}),
        ('UPDATE run_details SET "State" = \'edited\' WHERE "UUID" = :r', {"r": run}),
        ('UPDATE run_details SET "PipelineSpecManifest" = \'edited\' WHERE "UUID" = :r', {"r": run}),
    ]
    for statement, params in moves:
        now = _sums(db, runs)
        db.sql(statement, **params)
        after = _sums(db, runs)
        assert after[run] != now[run], statement
        shares = {r["RunUUID"] for r in db.sql('SELECT "RunUUID" FROM artifact_tasks WHERE "ArtifactID" = :a',
                                             a=link["ArtifactID"])} if "artifacts" in statement else {run}
        assert {r for r in runs if after[r] != now[r]} == shares, statement
    for table, column, key in (("experiments", "Namespace", "ExperimentUUID"),
                               ("pipeline_versions", "PipelineSpec", "PipelineVersionId")):
        target = db.one(f'SELECT "{key}" FROM run_details WHERE "UUID" = :r', r=run)[key]
        shares = {r["UUID"] for r in db.sql(f'SELECT "UUID" FROM run_details WHERE "{key}" = :t', t=target)} & set(runs)
        now = _sums(db, runs)
        db.sql(f'UPDATE {table} SET "{column}" = \'edited\' WHERE "UUID" = :t', t=target)
        after = _sums(db, runs)
        assert {r for r in runs if after[r] != now[r]} == shares and run in shares, table
    db.engine.dispose()
