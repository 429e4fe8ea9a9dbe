"""The old cache rows against the migrated fingerprints (mapping.md §7.3), counted without random reads.

KFP's old `tasks` is clustered on a random UUID and indexed on `RunUUID` only, so looking a batch's cache
rows up by run read one page per old row: at 200k executions on a 512 MB pool that was 10.9 GB of reads and
a third of the migration (BENCHMARKS.md, issue #29). Instead the reader reads the cache rows once, in one
scan, into three arrays of 8-byte numbers sorted by execution id (24 bytes per cache row, none per node
row), and each batch looks its executions up there. Informational only: a snapshot taken when the first
batch needs it is what the report counts.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.engine import Connection

from .writer import RunWork, TargetTables


def short_hash(text: str) -> int:
    """A stable 64-bit hash of a text (signed, to fit `array('q')`)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=8).digest(), "big",
                          signed=True)


class OldCacheRows:
    """The old table's cache rows (a non-empty `MLMDExecutionID`), sorted by execution id: the run and the
    fingerprint of each as `short_hash`es. Rows whose execution id is not a plain decimal number can match no
    migrated task (theirs is `str(id)`) and are not kept."""

    def __init__(self) -> None:
        self.executions = array("q")
        self.runs = array("q")
        self.fingerprints = array("q")

    @classmethod
    def read(cls, conn: Connection, t: TargetTables) -> OldCacheRows:
        """One scan of the old table in its own order, sorted here (a server sort of these wide rows re-read
        each one by its key: MariaDB read twice the table's pages doing it)."""
        out = cls()
        if t.old is None:
            return out
        c = t.old.c
        query = select(c.MLMDExecutionID, c.RunUUID, c.Fingerprint).where(c.MLMDExecutionID != "")
        for execution, run, fingerprint in conn.execution_options(stream_results=True, yield_per=5000).execute(query):
            if not execution.isdigit() or str(int(execution)) != execution or int(execution) >= 2 ** 63:
                continue
            out.executions.append(int(execution))
            out.runs.append(short_hash(run or ""))
            out.fingerprints.append(short_hash(fingerprint or ""))
        order = sorted(range(len(out.executions)), key=out.executions.__getitem__)
        for name in ("executions", "runs", "fingerprints"):
            column = getattr(out, name)
            setattr(out, name, array("q", (column[i] for i in order)))
        return out

    def cross_check(self, work: Iterable[RunWork]) -> tuple[int, int]:
        """(agree, differ): the cache rows, under one of these runs, of the executions these runs' RUNTIME tasks
        with a fingerprint map (mapping.md §7.3), against the fingerprint each was mapped to."""
        work = list(work)
        runs = {short_hash(w.run_id) for w in work}
        ours = {x.mlmd_execution_ids[-1]: short_hash(x.fingerprint) for w in work for x in w.rows.tasks
                if x.type == 2 and x.fingerprint}
        agree = differ = 0
        for execution, fingerprint in ours.items():
            i = bisect_left(self.executions, execution)
            while i < len(self.executions) and self.executions[i] == execution:
                if self.runs[i] in runs:
                    if self.fingerprints[i] == fingerprint:
                        agree += 1
                    else:
                        differ += 1
                i += 1
        return agree, differ
