"""The startup gate (mapping.md §8): what a verify records and when `status --check` opens.

Verify runs only while no migrator or rollback does, and records its result only if none ran while it
was reading; the gate opens only on a whole, post-cutover, passing verify with no write since.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ..errors import LockHeldError
from .lock import MigrationLock
from .state import (CLEANED_UP, KEPT_RUNS, MAPPING_VERSION, STATE, MigrationState, Phase, VerifyRecord, cleaned_up_line,
                    load_state, load_states, newer_mapping, source_label, source_option, update_state, upgrade_tool_tables)


def gate(states: list[MigrationState]) -> tuple[bool, str]:
    """The startup gate over the state rows of every source: (passed, one line saying why and what to run
    next).

    Open only when every source's migration that is not rolled back (at least one) finished and its last
    verify passed, covered every run (not a `--run`/`--namespace` subset) and ran after the cutover, with
    no `migrate` since."""
    if not states:
        return False, "no migration recorded in this KFP database (run `mlmd2kfp migrate`)"
    several = len(states) > 1
    for s in states:  # its kept rows are unverified and `cleanup` would leave them with no way back
        if s.phase == Phase.ROLLED_BACK and s.status == KEPT_RUNS:
            return False, ((f"{source_label(s.source_name)}: " if several else "")
                           + "the migration was rolled back but keeps the runs KFP wrote into (rollback named "
                           f"them): delete those runs in KFP, then run `mlmd2kfp rollback --yes{source_option(s)}` again")
    live = [s for s in states if s.phase != Phase.ROLLED_BACK]
    if not live:
        return False, "the migration was rolled back (run `mlmd2kfp migrate` to migrate again)"
    whys = []
    for s in live:
        passed, why = _gate_one(s, source_option(s))
        if not passed:
            return False, (f"{source_label(s.source_name)}: {why}" if several else why)
        whys.append(why)
    if len(live) > 1:
        done = "cleaned up" if all(s.phase == CLEANED_UP for s in live) else "verified"
        return True, f"migration finished and {done} for each of the {len(live)} sources"
    return True, whys[0]


def _gate_one(s: MigrationState, option: str) -> tuple[bool, str]:
    if s.phase == CLEANED_UP:  # verified before its cleanup; KFP owns the data since (issue #27)
        return True, cleaned_up_line(s)
    if newer_mapping(str(s.mapping_version)):
        return False, (f"the migration was written with mapping version {s.mapping_version}, which this "
                       f"mlmd2kfp (mapping version {MAPPING_VERSION}) does not know: run the gate of the release that "
                       "wrote it")
    if s.mapping_version != MAPPING_VERSION:  # verified or not, its rows are another version's
        return False, (f"the migration was written with mapping version {s.mapping_version}; this mlmd2kfp "
                       f"writes mapping version {MAPPING_VERSION}: rerun `mlmd2kfp migrate{option}` (it rewrites every "
                       f"run, under this version's ids), then `mlmd2kfp verify{option}`")
    if s.phase != Phase.DONE:
        return False, (f"migration not finished: phase `{s.phase}`, status `{s.status}` (run `mlmd2kfp migrate"
                       f"{option}` without --stage-only to finish it)")
    return _verified(s.verify, option)


def _verified(record: VerifyRecord, option: str) -> tuple[bool, str]:
    """A finished migration's gate: what its last verify recorded."""
    if record.passed is None:
        if record.invalidated:
            why = record.invalidated
            return False, f"the last verify no longer holds: {why}" + (
                "" if "mlmd2kfp verify" in why else f"; run `mlmd2kfp verify{option}`")
        return False, f"migration finished but not verified (run `mlmd2kfp verify{option}`)"
    if not record.passed:
        return False, ("the last `mlmd2kfp verify` found differences (see its report; fix them, rerun "
                       f"`mlmd2kfp migrate{option}`, then `mlmd2kfp verify{option}`)")
    if record.scope == "partial":
        return False, (f"the last verify checked only some runs (`--run`/`--namespace`); run `mlmd2kfp verify{option}` "
                       "without them")
    if record.kind == "incremental" and record.chain_mapping_version != MAPPING_VERSION:
        return False, (f"the last verify was incremental and chains to no full verify of mapping version "
                       f"{MAPPING_VERSION}; run `mlmd2kfp verify --full{option}`")
    if record.phase != "after cutover":
        return False, f"the last verify ran before the cutover finished; run `mlmd2kfp verify{option}` again"
    return True, "migration finished and verified"


_WRITES = ("pass_number", "phase", "status", "last_context_id", "runs_migrated", "tasks", "links", "updated_at",
           "finished_at")
"""State fields every `migrate` or `rollback` changes: verify records its result only if none moved."""


def _writes(states: list[MigrationState]) -> tuple[Any, ...]:
    return tuple((s.id, *(getattr(s, k) for k in _WRITES)) for s in states)


def verify_snapshot(engine: Any) -> tuple[Any, ...] | None:
    """Before verify reads: what the state rows say now, for `record_verify` to see whether a `migrate` or
    `rollback` of any source ran meanwhile (another source's cutover moves the tables verify reads).

    Raises:
        LockHeldError: a migrator or rollback is running now.
    """
    with MigrationLock(engine, "migration"):
        with engine.begin() as conn:
            upgrade_tool_tables(conn)
        with engine.connect() as conn:
            states = load_states(conn)
    return _writes(states) if states else None


NOT_RECORDED = ("`mlmd2kfp migrate` or `rollback` wrote to the KFP database while verify was reading (or is "
                "running now), so its result describes no single state and was not recorded; run "
                "`mlmd2kfp verify` again once nothing else runs")


def record_verify(engine: Any, passed: bool, summary: dict[str, Any], snapshot: tuple[Any, ...] | None,
                  source_name: str = "", also: Callable[[Connection], None] | None = None) -> str | None:
    """Store a verify result in the source's state row (what `status --check` reads), under the migration lock so
    that no `migrate` can start between the comparison with `snapshot` and the write.

    `also` writes verify's per-run records in the same transaction (only when the result is recorded).

    Returns:
        None when recorded; else the line saying why not (a `migrate` or `rollback` wrote while verify was
        reading: the state then says the last verify no longer holds; or one holds the lock now: it
        invalidates the last verify itself when it writes).
    """
    try:
        with MigrationLock(engine, "migration"):
            return _record_locked(engine, passed, summary, snapshot, source_name, also)
    except LockHeldError:
        return NOT_RECORDED


def _record_locked(engine: Any, passed: bool, summary: dict[str, Any], snapshot: tuple[Any, ...] | None,
                   source_name: str, also: Callable[[Connection], None] | None) -> str | None:
    with engine.begin() as conn:
        if STATE.name not in inspect(conn).get_table_names():
            return None
        state = load_state(conn, source_name)
        if state is None:
            return None
        keep = {"updated_at": state.updated_at}  # verify's own write is not one `_WRITES` watches
        if snapshot is not None and _writes(load_states(conn)) != snapshot:
            update_state(conn, source_name, verify_passed=None, verify_at=int(time.time()),
                         verify_result=json.dumps({"invalidated": NOT_RECORDED}), **keep)
            return NOT_RECORDED
        update_state(conn, source_name, verify_passed=int(passed), verify_at=int(time.time()),
                     verify_result=json.dumps(summary, sort_keys=True)[:60000], **keep)
        if also is not None:
            also(conn)
        states = load_states(conn)
        if gate(states)[0]:  # from now on the new KFP may start and write (mapping.md W15)
            now = int(time.time())
            for s in states:  # the sources whose rows are in the tables now (not one rolled back before)
                if s.gate_opened_at is None and s.phase != Phase.ROLLED_BACK:
                    update_state(conn, s.source_name, gate_opened_at=now, updated_at=s.updated_at)
        return None
