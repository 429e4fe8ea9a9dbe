"""`verify`: an independent parity check of MLMD against the migrated KFP tables (issue #5).

The expected side is read through `ml-metadata`'s API when it is installed (else a separate SQL
path, `source.SqlSource`), re-derived by `expect.py`, and compared run by run (`checks.py`), then over
the whole target (`global_checks.py`); the target is read with plain SQL (`target_reads.py`). The
result is a `ParityReport`; it is recorded in the state table for `status --check`.

Each database is given as a URL or as an engine of the caller's; an in-memory SQLite engine is read in
this process only (no reader process or ml-metadata connection could see it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, inspect, text
from sqlalchemy.engine import Connection

from ..background import PROCESS_MIN_RUNS, ChildIterator
from ..batching import batched
from ..bitmap import Bitmap
from ..db import in_memory, label, opened, url_of
from ..dialects import max_value_bytes
from ..errors import ConfigError, MissingDependencyError, ToolkitError, UsageError
from ..migrate.gate import record_verify, verify_snapshot
from ..migrate.state import (CLEANED_UP, MAPPING_VERSION, MigrationState, Phase, cleaned_up_line, newer_mapping,
                              runless_run_id)
from ..target.legacy import tasks_location
from ..target.old_cache import OldCacheRows
from .checks import CHECKS, check_cache_rows, check_run_state, compare_run
from .incremental import mlmd_unchanged, proofs_info, settle_chunk, start_proofs, take_unchanged
from .expect import ExpectedRun, expect_run
from .global_checks import check_rollback_copy, check_runless_ledger, check_whole_target
from .records import Proofs, end_chain
from .options import VerifyOptions
from .report import Finding, ParityReport
from .source import ApiSource, SourceRun, SqlSource, enrich
from .target_reads import (TargetReader, kfp_owned, pipeline_spec, run_details, runs_against_mode,
                           verified_state, written_records)

__all__ = ["VerifyOptions", "run_verify", "ParityReport", "check_mlmd"]


def _source(source_path: str, engine: Engine, conn: Connection) -> Any:
    """The read path `source_path` names: `api` (ml-metadata), `auto` (ml-metadata when installed and able to
    open the database), anything else SQL.

    Raises:
        UsageError: `api` on an in-memory SQLite database.
        ConfigError: `api` without the `ml-metadata` package.
    """
    if source_path not in ("auto", "api"):
        return SqlSource(conn)
    if in_memory(engine):  # ml-metadata opens a connection of its own, which would see another, empty database
        if source_path == "api":
            raise UsageError("--source api cannot read an in-memory SQLite MLMD database (ml-metadata opens a "
                             "connection of its own, which sees another, empty database); use --source sql")
        return SqlSource(conn)
    try:
        return ApiSource(engine.url, fallback=SqlSource(conn))
    except MissingDependencyError:
        if source_path == "api":
            raise ConfigError("--source api needs the `ml-metadata` package (the `mlmd` extra)") from None
    return SqlSource(conn)


@dataclass(frozen=True)
class SourceInfo:
    """The expected side's first message: which read path it uses."""

    name: str


@dataclass
class SourceChunk:
    """Up to CHUNK_RUNS runs as the expected side reads them, with their MLMD event ids; with a `Derivation`,
    also the expected rows of those selected, derived where they were read."""

    runs: list[Any]
    derived: dict[str, tuple[dict[str, Any] | None, ExpectedRun]] | None = None
    """By run id: its `run_details` row (None: the run has none) and its expected rows (selected runs only)."""


@dataclass(frozen=True)
class Derivation:
    """What the source reader process needs to derive the expected rows itself (issue #29 item 4: this
    process then only compares): the KFP database to read `run_details` and specs from, and the options the
    derivation takes."""

    kfp_url: str
    tasks_table: str
    multi: bool
    source_name: str
    value_limit: int | None
    run_ids: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()



def _selected(run_ids: tuple[str, ...], namespaces: tuple[str, ...], run_id: str, run: dict[str, Any] | None) -> bool:
    """The run is in the `--run`/`--namespace` subset (every run when none is given)."""
    if run_ids and run_id not in run_ids:
        return False
    return not (namespaces and (run is None or run["namespace"] not in namespaces))


@dataclass(frozen=True)
class SourceDone:
    """The expected side's last message: runs ml-metadata refused, read through SQL instead."""

    fallback_runs: tuple[str, ...]


CHUNK_RUNS = 200


def source_chunks(mlmd: str | Engine, source_path: str, derivation: Derivation | None = None,
                  only: set[int] | None = None) -> Iterator[Any]:
    """The expected side's input, read on its own connection: `SourceInfo`, `SourceChunk`s, `SourceDone`.

    It runs in a second process (mapping.md W12) while this one reads the target and compares; a chunk
    of runs at a time, so memory stays flat as the store grows. `mlmd` is a URL (what the second process
    gets) or an engine of this process's (left open). With a `derivation`, the expected rows are derived
    here too (the second process's share of the work), each chunk's from the `run_details` rows and specs it
    reads on a connection of its own to KFP. `only`: the run contexts of these ids (an incremental verify).
    """
    with opened(mlmd, "MLMD") as engine, engine.connect() as conn:
        source = _source(source_path, engine, conn)
        yield SourceInfo(source.name)
        chunks = _chunks(conn, source, only)
        if derivation is None:
            yield from chunks
        else:
            yield from _derived(chunks, derivation)
        yield SourceDone(tuple(getattr(source, "fallback_runs", [])))


def _chunks(conn: Connection, source: Any, only: set[int] | None) -> Iterator[SourceChunk]:
    for chunk in batched(source.runs(only), CHUNK_RUNS):
        enrich(conn, chunk)
        yield SourceChunk(chunk)


def _derived(chunks: Iterator[SourceChunk], derivation: Derivation) -> Iterator[SourceChunk]:
    """`chunks` with the expected rows of their selected runs (`SourceChunk.derived`)."""
    with opened(derivation.kfp_url, "KFP") as kfp, kfp.connect() as kconn:
        reader, specs = TargetReader(kconn, derivation.tasks_table), dict[str, Any]()
        for chunk in chunks:
            chunk.derived = _expected_rows(reader, chunk.runs, specs, derivation)
            kconn.rollback()  # no snapshot held open between chunks
            yield chunk


def run_verify(mlmd: str | Engine, kfp: str | Engine, options: VerifyOptions | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> ParityReport:
    """Check the migration; returns the report (exit code 0 or 1 is `report.exit_code`).

    Args:
        mlmd: the MLMD database: a URL (an existing SQLite file only), or an engine of the caller's, left open.
        kfp: the KFP database, the same way.
        options: what to check and how to read the source.
        on_progress: called after each run compared with (runs checked, runs in `run_details`).
    """
    options = options or VerifyOptions()
    with opened(mlmd, "MLMD") as mlmd_engine, opened(kfp, "KFP") as kfp_engine:
        # no migrator or rollback may run now; the result is recorded only if none ran meanwhile
        snapshot = verify_snapshot(kfp_engine) if options.record else None
        report, source_name, proofs = _verify(mlmd_engine, kfp_engine, options, on_progress,
                                              (label(mlmd), label(kfp)))
        if options.record:
            also = _records_writer(proofs, source_name, report.passed, _partial(options))
            report.not_recorded = record_verify(kfp_engine, report.passed, report.summary(), snapshot, source_name,
                                                also)
    return report


def check_mlmd(mlmd: str | Engine, kfp: str | Engine, source_name: str | None = None) -> tuple[bool, str]:
    """Whether MLMD still holds what the last verify compared (`status --check --mlmd-url`, issue #30): each
    run's MLMD mark against the per-run records; (holds, one line). A migration cleaned up left no records:
    KFP owns the data and MLMD is not read.

    Raises:
        ConfigError: several sources are recorded and `source_name` does not say which one MLMD is.
    """
    with opened(kfp, "KFP") as kfp_engine, kfp_engine.connect() as kconn:
        state, _ = verified_state(kconn, source_name)
        if state is None:
            return False, "no migration recorded in this KFP database (run `mlmd2kfp migrate`)"
        if state.phase == CLEANED_UP:
            return True, "MLMD not compared: the migration was cleaned up and KFP owns the data"
        with opened(mlmd, "MLMD") as mlmd_engine, mlmd_engine.connect() as mconn:
            return mlmd_unchanged(mconn, kconn, state)


def _records_writer(proofs: Proofs | None, source_name: str, passed: bool,
                    partial: bool) -> Callable[[Connection], None] | None:
    """What `record_verify` writes of the per-run records: this verify's; none for a `--run`/`--namespace`
    subset; a whole verify that could not hash ends the chain (the records describe an older verify)."""
    if proofs is not None:
        return lambda conn: proofs.write(conn, source_name, passed)
    return None if partial else (lambda conn: end_chain(conn, source_name))


@dataclass
class _Target:
    """The KFP database as verify finds it before comparing: the state row verified and where the rows are."""

    reader: TargetReader
    names: set[str]
    """The tables present."""
    state: MigrationState | None
    """The state row of the source verified (None: no migration is recorded)."""
    source_name: str
    other_sources: list[str]
    """The other MLMD sources migrated into this database (their runs are theirs to check)."""
    multi: bool
    """Verified in multi-user mode."""
    value_limit: int | None
    """The largest value the target server accepts, in bytes (`max_value_bytes`); None: no practical limit."""
    total_runs: int
    """Rows of `run_details` (the progress total)."""
    old_cache: OldCacheRows | None = None
    """The old table's cache rows, read when the first chunk compares them (at the start with records)."""
    proofs: Proofs | None = None
    """What this verify records per run (None: nothing, for a `--run`/`--namespace` subset or a database that
    cannot hash)."""
    mlmd_conn: Connection | None = None
    """This process's connection to MLMD, for the marks read after each chunk."""
    rollback_copy: tuple[int, str] | None = None
    """The rollback copy's rows and digest, when the scan that read the old cache rows computed them."""

    @property
    def conn(self) -> Connection:
        return self.reader.conn

    @property
    def tasks_table(self) -> str:
        return self.reader.tasks_table

    @property
    def staged(self) -> bool:
        """Before the cutover: the migrated tasks wait in the staging table."""
        return self.tasks_table != "tasks"

    @property
    def old_tasks(self) -> str | None:
        """The old `tasks` table (its cache rows are compared), wherever it is now."""
        if "tasks_pre_migration" in self.names:
            return "tasks_pre_migration"
        return "tasks" if self.staged and "tasks" in self.names else None

    @property
    def phase(self) -> str | None:
        return self.state.phase if self.state else None


def _open_target(conn: Connection, options: VerifyOptions) -> _Target:
    """The target to verify, as `_Target`.

    Raises:
        ToolkitError: the migration was cleaned up (nothing is left to compare).
        ConfigError: the migrated tables are not there; the source verified is not clear (`verified_state`).
    """
    names = set(inspect(conn).get_table_names())
    state, others = verified_state(conn, options.source_name)
    if state is not None and state.phase == CLEANED_UP:
        raise ToolkitError(f"verify: the {cleaned_up_line(state)}; the tool's ledger and the old `tasks` "
                           "table are gone and KFP owns the data, so there is nothing left to compare (the "
                           "startup gate stays open)")
    tasks_table = tasks_location(conn)
    missing = [t for t in (tasks_table, "artifacts", "artifact_tasks", "mlmd2kfp_ledger") if t not in names]
    if missing:
        raise ConfigError(f"the KFP database has no {', '.join(f'`{t}`' for t in missing)}: run "
                          "`mlmd2kfp migrate` (or `migrate --stage-only`) before `verify`")
    multi = options.multi_user if options.multi_user is not None else bool(state.multi_user if state else 1)
    total = int(conn.execute(text("SELECT COUNT(*) FROM run_details")).scalar() or 0)
    source_name = state.source_name if state else options.source_name or ""
    return _Target(TargetReader(conn, tasks_table), names, state, source_name, others, multi, max_value_bytes(conn),
                   total)


@dataclass
class _Gathered:
    """What the runs compared leave for the checks over the whole target."""

    counts: dict[str, Counter[Any]] = field(default_factory=lambda: {"expected": Counter(), "found": Counter()})
    """Rows per table and namespace, tasks per type and state: expected and found."""
    seen_runs: set[str] = field(default_factory=set)
    seen_artifacts: dict[str, Bitmap] = field(default_factory=dict)
    """Per namespace, a bit per MLMD artifact id compared (each artifact row is compared once)."""
    linked: Bitmap = field(default_factory=Bitmap)
    """MLMD artifacts the runs compared link (the others are the run-less ledger's)."""
    owned_artifacts: set[str] = field(default_factory=set)
    """Artifacts of runs KFP changed since the migration (their links may be gone)."""
    specs: dict[str, Any] = field(default_factory=dict)
    """Parsed pipeline specs (`pipeline_spec`'s cache)."""
    fallback: tuple[str, ...] = ()
    """Runs ml-metadata refused, read through SQL instead."""


def _verify(mlmd_engine: Engine, kfp_engine: Engine, options: VerifyOptions,
            on_progress: Callable[[int, int], None] | None,
            shown: tuple[str, str]) -> tuple[ParityReport, str, Proofs | None]:
    """The comparison on one connection to KFP: the target's state, the source's runs a chunk at a time (every
    run, or what changed since the records), then the checks over the whole target. Returns the report, the
    name of the source verified and the per-run records to write."""
    with kfp_engine.connect() as kconn, mlmd_engine.connect() as mconn:
        target = _open_target(kconn, options)
        target.mlmd_conn = mconn
        if not _partial(options):
            target.proofs = start_proofs(target, options.full)
        gathered = _Gathered()
        if target.proofs is not None and target.proofs.compare is not None:
            take_unchanged(target.proofs, gathered.seen_runs, gathered.linked)
        with _source_feed(mlmd_engine, kfp_engine, target, options) as feed:
            report = _new_report(shown, next(feed), target, options)
            _check_preliminaries(report, target)
            for item in feed:
                if isinstance(item, SourceDone):
                    gathered.fallback = item.fallback_runs
                else:
                    _compare_chunk(report, target, item, gathered, options, on_progress)
        _refuse_unknown_runs(options, gathered.seen_runs)
        if not _partial(options):
            _check_whole_target(report, target, gathered, mlmd_engine)
        _settle_info(report, gathered.fallback, target.proofs)
    return report, target.source_name, target.proofs


def _partial(options: VerifyOptions) -> bool:
    return bool(options.run_ids or options.namespaces)


@contextmanager
def _source_feed(engine: Engine, kfp_engine: Engine, target: _Target, options: VerifyOptions) -> Iterator[Iterator[Any]]:
    """The expected side's messages (`source_chunks`), read in a second process on large stores (never for an
    in-memory database, which only this process sees), which then derives the expected rows too; stopped when
    the block ends."""
    only = target.proofs.compare if target.proofs is not None else None
    if in_memory(engine) or in_memory(kfp_engine) or not _use_process(options.source_process, engine):
        feed = source_chunks(engine, options.source_path, None, only)
    else:
        derivation = Derivation(url_of(kfp_engine), target.tasks_table, target.multi, target.source_name,
                                target.value_limit, options.run_ids, options.namespaces)
        feed = iter(ChildIterator("mlmd2kfp.verify:source_chunks", (url_of(engine), options.source_path, derivation, only),
                                  what="source reader process", advice="nothing was written: rerun `mlmd2kfp verify`"))
    try:
        yield feed
    finally:
        feed.close()  # type: ignore[attr-defined]  # ends the source reader process now, not at collection


def _use_process(wanted: bool | None, engine: Engine) -> bool:
    if wanted is not None:
        return wanted
    with engine.connect() as conn:
        return SqlSource(conn).count_runs() >= PROCESS_MIN_RUNS


def _new_report(shown: tuple[str, str], source: SourceInfo, target: _Target, options: VerifyOptions) -> ParityReport:
    """The report, with what was verified, where, and every check still empty."""
    report = ParityReport(shown[0], shown[1], source.name, "multi-user" if target.multi else "single-user",
                          MAPPING_VERSION)
    report.scope = "partial" if _partial(options) else "whole"
    if target.proofs is not None:
        report.kind, report.chain = target.proofs.kind, target.proofs.chain
    phase = target.phase
    report.phase = f"staged in `{target.tasks_table}` (before cutover)" if target.staged else (
        "after cutover" if phase == Phase.DONE else f"phase `{phase or 'unknown'}`")
    for name, description in CHECKS.items():
        report.check(name, description, blocking=name != "run-state")
    return report


def _check_preliminaries(report: ParityReport, target: _Target) -> None:
    """Before any run: the install mode the data says, and the mapping version the rows were written with."""
    multi = target.multi
    wrong_mode, examples = runs_against_mode(target.reader, multi)
    if wrong_mode:  # the mode re-derived from the data too (issue #27 item 5): reported, a forced mode is legal
        report.fail(Finding("run-state", "", f"install mode ({wrong_mode} run(s) in run_details "
                            f"{'without' if multi else 'with'} a namespace, e.g. run {examples[0]})", "mode",
                            "single-user" if multi else "multi-user", report.mode))
    written = str((target.state.mapping_version if target.state else None) or MAPPING_VERSION)
    if written != MAPPING_VERSION:  # the rows below differ for that reason: say the one thing to do
        advice = ("use the mlmd2kfp release that wrote it" if newer_mapping(written) else
                  "rerun `mlmd2kfp migrate`, which rewrites every run")
        report.fail(Finding("coverage", "", f"the migration (written with mapping version {written}; "
                            f"{advice})", "mapping version", MAPPING_VERSION, written))


def _compare_chunk(report: ParityReport, target: _Target, item: SourceChunk, gathered: _Gathered,
                   options: VerifyOptions, on_progress: Callable[[int, int], None] | None) -> None:
    """A chunk of source runs: those selected compared with their target rows (expected rows derived here
    unless the source reader derived them), then the old cache rows of their executions."""
    chunk = item.runs
    run_ids = [src.run_id for src in chunk]
    derived = item.derived if item.derived is not None else _derive(target, chunk, gathered, options)
    target.reader.prefetch(run_ids)
    recorded = written_records(target.conn, run_ids)
    fingerprints: list[tuple[str, str, str]] = []  # (MLMD execution id, task id, run id)
    linked: dict[int, set[int] | None] = {}
    for src in chunk:
        if src.run_id not in derived:  # not selected (`--run`, `--namespace`)
            continue
        run, exp = derived[src.run_id]
        mine = _compare_one(report, target, gathered, src, run, exp, recorded.get(src.run_id))
        linked[src.context_id] = exp.mlmd_artifacts if mine else None  # a run KFP owns: compared each time
        fingerprints += [(str(k), task, src.run_id) for k, (task, _) in exp.fingerprints.items()]
        if on_progress:
            on_progress(report.runs_checked, target.total_runs)
    if target.old_tasks and fingerprints:
        if target.old_cache is None:  # read once, when the first chunk needs it
            target.old_cache = OldCacheRows.read(target.conn, target.old_tasks)
        check_cache_rows(report, target.reader, target.old_cache, target.old_tasks, fingerprints)
    if target.proofs is not None and target.mlmd_conn is not None:
        settle_chunk(target.proofs, target.mlmd_conn, target.conn, target.tasks_table, linked)


def _derive(target: _Target, chunk: list[SourceRun], gathered: _Gathered,
            options: VerifyOptions) -> dict[str, tuple[dict[str, Any] | None, ExpectedRun]]:
    """The expected rows of the chunk's selected runs, derived in this process (`SourceChunk.derived`)."""
    here = Derivation("", target.tasks_table, target.multi, target.source_name, target.value_limit,
                      options.run_ids, options.namespaces)  # no URL: this process's own connection reads
    return _expected_rows(target.reader, chunk, gathered.specs, here)


def _expected_rows(reader: TargetReader, chunk: list[SourceRun], specs: dict[str, Any],
                   derivation: Derivation) -> dict[str, tuple[dict[str, Any] | None, ExpectedRun]]:
    """By run id, the `run_details` row and the expected rows of the chunk's selected runs: the one derivation
    loop, in the source process (`_derived`) or in this one (`_derive`)."""
    runs = run_details(reader, [src.run_id for src in chunk])
    out = {}
    for src in chunk:
        run = runs.get(src.run_id)
        if _selected(derivation.run_ids, derivation.namespaces, src.run_id, run):
            spec = pipeline_spec(reader, run, specs)
            out[src.run_id] = (run, expect_run(src, run, spec, derivation.multi, derivation.source_name,
                                               derivation.value_limit))
    return out


def _compare_one(report: ParityReport, target: _Target, gathered: _Gathered, src: SourceRun,
                 run: dict[str, Any] | None, exp: ExpectedRun, written: tuple[str | None, str] | None) -> bool:
    """One run: its expected rows compared (only counted when KFP owns it now); returns whether the tool's
    rows were compared (not a run KFP owns now)."""
    gathered.seen_runs.add(src.run_id)
    # the gate opened on this source's rows once (docs/mapping.md W15); staged rows no KFP can touch
    owned = not target.staged and kfp_owned(target.reader, src.run_id, run, written,
                                            target.state is not None and target.state.gate_opened_at is not None)
    if owned:
        gathered.owned_artifacts.update(exp.artifacts)
    compare_run(report, src, exp, target.reader, gathered.counts, gathered.seen_artifacts, kfp_owned=owned)
    for artifact_id in exp.mlmd_artifacts:
        gathered.linked.add(artifact_id)
    if run is not None and not exp.skip and not owned:
        check_run_state(report, target.reader, src.run_id, run)
    return not owned


def _refuse_unknown_runs(options: VerifyOptions, seen_runs: set[str]) -> None:
    """A typo must not pass as "0 runs checked, PASSED" (issue #27 item 7).

    Raises:
        UsageError: a `--run` id no MLMD run context has.
    """
    unknown = sorted(set(options.run_ids) - seen_runs)
    if unknown:
        raise UsageError(f"--run {unknown[0]}: no MLMD run context has this id"
                         + (f" (nor {len(unknown) - 1} other id(s) given)" if len(unknown) > 1 else "")
                         + "; nothing was checked or recorded")


def _check_whole_target(report: ParityReport, target: _Target, gathered: _Gathered, mlmd_engine: Engine) -> None:
    check_whole_target(report, target.reader, gathered.seen_runs, gathered.counts, target.other_sources,
                       gathered.owned_artifacts)
    if target.phase == Phase.DONE:  # after the cutover: the old `tasks` is aside
        check_rollback_copy(report, target.conn, target.names, target.rollback_copy)
    with mlmd_engine.connect() as mconn:
        check_runless_ledger(report, mconn, target.reader, gathered.linked, runless_run_id(target.source_name))


def _settle_info(report: ParityReport, fallback: tuple[str, ...], proofs: Proofs | None) -> None:
    """The report's info as it is shown: counters as plain, sorted dicts; what the per-run records covered."""
    if proofs is not None:
        report.checks["coverage"].info.update(proofs_info(proofs))
    if fallback:  # ml-metadata refused a value in these runs (mapping.md M17); read through SQL
        report.checks["coverage"].info["runs read through SQL (ml-metadata refused a value)"] = len(fallback)
    report.checks["lineage"].info["columns compared"] = dict(sorted(
        report.checks["lineage"].info.get("columns compared", {}).items()))
    kfp_rows = report.checks["coverage"].info.get("rows written by KFP, not checked")
    if kfp_rows is not None:
        report.checks["coverage"].info["rows written by KFP, not checked"] = dict(kfp_rows)
