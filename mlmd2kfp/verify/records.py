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

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, delete, inspect, select, update
from sqlalchemy.engine import Connection

from .. import __version__
from ..batching import chunks
from ..migrate.state import MAPPING_VERSION, STATE, VERIFIED, MigrationState, core_table, state_id
from ..target.old_cache import short_hash
from ..target.run_sums import WHOLE_TABLE_RUNS, run_sums

SUMS_VERSION = "2"
"""The recipe of the recorded marks and sums: records of another recipe prove nothing."""
FULL, INCREMENTAL = "full", "incremental"
KFP_OWNED = "compare-again"
"""The sums recorded for a run KFP changed since the migration, or whose rows moved while verify read them: its
MLMD mark is recorded (MLMD held what verify compared), no target matches the sums (it is compared again)."""


@dataclass(frozen=True)
class RunProof:
    """One run as a verify read it: its MLMD mark and target sums (and, once compared, its MLMD artifacts)."""

    context_id: int
    run_id: str
    mark: str
    sums: str
    artifacts: tuple[int, ...] = ()


def derivation(multi: bool, value_limit: int | None) -> dict[str, Any]:
    """What the expected rows depend on besides a run's MLMD rows and `run_details` row: the release deriving
    them, its mapping version, the sums recipe, the install mode verified in and the server's value limit. A
    chain holds them: records made under others prove nothing."""
    return {"mapping_version": MAPPING_VERSION, "sums": SUMS_VERSION, "tool": __version__, "multi": multi,
            "value_limit": value_limit}


def chain_of(state: MigrationState | None, wanted: dict[str, Any]) -> dict[str, Any] | None:
    """The chain of records an incremental verify may start from: a full verify's under the same `derivation`;
    None when there is none."""
    try:
        chain = json.loads(state.verify_chain or "null") if state is not None else None
    except ValueError:
        return None
    if not isinstance(chain, dict) or not isinstance(chain.get("full_at"), int):
        return None
    if any(chain.get(k) != v for k, v in wanted.items()):
        return None
    return chain


def target_sums(conn: Connection, tasks_table: str, run_ids: list[str],
                old_parts: dict[int, str] | None, every_run: bool = False) -> dict[str, str] | None:
    """Each run's target sums (`run_sums`), with its old cache rows' (`OldCacheRows.by_run`) when an old `tasks`
    is compared; None when this database cannot hash. `every_run`: the runs are all the store's (verify's
    start): from `WHOLE_TABLE_RUNS` of them, one GROUP BY over each table."""
    sums = run_sums(conn, tasks_table, run_ids, whole=every_run and len(run_ids) >= WHOLE_TABLE_RUNS)
    if sums is None or old_parts is None:
        return sums
    return {r: hashlib.sha256(f"{s}/{old_parts.get(short_hash(r), '0:0')}".encode()).hexdigest()[:32]
            for r, s in sums.items()}


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
    derived_by: dict[str, Any] = field(default_factory=dict)
    """The `derivation` of this verify (what a chain it starts holds)."""
    records: dict[int, RunProof] = field(default_factory=dict)
    """The chain's records (incremental only)."""
    chain: dict[str, Any] | None = None
    old_parts: dict[int, str] | None = None
    proven: list[RunProof] = field(default_factory=list)
    moved: int = 0
    """Runs compared whose mark or sums moved while verify read them: not recorded (the mark), or recorded to
    be compared again (the sums)."""

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
            if now is None or then is None or (now.run_id, now.mark) != (then.run_id, then.mark):
                self.moved += 1  # MLMD moved while read: no record (`status --check --mlmd-url` names it)
                continue
            sums = now.sums if linked is not None and now.sums == then.sums else KFP_OWNED
            if linked is not None and sums == KFP_OWNED:
                self.moved += 1  # its rows moved while read (KFP at work): compared again next time
            self.proven.append(RunProof(c, now.run_id, now.mark, sums, tuple(sorted(linked or ()))))

    def write(self, conn: Connection, source_name: str, passed: bool) -> None:
        """Store the records in the transaction that records the verify (`record_verify`): a full verify replaces
        the source's records and starts a chain when it passed (ends it when it failed); a passing incremental
        one renews the records of the runs it compared and drops those of runs gone from MLMD."""
        t, now = core_table(VERIFIED), int(time.time())
        state = core_table(STATE)
        if self.kind == FULL:
            conn.execute(delete(t).where(t.c.source_name == source_name))
            chain: dict[str, Any] | None = {"full_at": now, **self.derived_by} if passed else None
            conn.execute(update(state).where(state.c.id == state_id(source_name)).values(
                verify_chain=json.dumps(chain) if chain else None))
        else:
            recorded = conn.execute(select(state.c.verify_chain).where(state.c.id == state_id(source_name))).scalar()
            if self.chain is None or recorded is None or json.loads(recorded) != self.chain:
                return  # another verify ended or replaced the chain meanwhile: its records stand
            chain = self.chain if passed else None
            compared = self.compare or set()
            stale = [r.run_id for c, r in self.records.items() if c not in self.before or c in compared]
            _delete_runs(conn, stale)
        if chain is None:
            return
        _delete_runs(conn, [p.run_id for p in self.proven])  # a record another source left under the same run id
        rows = [{"run_uuid": p.run_id, "source_name": source_name, "context_id": p.context_id, "mlmd_mark": p.mark,
                 "target_sums": p.sums, "mlmd_artifact_ids": ",".join(map(str, p.artifacts)), "chain": chain["full_at"],
                 "verified_at": now} for p in self.proven]
        for part in chunks(rows, 1000):
            conn.execute(t.insert(), list(part))


def _seen(proof: RunProof) -> tuple[str, str, str]:
    return proof.run_id, proof.mark, proof.sums


def _delete_runs(conn: Connection, run_ids: list[str]) -> None:
    t = core_table(VERIFIED)
    for ids in chunks(run_ids):
        conn.execute(delete(t).where(t.c.run_uuid.in_(bindparam("ids", expanding=True))), {"ids": list(ids)})


def end_chain(conn: Connection, source_name: str) -> None:
    """A full verify that records nothing per run (a database that cannot hash) ends the chain: the records
    describe an older verify."""
    conn.execute(delete(core_table(VERIFIED)).where(core_table(VERIFIED).c.source_name == source_name))
    state = core_table(STATE)
    conn.execute(update(state).where(state.c.id == state_id(source_name)).values(verify_chain=None))
