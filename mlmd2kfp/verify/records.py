"""What a verify proved per run, and what the next verify compares in full (issue #30).

A passing full verify records, per run, the MLMD mark it compared (`marks.run_marks`), the target sums of the
rows it compared (`target.run_sums`, with the old cache rows of the run) and the MLMD artifacts the run links;
and in the state row the chain those records start from (`verify_chain`: the full verify's time, the mapping
version, the sums recipe). A run's record is kept only when its mark and sums read before the comparison
equal those read after it: the record then describes the rows compared.

The next verify, unless `--full`, reads every run's mark and sums; it compares in full the runs without a
record or whose mark or sums moved, and takes the others as proven by their record; a passing incremental
verify renews the records of the runs it compared. A full verify that fails ends the chain.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, inspect, select, update
from sqlalchemy.engine import Connection

from ..batching import chunks
from ..migrate.state import MAPPING_VERSION, STATE, VERIFIED, MigrationState, core_table, state_id
from ..target.old_cache import short_hash
from ..target.run_sums import run_sums

SUMS_VERSION = "1"
"""The recipe of the recorded marks and sums: records of another recipe prove nothing."""
FULL, INCREMENTAL = "full", "incremental"
KFP_OWNED = "kfp-owned"
"""The sums recorded for a run KFP changed since the migration: its MLMD mark is recorded, its rows are KFP's."""


@dataclass(frozen=True)
class RunProof:
    """One run as a verify read it: its MLMD mark and target sums (and, once compared, its MLMD artifacts)."""

    context_id: int
    run_id: str
    mark: str
    sums: str
    artifacts: tuple[int, ...] = ()


def chain_of(state: MigrationState | None) -> dict[str, Any] | None:
    """The chain of records an incremental verify may start from: its full verify of this mapping version and
    sums recipe; None when there is none."""
    try:
        chain = json.loads(state.verify_chain or "null") if state is not None else None
    except ValueError:
        return None
    if not isinstance(chain, dict) or not isinstance(chain.get("full_at"), int):
        return None
    if chain.get("mapping_version") != MAPPING_VERSION or chain.get("sums") != SUMS_VERSION:
        return None
    return chain


def target_sums(conn: Connection, tasks_table: str, run_ids: list[str],
                old_parts: dict[int, str] | None) -> dict[str, str] | None:
    """Each run's target sums (`run_sums`), with its old cache rows' (`OldCacheRows.by_run`) when an old `tasks`
    is compared; None when this database cannot hash."""
    sums = run_sums(conn, tasks_table, run_ids)
    if sums is None or old_parts is None:
        return sums
    return {r: f"{s}/{old_parts.get(short_hash(r), '0:0')}" for r, s in sums.items()}


def load_records(conn: Connection, source_name: str, chain: dict[str, Any]) -> dict[int, RunProof]:
    """The source's records of the chain `chain`, by run context id."""
    if VERIFIED.name not in inspect(conn).get_table_names():
        return {}
    t = core_table(VERIFIED)
    query = select(t.c.context_id, t.c.run_uuid, t.c.mlmd_mark, t.c.target_sums, t.c.mlmd_artifact_ids).where(
        t.c.source_name == source_name, t.c.chain == chain["full_at"])
    return {int(c): RunProof(int(c), str(r), str(m), str(s), tuple(int(a) for a in str(ids).split(",") if a))
            for c, r, m, s, ids in conn.execute(query, execution_options={"yield_per": 5000})}


@dataclass
class Proofs:
    """One verify's records: what it started from, which runs it compares in full, what it proved."""

    kind: str
    before: dict[int, RunProof]
    """Every run as read before comparing, by run context id."""
    records: dict[int, RunProof] = field(default_factory=dict)
    """The chain's records (incremental only)."""
    chain: dict[str, Any] | None = None
    old_parts: dict[int, str] | None = None
    proven: list[RunProof] = field(default_factory=list)
    moved: int = 0
    """Runs compared whose mark or sums moved while verify read them (not recorded)."""

    def __post_init__(self) -> None:
        self.compare: set[int] | None = None if self.kind == FULL else {
            c for c, now in self.before.items() if self.records.get(c) is None or _seen(self.records[c]) != _seen(now)}
        """The run contexts to compare in full (None: every run)."""

    def unchanged(self) -> list[RunProof]:
        """The runs taken as proven by their records (incremental only)."""
        if self.compare is None:
            return []
        return [self.records[c] for c in self.before if c not in self.compare]

    def settle(self, after: dict[int, RunProof], artifacts: dict[int, set[int] | None]) -> None:
        """Runs just compared (`artifacts`: their MLMD artifacts; None for a run KFP owns now), as read again
        after comparing: a run read alike both times is proven. A run KFP owns is recorded with its MLMD mark
        only (`KFP_OWNED` sums, which no target matches: it is compared in full each time)."""
        for c, linked in artifacts.items():
            now, then = after.get(c), self.before.get(c)
            if now is None or then is None or _seen(now) != _seen(then):
                self.moved += 1
                continue
            sums = now.sums if linked is not None else KFP_OWNED
            self.proven.append(RunProof(c, now.run_id, now.mark, sums, tuple(sorted(linked or ()))))

    def write(self, conn: Connection, source_name: str, passed: bool) -> None:
        """Store the records in the transaction that records the verify (`record_verify`): a full verify replaces
        the source's records and starts a chain when it passed (ends it when it failed); a passing incremental
        one renews the records of the runs it compared and drops those of runs gone from MLMD."""
        t, now = core_table(VERIFIED), int(time.time())
        if self.kind == FULL:
            conn.execute(delete(t).where(t.c.source_name == source_name))
            chain: dict[str, Any] | None = {"full_at": now, "mapping_version": MAPPING_VERSION,
                                             "sums": SUMS_VERSION} if passed else None
            state = core_table(STATE)
            conn.execute(update(state).where(state.c.id == state_id(source_name)).values(
                verify_chain=json.dumps(chain) if chain else None))
        else:
            chain = self.chain if passed else None
            compared = self.compare or set()
            stale = [r.run_id for c, r in self.records.items() if c not in self.before or c in compared]
            for ids in chunks(stale):
                conn.execute(delete(t).where(t.c.run_uuid.in_(bindparam("ids", expanding=True))), {"ids": list(ids)})
        if chain is None:
            return
        rows = [{"run_uuid": p.run_id, "source_name": source_name, "context_id": p.context_id, "mlmd_mark": p.mark,
                 "target_sums": p.sums, "mlmd_artifact_ids": ",".join(map(str, p.artifacts)), "chain": chain["full_at"],
                 "verified_at": now} for p in self.proven]
        for part in chunks(rows, 1000):
            conn.execute(t.insert(), list(part))


def _seen(proof: RunProof) -> tuple[str, str, str]:
    return proof.run_id, proof.mark, proof.sums
