"""The reader side of the data pass: read and map whole runs into batches for the writer (mapping.md W9, W12).

`produce` is the whole job. It runs in a second process (`process_producer`, `background.ChildIterator`)
so that reading and mapping do not share one interpreter lock with the writer; a small store keeps it on
a thread (`ThreadProducer`), and in-memory SQLite, which neither another process nor another thread's
connection can open, in the writer's own thread between batches (`InlineProducer`). Either way the writer receives
the same messages in the same order: `Total`, `Chunk`s in context-id order, `End` (or an exception).
The reader only reads: it holds no lock and writes nothing, so stopping it at any moment is safe.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine

from ..batching import chunks
from ..background import ChildIterator, End, put_unless_halted
from ..bitmap import Bitmap
from ..db import make_engine
from ..dialects import max_value_bytes
from ..errors import MigrationFailedError
from ..mappers import MapOptions, map_run
from ..source.inventory import count_run_contexts
from ..source.reader import MlmdReader
from ..target.digest import rows_changed
from ..target.old_cache import OldCacheRows, short_hash
from ..target.run_sums import WHOLE_TABLE_RUNS, WRITTEN_PARTS, run_sums
from ..faults import fault_point
from .options import MigrateOptions, MigrateReport
from .state import claimed_elsewhere
from .writer import RunWork, TargetTables

def _first_reads(seen: Bitmap, ids: Iterable[int]) -> int:
    """How many of `ids` this pass had not read before (an artifact of several runs counts once)."""
    new = 0
    for i in ids:
        if i not in seen:
            seen.add(i)
            new += 1
    return new


QUEUE_DEPTH = 2
"""Chunks the reader may have ready ahead of the writer (bounds memory to about three batches)."""


@dataclass
class Counts:
    """Source-side report counters the reader accumulated since its previous chunk."""

    runs_seen: int = 0
    runs_unchanged: int = 0
    runs_read: int = 0
    executions: int = 0
    events: int = 0
    artifacts: int = 0

    def add_to(self, report: MigrateReport) -> None:
        report.runs_seen += self.runs_seen
        report.runs_unchanged += self.runs_unchanged
        report.runs_read += self.runs_read
        report.tables["tasks"].read += self.executions
        report.tables["artifact_tasks"].read += self.events
        report.tables["artifacts"].read += self.artifacts


@dataclass
class Chunk:
    """A batch of mapped runs (maybe empty), the old cache rows agreeing / differing with its fingerprints,
    and the counters since the previous chunk (runs passed over unchanged among them)."""

    batch: list[RunWork]
    counts: Counts = field(default_factory=Counts)
    fingerprints: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Total:
    """The reader's first message: run contexts in the store (for progress)."""

    runs: int


def produce(mlmd_engine: Engine, kfp_engine: Engine, options: MigrateOptions, multi: bool, last_context_id: int,
            targets: TargetTables) -> Generator[Any, None, None]:
    """Read and map whole runs into batches of about `options.batch_rows` target rows."""
    namespaces = set(options.namespaces)
    with mlmd_engine.connect() as mlmd, kfp_engine.connect() as kfp_read:
        map_options = MapOptions(multi_user=multi, source_name=options.source_name,
                                 max_value_bytes=max_value_bytes(kfp_read))
        reader = MlmdReader(mlmd, kfp_read, page_runs=options.page_runs)
        yield Total(count_run_contexts(reader, last_context_id))  # a resumed pass: the runs left (issue #27)
        batch: list[RunWork] = []
        counts, batch_size = Counts(), 0
        read = {"executions": Bitmap(), "events": Bitmap(), "artifacts": Bitmap()}  # distinct rows read this pass
        cache = _CrossCheck(kfp_read, targets)
        sums_now = _SumsNow(kfp_read, targets, options.source_name, bool(options.run_ids))
        for page in reader.pages(last_context_id, options.run_ids or None):
            counts.runs_seen += len(page)
            previous = previous_marks(kfp_read, targets, [name for _, name in page])
            marks = reader.marks(page, light=bool(previous))  # runs recorded before: few of them are read
            kfp_read.commit()
            refuse_claimed(page, previous, options.source_name)  # before anything of the page is read
            moved = _rows_moved(kfp_read, targets, previous, [n for c, n in page if previous.get(n, ("", ""))[0] == marks[c]],
                                sums_now())
            changed = [(c, n) for c, n in page if previous.get(n, ("", ""))[0] != marks[c] or n in moved]
            counts.runs_unchanged += len(page) - len(changed)
            fault_point("read-page")
            for bundle in reader.read_contexts(changed):
                counts.runs_read += 1
                if namespaces and (bundle.run is None or bundle.run.namespace not in namespaces):
                    continue
                rows = map_run(bundle, map_options)
                counts.executions += _first_reads(read["executions"], (e.id for e in bundle.executions))
                counts.events += _first_reads(read["events"], (e.id for e in bundle.events))
                counts.artifacts += _first_reads(read["artifacts"], bundle.artifacts)
                work = RunWork(bundle.context_id, bundle.run_id, marks[bundle.context_id], rows)
                batch.append(work)
                batch_size += work.size
                if batch_size >= options.batch_rows:
                    yield Chunk(batch, counts, cache(batch))
                    kfp_read.commit()
                    batch, counts, batch_size = [], Counts(), 0
            kfp_read.commit()
            mlmd.commit()
            if counts.runs_unchanged and not batch:
                yield Chunk([], counts)
                counts = Counts()
        yield Chunk(batch, counts, cache(batch) if batch else (0, 0))


LOOKUP_RUNS = 500
"""Runs of a pass whose old cache rows are looked up by run before the old table is read whole once: a
true-up of a few hundred runs reads their pages only (at 200k executions on KFP's 128 MB pool the whole
table is a 5 s scan; a run's rows about 2 ms)."""


class _CrossCheck:
    """The old cache rows of each batch's executions, under the run of each (the launcher writes a cache row
    under the run that executed it), against the fingerprint the execution was mapped to (mapping.md §7.3):
    (agree, differ). The old rows of the first `LOOKUP_RUNS` runs written are looked up by run, then the
    table is read whole once (a rerun with nothing to write reads none)."""

    def __init__(self, conn: Connection, t: TargetTables) -> None:
        self.conn, self.t = conn, t
        self.rows: OldCacheRows | None = None
        self.looked_up = 0
        """Runs whose cache rows were looked up by run (until `LOOKUP_RUNS`; then the table is read whole)."""

    def __call__(self, batch: list[RunWork]) -> tuple[int, int]:
        rows = self.rows
        if rows is None and self.looked_up + len(batch) <= LOOKUP_RUNS:  # a true-up: a few runs' rows
            self.looked_up += len(batch)
            rows = OldCacheRows.read(self.conn, self.t.old_tasks_name, [w.run_id for w in batch])
        elif rows is None:
            rows = self.rows = OldCacheRows.read(self.conn, self.t.old_tasks_name)
        self.conn.commit()
        ours = {(x.mlmd_execution_ids[-1], w.run_id): short_hash(x.fingerprint) for w in batch
                for x in w.rows.tasks if x.type == 2 and x.fingerprint}
        agree = differ = 0
        for (execution, run), fingerprint in ours.items():
            for old in rows.fingerprints_of(execution, run):
                agree, differ = (agree + 1, differ) if old == fingerprint else (agree, differ + 1)
        return agree, differ


def previous_marks(conn: Any, t: TargetTables, run_ids: list[str]) -> dict[str, tuple[str, str, str | None, str | None]]:
    """The change marks recorded for `run_ids` by earlier passes, with the source that migrated each and the
    digest and sums of the rows written then (None: not recorded)."""
    out: dict[str, tuple[str, str, str | None, str | None]] = {}
    for part in chunks(run_ids):
        chunk = part
        for r in conn.execute(select(t.runs.c.run_uuid, t.runs.c.marks, t.runs.c.source_name, t.runs.c.digest,
                                     t.runs.c.sums).where(t.runs.c.run_uuid.in_(chunk))):
            out[r.run_uuid] = (r.marks, r.source_name, r.digest, r.sums)
    return out


def _rows_moved(conn: Any, t: TargetTables, previous: dict[str, tuple[str, str, str | None, str | None]],
                run_ids: list[str], sums_now: dict[str, str] | None) -> set[str]:
    """Of `run_ids` (runs whose MLMD marks did not move), those whose target rows differ from what was recorded
    when they were written (the database's sums, no row read back, where recorded): the writer repairs them or
    leaves them to KFP (docs/mapping.md W15)."""
    return rows_changed(conn, t.tasks_name, {r: (previous[r][2], previous[r][3]) for r in run_ids if r in previous},
                        sums_now)


class _SumsNow:
    """The sums now of every run this source's passes recorded sums for (`WRITTEN_PARTS`), read once, when the
    first page needs them, with one GROUP BY per table (`run_sums`): a true-up compares every run, and a lookup
    per page of runs made the server find each run's rows again (issue #30). None (each page looks its runs
    up) for a pass over a few runs: fewer recorded than `WHOLE_TABLE_RUNS`, or `--run`."""

    def __init__(self, conn: Connection, t: TargetTables, source_name: str, few: bool) -> None:
        self.conn, self.t, self.source_name = conn, t, source_name
        self.sums: dict[str, str] | None = None
        self.read = few

    def __call__(self) -> dict[str, str] | None:
        if not self.read:
            self.read = True
            runs = self.t.runs.c
            recorded = [r for (r,) in self.conn.execute(select(runs.run_uuid).where(
                runs.source_name == self.source_name, runs.sums.is_not(None)))]
            if len(recorded) >= WHOLE_TABLE_RUNS:
                self.sums = run_sums(self.conn, self.t.tasks_name, recorded, WRITTEN_PARTS, whole=True)
        return self.sums


def refuse_claimed(page: list[tuple[int, str]], previous: dict[str, tuple[str, str, str | None, str | None]],
                   source_name: str) -> None:
    """A run another source migrated already is refused (mapping.md W13: a run belongs to one source).

    Raises:
        ResumeError: naming the first such run of `page` ((context id, run id) pairs) and its source.
    """
    for context_id, run_id in page:
        if run_id in previous and previous[run_id][1] != source_name:
            raise claimed_elsewhere(run_id, context_id, previous[run_id][1], source_name)


class ThreadProducer:
    """`produce` on a thread of this process, on the caller's engines."""

    def __init__(self, mlmd_engine: Engine, kfp_engine: Engine, options: MigrateOptions, multi: bool,
                 last_context_id: int, targets: TargetTables) -> None:
        self.args = (mlmd_engine, kfp_engine, options, multi, last_context_id, targets)
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, name="mlmd2kfp-reader", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            for item in produce(*self.args):
                if not self._put(item):
                    return
            self._put(End())
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        return put_unless_halted(self.queue, item, self.halt)

    def get(self) -> Any:
        return self.queue.get()

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(timeout=30)


class InlineProducer:
    """`produce` in the caller's thread, a message per `get`: for an in-memory SQLite database, whose one
    connection a reader thread could not share with the writer (its reads run between batches instead)."""

    def __init__(self, mlmd_engine: Engine, kfp_engine: Engine, options: MigrateOptions, multi: bool,
                 last_context_id: int, targets: TargetTables) -> None:
        self.items = produce(mlmd_engine, kfp_engine, options, multi, last_context_id, targets)

    def start(self) -> None:
        return None

    def get(self) -> Any:
        try:
            return next(self.items)
        except StopIteration:
            return End()
        except BaseException as exc:  # handed to the writer, which raises it (as from the other producers)
            return exc

    def stop(self) -> None:
        self.items.close()


def produce_from_urls(mlmd_url: str, kfp_url: str, options: MigrateOptions, multi: bool, last_context_id: int,
                      tasks_name: str, old_tasks_name: str | None) -> Iterator[Any]:
    """`produce` on engines of its own: what the reader process runs (`background.ChildIterator`)."""
    kfp_engine = make_engine(kfp_url, "KFP", create_sqlite=False)
    mlmd_engine = make_engine(mlmd_url, "MLMD", create_sqlite=False)
    try:
        yield from produce(mlmd_engine, kfp_engine, options, multi, last_context_id,
                           TargetTables(tasks_name, old_tasks_name))
    finally:
        mlmd_engine.dispose()
        kfp_engine.dispose()


def process_producer(mlmd_url: str, kfp_url: str, options: MigrateOptions, multi: bool, last_context_id: int,
                     targets: TargetTables) -> ChildIterator:
    """`produce` in a reader process (mapping.md W12)."""
    return ChildIterator("mlmd2kfp.migrate.producer:produce_from_urls",
                         (mlmd_url, kfp_url, options, multi, last_context_id, targets.tasks_name,
                          targets.old_tasks_name),
                         what="reader process", error=MigrationFailedError,
                         advice="committed batches are kept: rerun `mlmd2kfp migrate` to resume")
