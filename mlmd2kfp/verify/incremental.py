"""Which runs a verify compares in full, and what it records of them (issue #30; `records.py`)."""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.engine import Connection

from ..migrate.state import MigrationState, Phase, source_option
from ..target.legacy import old_tasks_scan
from ..target.old_cache import OldCacheRows
from ..target.schema import PRE_MIGRATION_TABLE
from .global_checks import recorded_copy
from .marks import run_marks
from .records import FULL, INCREMENTAL, Proofs, RunProof, chain_of, derivation, load_records, target_sums


class _Target(Protocol):
    """What these functions read of verify's target (`verify._Target`)."""

    state: MigrationState | None
    source_name: str
    multi: bool
    value_limit: int | None
    old_cache: OldCacheRows | None
    mlmd_conn: Connection | None
    total_runs: int
    rollback_copy: tuple[int, str] | None

    @property
    def conn(self) -> Connection: ...

    @property
    def tasks_table(self) -> str: ...

    @property
    def old_tasks(self) -> str | None: ...

    @property
    def phase(self) -> str | None: ...


def start_proofs(target: _Target, full: bool) -> Proofs | None:
    """Every run's MLMD mark and target sums before comparing, and, unless `full`, the chain's records: what
    decides which runs are compared in full. None when the target database cannot hash (then every run is
    compared and nothing is recorded)."""
    assert target.mlmd_conn is not None
    marks = run_marks(target.mlmd_conn)
    old_parts = None
    if target.old_tasks:  # the cache rows compared are those of this one read (`check_cache_rows`)
        target.old_cache = _read_old_table(target, target.old_tasks)
        old_parts = target.old_cache.by_run()
    sums = target_sums(target.conn, target.tasks_table, [run for run, _ in marks.values()], old_parts, every_run=True)
    if sums is None:
        return None
    before = {c: RunProof(c, run, mark, sums[run]) for c, (run, mark) in marks.items()}
    wanted = derivation(target.multi, target.value_limit)
    chain = None if full else chain_of(target.state, wanted)
    if chain is None:
        return Proofs(FULL, before, wanted, old_parts=old_parts)
    proofs = Proofs(INCREMENTAL, before, wanted, load_records(target.conn, target.source_name, chain), chain,
                    old_parts)
    target.total_runs = len(proofs.compare or ())
    return proofs


def _read_old_table(target: _Target, table: str) -> OldCacheRows:
    """The old table's cache rows; after the cutover, with the rollback copy's rows and digest from the same
    scan (`target.rollback_copy`, for `check_rollback_copy`): one read of the table instead of two."""
    recorded = recorded_copy(target.conn) if target.phase == Phase.DONE and table == PRE_MIGRATION_TABLE else None
    scan = old_tasks_scan(target.conn, table, recorded.old_tasks_digest) if recorded and recorded.old_tasks_digest \
        else None
    if scan is None:
        return OldCacheRows.read(target.conn, table)
    rows, digest, cache = scan
    target.rollback_copy = (rows, digest)
    return cache


def take_unchanged(proofs: Proofs, seen_runs: set[str], linked: Any) -> None:
    """The runs an incremental verify takes as proven by their records: seen (no tool row of theirs is
    extra) and their MLMD artifacts linked (none of them belongs in the run-less ledger)."""
    for proof in proofs.unchanged():
        seen_runs.add(proof.run_id)
        for artifact_id in proof.artifacts:
            linked.add(artifact_id)


def settle_chunk(proofs: Proofs, mconn: Connection, kconn: Connection, tasks_table: str,
                 linked: dict[int, set[int] | None]) -> None:
    """The runs of a chunk just compared (`linked`: their MLMD artifacts, by run context; None for a run KFP
    owns now), read again on fresh snapshots of both databases: those read alike before and after are proven
    (`Proofs.settle`)."""
    if not linked:
        return
    for conn in (mconn, kconn):
        if conn.in_transaction():
            conn.rollback()  # a REPEATABLE READ snapshot would repeat what was read before
    marks = run_marks(mconn, linked)
    sums = target_sums(kconn, tasks_table, [run for run, _ in marks.values()], proofs.old_parts) or {}
    after = {c: RunProof(c, run, mark, sums.get(run, "")) for c, (run, mark) in marks.items()}
    proofs.settle(after, linked)


def proofs_info(proofs: Proofs) -> dict[str, Any]:
    """The report's account of what the records covered."""
    info: dict[str, Any] = {"verify kind": proofs.kind}
    if proofs.compare is not None:
        gone = sum(1 for c in proofs.records if c not in proofs.before)
        info["runs unchanged since their record (sums and mark recomputed, not re-derived)"] = len(proofs.unchanged())
        info["runs compared in full (changed, added, or without a record)"] = len(proofs.compare)
        if gone:
            info["runs recorded before and gone from MLMD"] = gone
    if proofs.moved:
        info["runs that changed while verify read them (compared again next time)"] = proofs.moved
    return info


SHOWN = 5
"""Runs a changed-MLMD line names at most."""


def mlmd_unchanged(mconn: Connection, kconn: Connection, state: MigrationState) -> tuple[bool, str]:
    """Whether MLMD still holds what the last verify of `state`'s source compared: every run's mark against
    its record (`status --check --mlmd-url`); (holds, one line saying what was compared or what changed)."""
    chain = chain_of(state, {})  # whatever derived them, the records hold the MLMD marks verify compared
    if chain is None:
        return False, ("the last verify left no per-run records to compare MLMD with; run `mlmd2kfp verify --full"
                       f"{source_option(state)}`")
    records, marks = load_records(kconn, state.source_name, chain), run_marks(mconn)
    changed = sorted(run for c, (run, mark) in marks.items() if c not in records or records[c].mark != mark)
    gone = sorted(r.run_id for c, r in records.items() if c not in marks)
    if not changed and not gone:
        return True, f"MLMD unchanged since the last verify ({len(marks)} runs compared)"
    named = ", ".join(f"run {r}" for r in (changed + gone)[:SHOWN])
    more = len(changed) + len(gone) - SHOWN
    return False, (f"MLMD changed since the last verify: {len(changed)} run(s) changed or added, {len(gone)} gone "
                   f"({named}{f', and {more} more' if more > 0 else ''}); run `mlmd2kfp migrate{source_option(state)}`, "
                   f"then `mlmd2kfp verify{source_option(state)}`")

