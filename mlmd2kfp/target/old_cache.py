"""KFP's old cache rows, read once (mapping.md §7.3: the migrated fingerprints are cross-checked with them).

KFP's old `tasks` is clustered on a random UUID and indexed on `RunUUID` only, so looking a batch's cache
rows up by run read one page per old row: at 200k executions on a 512 MB pool that was 10.9 GB of reads and
a third of the migration (BENCHMARKS.md, issue #29). Instead `migrate`'s reader and `verify` each read the
cache rows once, in one scan, into three arrays of 8-byte numbers sorted by execution id (24 bytes per cache
row, none per node row), and look each chunk's executions up there (190 s -> 118 s at 200k). A snapshot taken when the first chunk
needs it.
"""

from __future__ import annotations

import hashlib
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Column, MetaData, String, Table, select
from sqlalchemy.engine import Connection

from ..batching import chunks


def short_hash(text: str | None) -> int:
    """A stable 64-bit hash of a text (signed, to fit `array('q')`); NULL is 0, apart from ''."""
    if text is None:
        return 0
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
    def read(cls, conn: Connection, table: str | None, runs: list[str] | None = None) -> OldCacheRows:
        """One scan of the old table `table` in its own order, sorted here (a server sort of these wide rows
        re-read each one by its key: MariaDB read twice the table's pages doing it). The sort briefly holds
        a list of positions (about 70 bytes a row) besides the arrays. `runs`: only the rows filed under
        these runs, looked up by KFP's index on `RunUUID` (a page per row: cheaper than the scan for a
        true-up that writes a few runs)."""
        if table is None:
            return cls()
        c = Table(table, MetaData(), Column("MLMDExecutionID", String), Column("RunUUID", String),
                  Column("Fingerprint", String)).c
        query = select(c.MLMDExecutionID, c.RunUUID, c.Fingerprint).where(c.MLMDExecutionID != "")
        queries = [query] if runs is None else [query.where(c.RunUUID.in_(list(part))) for part in chunks(runs)]
        return cls.of_rows(r for q in queries for r in conn.execute(q, execution_options={"yield_per": 5000}))

    @classmethod
    def of_rows(cls, rows: Iterable[Sequence[Any]]) -> OldCacheRows:
        """The cache rows among `rows` ((execution id, run, fingerprint) of old rows, any order), sorted."""
        out = cls()
        for execution, run, fingerprint in rows:
            if not execution or not (execution.isascii() and execution.isdecimal()) \
                    or str(int(execution)) != execution or int(execution) >= 2 ** 63:
                continue
            out.executions.append(int(execution))
            out.runs.append(short_hash(run))
            out.fingerprints.append(short_hash(fingerprint))
        order = sorted(range(len(out.executions)), key=out.executions.__getitem__)
        for name in ("executions", "runs", "fingerprints"):
            column = getattr(out, name)
            setattr(out, name, array("q", (column[i] for i in order)))
        return out

    def fingerprints_of(self, execution: int, run: str) -> Iterator[int]:
        """The fingerprint hash (`short_hash`) of each cache row of `execution` under `run`."""
        wanted = short_hash(run)
        i = bisect_left(self.executions, execution)
        while i < len(self.executions) and self.executions[i] == execution:
            if self.runs[i] == wanted:
                yield self.fingerprints[i]
            i += 1

    def by_run(self) -> dict[int, str]:
        """Per run (its `short_hash`): the count and sum of its cache rows' hashes (execution id and fingerprint),
        what `fingerprints_of` answers for it (verify's per-run sums, issue #30)."""
        out: dict[int, list[int]] = {}
        for execution, run, fingerprint in zip(self.executions, self.runs, self.fingerprints, strict=True):
            part = out.setdefault(run, [0, 0])
            part[0] += 1
            part[1] += short_hash(f"{execution}:{fingerprint}")
        return {run: f"{count}:{total}" for run, (count, total) in out.items()}
