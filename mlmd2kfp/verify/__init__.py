"""`verify`: an independent parity check of MLMD against the migrated KFP tables (issue #5).

The expected side is read through `ml-metadata`'s API when it is installed (else a separate SQL
path, `source.SqlSource`), re-derived by `expect.py`, and compared run by run (`checks.py`). The
result is a `ParityReport`; it is recorded in the state table for `status --check`.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import bindparam, inspect, text

from ..background import PROCESS_MIN_RUNS, ChildIterator
from ..batching import batched, chunks
from ..bitmap import Bitmap
from ..console import mask_url
from ..db import in_memory, make_engine, parse_url
from ..dialects import dialect_for, max_value_bytes
from ..errors import ConfigError, MissingDependencyError, ToolkitError, UsageError
from ..migrate.gate import record_verify, verify_snapshot
from ..target.digest import is_tool_id, rows_digest, run_mark
from ..target.legacy import old_tasks_digest
from ..migrate.state import (CLEANED_UP, MAPPING_VERSION, Phase, cleaned_up_line, load_states, newer_mapping, runless_run_id,
                             source_label)
from .checks import CHECKS, RUN_STATE, TargetReader, compare_run
from .expect import STATE_NAME, expect_run, uid
from .report import Finding, ParityReport
from .source import ApiSource, SqlSource, enrich, expected_runless

__all__ = ["VerifyOptions", "run_verify", "ParityReport"]


@dataclass(frozen=True)
class VerifyOptions:
    """What `verify` checks and how it reads the source."""

    run_ids: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    multi_user: bool | None = None
    source_path: str = "auto"
    """`auto` (ml-metadata API when installed), `api` or `sql`."""
    record: bool = True
    source_process: bool | None = None
    """Read the expected side in a second process (mapping.md W12); None: only for stores of
    `PROCESS_MIN_RUNS` run contexts or more."""
    source_name: str | None = None
    """Which MLMD source's migration this store is (`--source-name`); None: the only one recorded."""


def _source(source_path: str, url: Any, conn: Any) -> Any:
    if source_path in ("auto", "api"):
        try:
            return ApiSource(url, fallback=SqlSource(conn))
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
    """Up to CHUNK_RUNS runs as the expected side reads them, with their MLMD event ids."""

    runs: list[Any]


@dataclass(frozen=True)
class SourceDone:
    """The expected side's last message: runs ml-metadata refused, read through SQL instead."""

    fallback_runs: tuple[str, ...]


CHUNK_RUNS = 200


def source_chunks(mlmd_url: str, source_path: str) -> Iterator[Any]:
    """The expected side's input, read on its own connection: `SourceInfo`, `SourceChunk`s, `SourceDone`.

    It runs in a second process (mapping.md W12) while this one reads the target and compares; a chunk
    of runs at a time, so memory stays flat as the store grows.
    """
    url = parse_url(mlmd_url, "MLMD")
    engine = make_engine(url, "MLMD", create_sqlite=False)
    try:
        with engine.connect() as conn:
            source = _source(source_path, url, conn)
            yield SourceInfo(source.name)
            for chunk in batched(source.runs(), CHUNK_RUNS):
                enrich(conn, chunk)
                yield SourceChunk(chunk)
            yield SourceDone(tuple(getattr(source, "fallback_runs", [])))
    finally:
        engine.dispose()


def run_verify(mlmd_url: str, kfp_url: str, options: VerifyOptions = VerifyOptions(),
               on_progress: Callable[[int, int], None] | None = None) -> ParityReport:
    """Check the migration; returns the report (exit code 0 or 1 is `report.exit_code`)."""
    m_url = parse_url(mlmd_url, "MLMD")
    mlmd_engine = make_engine(m_url, "MLMD", create_sqlite=False)
    kfp_engine = make_engine(kfp_url, "KFP", create_sqlite=False)
    feed: Iterator[Any] | None = None
    partial = bool(options.run_ids or options.namespaces)
    try:
        # no migrator or rollback may run now; the result is recorded only if none ran meanwhile
        snapshot = verify_snapshot(kfp_engine) if options.record else None
        with kfp_engine.connect() as kconn:
            names = set(inspect(kconn).get_table_names())
            state, others = _state(kconn, options.source_name)
            if state.get("phase") == CLEANED_UP:
                raise ToolkitError(f"verify: the {cleaned_up_line(state)}; the tool's ledger and the old `tasks` "
                                   "table are gone and KFP owns the data, so there is nothing left to compare (the "
                                   "startup gate stays open)")
            staged = state.get("phase") != Phase.DONE and state.get("staging_table") in names \
                and state.get("staging_table") != "tasks"
            tasks_table = str(state["staging_table"]) if staged else "tasks"
            missing = [t for t in (tasks_table, "artifacts", "artifact_tasks", "mlmd2kfp_ledger") if t not in names]
            if missing:
                raise ConfigError(f"the KFP database has no {', '.join(f'`{t}`' for t in missing)}: run "
                                  "`mlmd2kfp migrate` (or `migrate --stage-only`) before `verify`")
            target = TargetReader(kconn, tasks_table)
            multi = options.multi_user if options.multi_user is not None else bool(state.get("multi_user", 1))
            source_name = str(state.get("source_name") or "")
            limit = max_value_bytes(kconn)
            if in_memory(mlmd_url) or not _use_process(options.source_process, mlmd_url):
                feed = source_chunks(mlmd_url, options.source_path)
            else:
                feed = iter(ChildIterator("mlmd2kfp.verify:source_chunks", (mlmd_url, options.source_path),
                                          what="source reader process", advice="nothing was written: rerun `mlmd2kfp verify`"))
            info = next(feed)
            report = ParityReport(mask_url(mlmd_url), mask_url(kfp_url), info.name,
                                  "multi-user" if multi else "single-user", MAPPING_VERSION)
            report.scope = "partial" if partial else "whole"
            report.phase = f"staged in `{tasks_table}` (before cutover)" if staged else (
                "after cutover" if state.get("phase") == Phase.DONE else f"phase `{state.get('phase', 'unknown')}`")
            for name, description in CHECKS.items():
                report.check(name, description, blocking=name != "run-state")
            wrong_mode, examples = _runs_against_mode(kconn, target, multi)
            if wrong_mode:  # the mode re-derived from the data too (issue #27 item 5): reported, a forced mode is legal
                report.fail(Finding("run-state", "", f"install mode ({wrong_mode} run(s) in run_details "
                                    f"{'without' if multi else 'with'} a namespace, e.g. run {examples[0]})", "mode",
                                    "single-user" if multi else "multi-user", report.mode))
            written = str(state.get("mapping_version") or MAPPING_VERSION)
            if written != MAPPING_VERSION:  # the rows below differ for that reason: say the one thing to do
                advice = ("use the mlmd2kfp release that wrote it" if newer_mapping(written) else
                          "rerun `mlmd2kfp migrate`, which rewrites every run")
                report.fail(Finding("coverage", "", f"the migration (written with mapping version {written}; "
                                    f"{advice})", "mapping version", MAPPING_VERSION, written))
            specs: dict[str, Any] = {}
            counts: dict[str, Counter[Any]] = {"expected": Counter(), "found": Counter()}
            seen_runs: set[str] = set()
            seen_artifacts: dict[str, Bitmap] = {}  # per namespace, a bit per MLMD artifact id
            linked = Bitmap()
            old = "tasks_pre_migration" if "tasks_pre_migration" in names else ("tasks" if staged and "tasks" in names
                                                                               else None)
            total = int(kconn.execute(text("SELECT COUNT(*) FROM run_details")).scalar() or 0)
            fallback: tuple[str, ...] = ()
            # the gate opened on this source's rows once (docs/mapping.md W15); staged rows no KFP can touch
            opened = state.get("gate_opened_at") is not None
            after_cutover = tasks_table == "tasks"
            owned_artifacts: set[str] = set()
            for item in feed:
                if isinstance(item, SourceDone):
                    fallback = item.fallback_runs
                    continue
                chunk = item.runs
                runs = _runs(kconn, target, [src.run_id for src in chunk])
                target.prefetch([src.run_id for src in chunk])
                recorded = _written(kconn, [src.run_id for src in chunk])
                fingerprints: dict[str, tuple[str, str]] = {}
                for src in chunk:
                    run = runs.get(src.run_id)
                    if options.run_ids and src.run_id not in options.run_ids:
                        continue
                    if options.namespaces and (run is None or run["namespace"] not in options.namespaces):
                        continue
                    seen_runs.add(src.run_id)
                    spec = _spec(kconn, target, run, specs)
                    exp = expect_run(src, run, spec, multi, source_name, limit)
                    owned = after_cutover and _kfp_owned(target, src.run_id, run, recorded.get(src.run_id), opened)
                    if owned:
                        owned_artifacts.update(exp.artifacts)
                    compare_run(report, src, exp, target, counts, seen_artifacts, kfp_owned=owned)
                    for artifact_id in exp.mlmd_artifacts:
                        linked.add(artifact_id)
                    fingerprints.update({str(k): v for k, v in exp.fingerprints.items()})
                    if run is not None and not exp.skip and not owned:
                        _run_state(report, kconn, target, src.run_id, run)
                    if on_progress:
                        on_progress(report.runs_checked, total)
                if old and fingerprints:
                    _cache_rows(report, kconn, target, old, fingerprints, [src.run_id for src in chunk])
            unknown = sorted(set(options.run_ids) - seen_runs)
            if unknown:  # a typo must not pass as "0 runs checked, PASSED" (issue #27 item 7)
                raise UsageError(f"--run {unknown[0]}: no MLMD run context has this id"
                                 + (f" (nor {len(unknown) - 1} other id(s) given)" if len(unknown) > 1 else "")
                                 + "; nothing was checked or recorded")
            if not partial:
                _global(report, kconn, target, seen_runs, counts, others, owned_artifacts)
                if state.get("phase") == Phase.DONE:  # after the cutover: the old `tasks` is aside
                    _rollback_copy(report, kconn, names)
                with mlmd_engine.connect() as mconn:
                    _global_ledger(report, mconn, target, linked, runless_run_id(source_name))
            if fallback:  # ml-metadata refused a value in these runs (mapping.md M17); read through SQL
                report.checks["coverage"].info["runs read through SQL (ml-metadata refused a value)"] = len(fallback)
            report.checks["lineage"].info["columns compared"] = dict(sorted(
                report.checks["lineage"].info.get("columns compared", {}).items()))
            kfp_rows = report.checks["coverage"].info.get("rows written by KFP, not checked")
            if kfp_rows is not None:
                report.checks["coverage"].info["rows written by KFP, not checked"] = dict(kfp_rows)
    finally:
        if feed is not None:
            feed.close()  # type: ignore[attr-defined]  # ends the source reader process now, not at collection
        kfp_engine.dispose()
        mlmd_engine.dispose()
    if options.record:
        record_engine = make_engine(kfp_url, "KFP", create_sqlite=False)
        try:
            report.not_recorded = record_verify(record_engine, report.passed, report.summary(), snapshot,
                                                source_name)
        finally:
            record_engine.dispose()
    return report


def _use_process(wanted: bool | None, mlmd_url: str) -> bool:
    if wanted is not None:
        return wanted
    engine = make_engine(parse_url(mlmd_url, "MLMD"), "MLMD", create_sqlite=False)
    try:
        with engine.connect() as conn:
            return SqlSource(conn).count_runs() >= PROCESS_MIN_RUNS
    finally:
        engine.dispose()


def _global_ledger(report: ParityReport, mconn: Any, target: TargetReader, linked: Bitmap, runless: str) -> None:
    """The run-less ledger rows, re-derived from MLMD with plain SQL (linear scans and bitmaps, no
    per-row subqueries): executions in no run context, artifacts no migrated run links or of v1 types,
    events whose execution row is missing, and v1 run contexts; against the ledger rows filed under the
    source's run-less id `runless`."""
    coverage = report.checks["coverage"]
    want = expected_runless(mconn, linked)
    found = {(str(r[0]), int(r[1]), str(r[2])) for r in target.conn.execute(text(
        "SELECT entity, mlmd_id, reason FROM mlmd2kfp_ledger WHERE run_uuid = :r"), {"r": runless})}
    coverage.checked += len(want)
    for entity, mlmd_id, reason in sorted(want - found, key=str):
        report.fail(Finding("coverage", "", f"{entity} {mlmd_id} (in no migrated run)", "ledger", reason, "missing"))
    for entity, mlmd_id, reason in sorted(found - want, key=str):
        report.fail(Finding("coverage", "", f"{entity} {mlmd_id} (in no migrated run)", "ledger", "no such entry",
                            reason))


def _state(conn: Any, source_name: str | None) -> tuple[dict[str, Any], list[str]]:
    """The state row of the source verified, and the other sources' names (their runs are theirs to check).

    Raises:
        ConfigError: several sources are recorded and `source_name` does not say which; no such source.
    """
    states = load_states(conn)
    names = [s.source_name for s in states]
    if source_name is None:
        if len(states) > 1:
            raise ConfigError(f"this KFP database holds the migrations of {len(states)} MLMD sources ("
                              + ", ".join(f"`{n}`" for n in names) + "); pass --source-name to say which one "
                              "this MLMD database is (`--source-name ''` for the default)")
        chosen = states[0] if states else None
    else:
        chosen = next((s for s in states if s.source_name == source_name), None)
        if chosen is None and states:
            raise ConfigError(f"no migration of {source_label(source_name)} is recorded in this KFP database "
                              "(recorded: " + ", ".join(f"`{n}`" for n in names) + "); run `mlmd2kfp migrate "
                              f"--source-name {source_name}` first, or pass the name it was migrated with")
    if chosen is None:
        return ({"source_name": source_name} if source_name else {}), []
    return dict(chosen.values), [n for n in names if n != chosen.source_name]


def _runs(conn: Any, t: TargetReader, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    q = t.q
    out: dict[str, dict[str, Any]] = {}
    if not run_ids:
        return out
    md5 = f"MD5(r.{q('PipelineSpecManifest')})" if dialect_for(conn).has_md5 else "NULL"
    sql = text(f"SELECT r.{q('UUID')} AS uuid, r.{q('Namespace')} AS namespace, r.{q('State')} AS state, "
               f"r.{q('Conditions')} AS conditions, r.{q('PipelineVersionId')} AS version, e.{q('Namespace')} AS ens, "
               f"r.{q('DisplayName')} AS display_name, r.{q('FinishedAtInSec')} AS finished_at, "
               f"{md5} AS manifest_md5 "
               f"FROM run_details r LEFT JOIN experiments e ON e.{q('UUID')} = r.{q('ExperimentUUID')} "
               f"WHERE r.{q('UUID')} IN :ids").bindparams(bindparam("ids", expanding=True))
    for r in conn.execute(sql, {"ids": run_ids}).mappings():
        out[r["uuid"]] = {"uuid": r["uuid"], "namespace": r["namespace"], "state": r["state"], "conditions": r["conditions"],
                          "experiment_namespace": r["ens"], "version": r["version"], "manifest_md5": r["manifest_md5"],
                          "display_name": r["display_name"], "finished_at": r["finished_at"]}
    return out


def _spec(conn: Any, t: TargetReader, run: dict[str, Any] | None, cache: dict[str, Any]) -> Any:
    if run is None:
        return None
    q = t.q
    digest = run.get("manifest_md5")  # computed by the server: the text is fetched once per distinct spec
    if digest and f"md5:{digest}" in cache:
        return cache[f"md5:{digest}"]
    manifest = conn.execute(text(f"SELECT {q('PipelineSpecManifest')} FROM run_details WHERE {q('UUID')} = :u"),
                            {"u": run["uuid"]}).scalar()
    if not manifest and run.get("version"):
        manifest = conn.execute(text(f"SELECT {q('PipelineSpec')} FROM pipeline_versions WHERE {q('UUID')} = :v"),
                                {"v": run["version"]}).scalar()
    if not manifest:
        return None
    key = hashlib.sha256(str(manifest).encode()).hexdigest()
    if key not in cache:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            docs = [d for d in yaml.load_all(str(manifest), Loader=loader) if isinstance(d, dict)]
        except yaml.YAMLError:  # text that is not YAML is no spec (ledger `no-spec`), as for a missing one
            docs = []
        spec = next((d.get("pipeline_spec") or d for d in docs if "root" in d or "pipeline_spec" in d), None)
        cache[key] = spec if isinstance(spec, dict) and isinstance(spec.get("root"), dict) else None
        if len(cache) > 256:
            cache.pop(next(iter(cache)))
    if digest:  # the server's MD5 of the manifest just parsed (NULL when the spec came from the version)
        cache[f"md5:{digest}"] = cache[key]
    return cache[key]


def _written(conn: Any, run_ids: list[str]) -> dict[str, tuple[str | None, str]]:
    """What the migrator recorded it wrote for these runs: (digest of the rows, `run_details` mark then); the
    digest is None for runs a release before it wrote. Runs not migrated are left out."""
    if "digest" not in {c["name"] for c in inspect(conn).get_columns("mlmd2kfp_runs")}:
        return {r: (None, "") for r in _migrated(conn, run_ids)}
    out: dict[str, tuple[str | None, str]] = {}
    sql = text("SELECT run_uuid, digest, run_mark FROM mlmd2kfp_runs WHERE run_uuid IN :ids") \
        .bindparams(bindparam("ids", expanding=True))
    for part in chunks(run_ids):
        for run_id, digest, mark in conn.execute(sql, {"ids": part}):
            out[run_id] = (digest, mark or "")
    return out


def _migrated(conn: Any, run_ids: list[str]) -> set[str]:
    sql = text("SELECT run_uuid FROM mlmd2kfp_runs WHERE run_uuid IN :ids").bindparams(bindparam("ids", expanding=True))
    return {r[0] for part in chunks(run_ids) for r in conn.execute(sql, {"ids": part})}


def _kfp_owned(target: TargetReader, run_id: str, run: dict[str, Any] | None, written: tuple[str | None, str] | None,
               opened: bool) -> bool:
    """The run's migrated rows were changed after they were written, by the new KFP: the gate had opened, KFP
    wrote rows of its own into the run, or `run_details` moved since (docs/mapping.md W15). Such a run is KFP's:
    counted, not compared. The record says only what was written; whether it was right was proven by the
    verify that opened the gate. A changed run nothing says KFP touched is compared, and fails as damage.
    Rows a release before the record wrote (no digest) are KFP's when KFP wrote rows of its own into the run."""
    if written is None or run is None:  # not migrated, or deleted since (its rows are then extra rows)
        return False
    tasks, links, _ = target.run_rows(run_id)
    kfp_wrote = any(not is_tool_id(r["UUID"]) for r in tasks + links)
    if written[0] is None:
        return kfp_wrote
    if rows_digest(tasks, links) == written[0]:
        return False
    if opened or kfp_wrote:
        return True
    mark = run_mark(None if run is None else {"State": run.get("state"), "Conditions": run.get("conditions"),
                                              "FinishedAtInSec": run.get("finished_at")})
    return mark != written[1]


def _run_state(report: ParityReport, conn: Any, t: TargetReader, run_id: str, run: dict[str, Any]) -> None:
    check = report.checks["run-state"]
    check.checked += 1
    root = t.root_state(run_id)
    want = RUN_STATE.get(str(run.get("state") or run.get("conditions") or "").upper())
    have = STATE_NAME.get(root)
    if want and have and want != have and not (want == "SUCCEEDED" and have == "CACHED"):
        report.fail(Finding("run-state", run_id, "ROOT task", "State", want, have))


def _runs_against_mode(conn: Any, t: TargetReader, multi: bool) -> tuple[int, list[str]]:
    """`run_details` rows whose namespace contradicts the mode verified in (empty in multi-user mode, set in
    single-user mode): how many, and the first ids (issue #27 item 5)."""
    q = t.q
    wrong = f"COALESCE({q('Namespace')}, '') {'=' if multi else '<>'} ''"
    n = int(conn.execute(text(f"SELECT COUNT(*) FROM run_details WHERE {wrong}")).scalar() or 0)
    first = [r[0] for r in conn.execute(text(f"SELECT {q('UUID')} FROM run_details WHERE {wrong} ORDER BY {q('UUID')}"))
             .fetchmany(3)] if n else []
    return n, first


def _rollback_copy(report: ParityReport, conn: Any, names: set[str]) -> None:
    """The old `tasks` the cutover moved aside (what rollback restores) still has the rows and digest the
    cutover recorded (issue #27 item 3)."""
    recorded = [s for s in load_states(conn) if s.old_tasks_digest]  # the table's, whichever source's row holds it
    if not recorded:
        return
    inv = report.checks["invariants"]
    inv.checked += 1
    want = f"{recorded[0].old_tasks_rows} row(s), digest {recorded[0].old_tasks_digest}"
    what = "`tasks_pre_migration` (the old tasks rollback restores)"
    if "tasks_pre_migration" not in names:
        report.fail(Finding("invariants", "", what, "rollback copy", want, "missing"))
        return
    rows, digest = old_tasks_digest(conn, "tasks_pre_migration")
    if (rows, digest) != (recorded[0].old_tasks_rows, recorded[0].old_tasks_digest):
        report.fail(Finding("invariants", "", what, "rollback copy", want, f"{rows} row(s), digest {digest}"))


def _global(report: ParityReport, conn: Any, t: TargetReader, seen: set[str], counts: dict[str, Counter[Any]],
            other_sources: list[str], owned_artifacts: set[str]) -> None:
    q = t.q
    tasks = q(t.tasks_table)
    v5 = "SUBSTR({}, 15, 1) = '5'"
    inv, coverage = report.checks["invariants"], report.checks["coverage"]
    queries = {
        "link → task of the same run": f"SELECT l.{q('UUID')} FROM artifact_tasks l WHERE NOT EXISTS (SELECT 1 FROM "
                                        f"{tasks} k WHERE k.{q('UUID')} = l.{q('TaskID')} AND k.{q('RunUUID')} = l.{q('RunUUID')})",
        "link → artifact": f"SELECT l.{q('UUID')} FROM artifact_tasks l WHERE NOT EXISTS (SELECT 1 FROM artifacts a "
                           f"WHERE a.{q('UUID')} = l.{q('ArtifactID')})",
        "task → run_details": f"SELECT k.{q('UUID')} FROM {tasks} k WHERE NOT EXISTS (SELECT 1 FROM run_details r "
                              f"WHERE r.{q('UUID')} = k.{q('RunUUID')})",
        # the unique index admits any number of NULLs (KFP's own rows may have none)
        "LogicalKey unique": f"SELECT {q('LogicalKey')} FROM {tasks} WHERE {q('LogicalKey')} IS NOT NULL "
                             f"GROUP BY {q('LogicalKey')} HAVING COUNT(*) > 1",
    }
    for what, sql in queries.items():
        inv.checked += 1
        for r in conn.execute(text(sql)).fetchmany(20):
            report.fail(Finding("invariants", "", f"row {r[0]}", what, "holds", "violated"))
    # tool-written rows no MLMD run accounts for (rows KFP wrote itself have version-4 ids and are not
    # checked); a run another source migrated is told by its ROOT task's id, derived under that source's name
    unseen = []
    for r in conn.execute(text(f"SELECT DISTINCT {q('RunUUID')} FROM {tasks} WHERE {v5.format(q('UUID'))}")):
        coverage.checked += 1
        if r[0] not in seen:
            unseen.append(r[0])
    elsewhere = _runs_of_other_sources(conn, t, unseen, other_sources)
    for run_id in unseen:
        if run_id not in elsewhere:
            report.fail(Finding("coverage", run_id, "tool-written tasks of this run", "extra rows",
                                "no MLMD run context", "present"))
    if elsewhere:
        coverage.info["runs of other sources, not checked"] = len(elsewhere)
    unlinked = 0
    for r in conn.execute(text(f"SELECT a.{q('UUID')} FROM artifacts a WHERE {v5.format('a.' + q('UUID'))} AND NOT "
                               f"EXISTS (SELECT 1 FROM artifact_tasks l WHERE l.{q('ArtifactID')} = a.{q('UUID')})"
                               )):
        if r[0] in owned_artifacts:  # its links were a run's that KFP changed since (a retry drops them)
            continue
        report.fail(Finding("coverage", "", f"artifact {r[0]}", "extra row", "no link of a migrated run uses it",
                            "present"))
        unlinked += 1
        if unlinked >= 50:
            break
    kfp = {name: int(conn.execute(text(f"SELECT COUNT(*) FROM {table} WHERE NOT {v5.format(q('UUID'))}")).scalar() or 0)
           for name, table in (("tasks", tasks), ("artifacts", "artifacts"), ("artifact_tasks", "artifact_tasks"))}
    coverage.info["rows written by KFP, not checked"] = {k: v for k, v in kfp.items() if v}
    counts_check = report.checks["counts"]
    keys = set(counts["expected"]) | set(counts["found"])
    for key in sorted(keys, key=str):
        counts_check.checked += 1
        if counts["expected"][key] != counts["found"][key]:
            report.fail(Finding("counts", "", " / ".join(map(str, key)), "rows", counts["expected"][key],
                                counts["found"][key]))
    counts_check.info = {"tasks per namespace": {(k[1] or "(no namespace)"): v for k, v in
                                                 sorted(counts["found"].items(), key=str) if k[0] == "tasks"}}
    cache = report.checks["cache"]
    sources = {str(r[0]): int(r[1]) for r in conn.execute(text(
        f"SELECT {q('Namespace')}, COUNT(*) FROM {tasks} WHERE {q('State')} = 2 AND {q('Fingerprint')} <> '' "
        f"GROUP BY {q('Namespace')}"))}
    cache.info = {"old cache rows agreeing": cache.info.get("old cache rows agreeing", 0),
                  "differing": cache.info.get("differing", 0), "cache sources per namespace": sources}


def _runs_of_other_sources(conn: Any, t: TargetReader, run_ids: list[str], sources: list[str]) -> set[str]:
    """Those of `run_ids` whose ROOT task carries the id another source's migration gives it."""
    out: set[str] = set()
    if not sources:
        return out
    q = t.q
    for part in chunks(run_ids):
        chunk = part
        rows = conn.execute(text(f"SELECT {q('RunUUID')}, {q('UUID')} FROM {q(t.tasks_table)} WHERE "
                                 f"{q('ParentTaskUUID')} IS NULL AND {q('RunUUID')} IN :ids")
                            .bindparams(bindparam("ids", expanding=True)), {"ids": chunk})
        for run_id, root in rows:
            if any(root == uid(f"task:{run_id}:ROOT:-", name) for name in sources):
                out.add(run_id)
    return out


def _cache_rows(report: ParityReport, conn: Any, t: TargetReader, old: str,
                fingerprints: dict[str, tuple[str, str]], run_ids: list[str]) -> None:
    """Old cache rows (population A) of these executions against the migrated tasks' fingerprints.

    The launcher writes a cache row under the run that executed it; selecting by the old table's indexed
    `RunUUID` as well keeps each query an index lookup (`MLMDExecutionID` has no index in KFP's table).
    """
    q = t.q
    cache = report.checks["cache"]
    cache.info.setdefault("old cache rows agreeing", 0)
    cache.info.setdefault("differing", 0)
    exec_ids = sorted(fingerprints)
    task_ids = sorted({task for task, _ in fingerprints.values()})
    by_task: dict[str, str] = {}
    for part in chunks(task_ids):
        for r in conn.execute(text(f"SELECT {q('UUID')}, {q('Fingerprint')} FROM {q(t.tasks_table)} WHERE {q('UUID')} IN :ids")
                              .bindparams(bindparam("ids", expanding=True)), {"ids": part}):
            by_task[r[0]] = r[1]
    for part in chunks(exec_ids):
        for exec_id, fingerprint in conn.execute(text(
                f"SELECT {q('MLMDExecutionID')}, {q('Fingerprint')} FROM {q(old)} WHERE {q('RunUUID')} IN :runs "
                f"AND {q('MLMDExecutionID')} IN :ids").bindparams(bindparam("runs", expanding=True),
                                                                   bindparam("ids", expanding=True)),
                {"runs": run_ids, "ids": part}):
            cache.checked += 1
            task = fingerprints[str(exec_id)][0]
            if by_task.get(task) == fingerprint:
                cache.info["old cache rows agreeing"] += 1
            else:
                cache.info["differing"] += 1
                report.fail(Finding("cache", "", f"task {task} (MLMD execution {exec_id})", "Fingerprint",
                                    fingerprint, by_task.get(task)))



