"""The reader process of `migrate` (mapping.md W12): same rows as the reader thread, a clear failure when
it dies, no password on its command line, rows that survive the pipe unchanged."""

from __future__ import annotations

import pickle
import subprocess
import sys

import pytest
from sqlalchemy import create_engine

pytest.importorskip("ml_metadata")

from mlmd2kfp.errors import MigrationFailedError  # noqa: E402
from mlmd2kfp.mappers import MapOptions, map_run  # noqa: E402
from mlmd2kfp import background  # noqa: E402
from mlmd2kfp.migrate.admin import rollback  # noqa: E402
from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from tests.samples import write_sample  # noqa: E402
from mlmd2kfp.source.reader import MlmdReader  # noqa: E402
from tests.migrate.helpers import check_invariants, digest, rows  # noqa: E402

TOOL_TABLES = ("tasks", "artifacts", "artifact_tasks", "mlmd2kfp_ledger")
RUN_MARKS = ("SELECT run_uuid, context_id, marks, namespace, skipped, tasks, links, artifact_ids, mlmd_artifact_ids "
             "FROM mlmd2kfp_runs ORDER BY run_uuid")


def _sample(databases):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=3)
    return m, k


def _source_counts(report):
    return (report.runs_seen, report.runs_read, report.runs_unchanged, report.batches, report.fingerprints,
            {name: (t.read, t.written, dict(t.skipped)) for name, t in report.tables.items()}, dict(report.ledger))


def test_reader_process_and_reader_thread_write_the_same_rows(databases):
    m, k = _sample(databases)
    on_thread = migrate(m, k, MigrateOptions(batch_rows=40, reader_process=False))
    thread_digest, thread_marks = digest(k, tables=TOOL_TABLES), rows(k, RUN_MARKS)
    rollback(k)
    in_process = migrate(m, k, MigrateOptions(batch_rows=40, reader_process=True))
    assert digest(k, tables=TOOL_TABLES) == thread_digest
    assert rows(k, RUN_MARKS) == thread_marks and len(thread_marks) == 12
    assert _source_counts(in_process) == _source_counts(on_thread)
    assert in_process.batches > 3 and in_process.fingerprints["agree"] == 47
    check_invariants(k)


def test_a_reader_process_that_dies_fails_the_migration_and_a_rerun_completes(databases, monkeypatch):
    m, k = _sample(databases)
    clean_m, clean_k = _sample(databases)
    migrate(clean_m, clean_k, MigrateOptions(reader_process=True))
    monkeypatch.setattr(sys, "executable", "/bin/false")  # the child exits 1 before sending anything
    with pytest.raises(MigrationFailedError, match=r"reader process ended unexpectedly \(exit code 1\).*rerun"):
        migrate(m, k, MigrateOptions(reader_process=True))
    monkeypatch.undo()
    report = migrate(m, k, MigrateOptions(reader_process=True))
    assert report.phase == "done"
    assert digest(k) == digest(clean_k)


def test_the_reader_gets_its_urls_on_stdin_not_on_its_command_line(databases, monkeypatch):
    m, k = _sample(databases)
    commands: list[list[str]] = []
    real_popen = subprocess.Popen

    def recording_popen(args, *a, **kw):
        commands.append(list(args))
        return real_popen(args, *a, **kw)

    monkeypatch.setattr(background.subprocess, "Popen", recording_popen)
    migrate(m, k, MigrateOptions(reader_process=True))
    assert len(commands) == 1  # the reader really ran as a second process
    line = " ".join(commands[0])
    for url in (m, k):
        assert url not in line
        password = create_engine(url).url.password
        if password:
            assert password not in line


def test_mapped_rows_survive_the_pipe_unchanged(databases):
    m, k = _sample(databases)
    engine, kfp = create_engine(m), create_engine(k)
    with engine.connect() as conn, kfp.connect() as kconn:
        reader = MlmdReader(conn, kconn)
        runs = [run for page in reader.pages(0, None) for run in page]
        mapped = [map_run(bundle, MapOptions(multi_user=False)) for bundle in reader.read_contexts(runs)]
    engine.dispose()
    kfp.dispose()
    assert sum(len(r.tasks) for r in mapped) > 50 and any(r.ledger for r in mapped)
    assert pickle.loads(pickle.dumps(mapped, protocol=pickle.HIGHEST_PROTOCOL)) == mapped
