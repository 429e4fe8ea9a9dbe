"""The reader side of the data pass: read and map whole runs into batches for the writer (mapping.md W9, W12).

`produce` is the whole job. It runs in a second process (`ProcessProducer`) so that reading and
mapping do not share one interpreter lock with the writer; in-memory SQLite, which no other
process can open, keeps it on a thread (`ThreadProducer`). Either way the writer receives the same
messages in the same order: `Total`, `Chunk`s in context-id order, `End` (or an exception).
The reader only reads: it holds no lock and writes nothing, so stopping it at any moment is safe.
"""

from __future__ import annotations

import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import select
from sqlalchemy.engine import Engine, make_url

from ..db import make_engine
from ..errors import MigrationFailedError
from ..mappers import MapOptions, map_run
from ..source.inventory import count_run_contexts
from ..source.reader import MlmdReader
from .faults import fault_point, set_fault_parent
from .writer import RunWork, TargetTables, cross_check_fingerprints

if TYPE_CHECKING:
    from .runner import MigrateOptions, MigrateReport

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


@dataclass(frozen=True)
class End:
    """The reader's last message."""


def produce(mlmd_engine: Engine, kfp_engine: Engine, options: MigrateOptions, multi: bool, last_context_id: int,
            targets: TargetTables) -> Iterator[Any]:
    """Read and map whole runs into batches of about `options.batch_rows` target rows."""
    map_options = MapOptions(multi_user=multi, source_name=options.source_name)
    namespaces = set(options.namespaces)
    with mlmd_engine.connect() as mlmd, kfp_engine.connect() as kfp_read:
        reader = MlmdReader(mlmd, kfp_read, page_runs=options.page_runs)
        yield Total(count_run_contexts(reader))
        batch: list[RunWork] = []
        counts, batch_size = Counts(), 0
        for page in reader.pages(last_context_id, options.run_ids or None):
            counts.runs_seen += len(page)
            marks = reader.marks(page)
            previous = previous_marks(kfp_read, targets, [name for _, name in page])
            kfp_read.commit()
            changed = [(c, n) for c, n in page if previous.get(n) != marks[c]]
            counts.runs_unchanged += len(page) - len(changed)
            fault_point("read-page")
            for bundle in reader.read_contexts(changed):
                counts.runs_read += 1
                if namespaces and (bundle.run is None or bundle.run.namespace not in namespaces):
                    continue
                rows = map_run(bundle, map_options)
                counts.executions += len(bundle.executions)
                counts.events += len(bundle.events)
                counts.artifacts += len(bundle.artifacts)
                work = RunWork(bundle.context_id, bundle.run_id, marks[bundle.context_id], rows)
                batch.append(work)
                batch_size += work.size
                if batch_size >= options.batch_rows:
                    yield Chunk(batch, counts, cross_check_fingerprints(kfp_read, targets, batch))
                    kfp_read.commit()
                    batch, counts, batch_size = [], Counts(), 0
            kfp_read.commit()
            mlmd.commit()
            if counts.runs_unchanged and not batch:
                yield Chunk([], counts)
                counts = Counts()
        yield Chunk(batch, counts, cross_check_fingerprints(kfp_read, targets, batch) if batch else (0, 0))
    yield End()


def previous_marks(conn: Any, t: TargetTables, run_ids: list[str]) -> dict[str, str]:
    """The change marks recorded for `run_ids` by earlier passes."""
    out: dict[str, str] = {}
    for i in range(0, len(run_ids), 500):
        chunk = run_ids[i:i + 500]
        for r in conn.execute(select(t.runs.c.run_uuid, t.runs.c.marks).where(t.runs.c.run_uuid.in_(chunk))):
            out[r.run_uuid] = r.marks
    return out


def in_memory(url: str) -> bool:
    """An in-memory SQLite database exists only in this process's connection."""
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


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
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self.halt.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Any:
        return self.queue.get()

    def stop(self) -> None:
        self.halt.set()
        self.thread.join(timeout=30)


class ProcessProducer:
    """`produce` in a child Python process (mapping.md W12), its messages pickled over a pipe.

    The child is started with `python -c` rather than `multiprocessing`, so it never re-runs the
    caller's main script, and gets its arguments (URLs with passwords) on stdin, never on its command
    line. A thread here unpickles messages into a bounded queue. The child ignores Ctrl-C and SIGTERM
    (the migrator handles them and stops it) and ends on a broken pipe if the migrator is killed.
    """

    def __init__(self, mlmd_url: str, kfp_url: str, options: MigrateOptions, multi: bool, last_context_id: int,
                 targets: TargetTables) -> None:
        self.args = (mlmd_url, kfp_url, options, multi, last_context_id, targets.tasks_name, targets.old_tasks_name,
                     os.getpid())
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_DEPTH)
        self.halt = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.thread = threading.Thread(target=self._pump, name="mlmd2kfp-reader-pipe", daemon=True)

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "import sys; from mlmd2kfp.migrate.producer import child_main; "
                 "child_main(int(sys.argv[1]))", str(write_fd)],
                stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env)
        finally:
            os.close(write_fd)
        self.pipe = os.fdopen(read_fd, "rb")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(pickle.dumps(self.args))
            self.process.stdin.close()
        except BrokenPipeError:
            pass  # the child ended at once; `get` reports how
        self.thread.start()

    def _pump(self) -> None:
        try:
            while not self.halt.is_set():
                try:
                    item = pickle.load(self.pipe)
                except EOFError:
                    code = self.process.wait() if self.process else None
                    item = MigrationFailedError(
                        f"the reader process ended unexpectedly (exit code {code}); committed batches are kept: "
                        "rerun `mlmd2kfp migrate` to resume")
                self._put(item)
                if isinstance(item, (End, BaseException)):
                    return
        except BaseException as exc:
            self._put(exc)

    def _put(self, item: Any) -> None:
        while not self.halt.is_set():
            try:
                self.queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def get(self) -> Any:
        return self.queue.get()

    def stop(self) -> None:
        """End the child (it only reads, so any moment is safe) and the pipe."""
        self.halt.set()
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        self.thread.join(timeout=30)
        self.pipe.close()


def child_main(write_fd: int) -> None:
    """The reader process: arguments from stdin, messages to `write_fd` until `End` or an exception."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    mlmd_url, kfp_url, options, multi, last_context_id, tasks_name, old_tasks_name, parent = pickle.load(
        sys.stdin.buffer)
    set_fault_parent(parent)
    out: BinaryIO = os.fdopen(write_fd, "wb")
    try:
        try:
            kfp_engine = make_engine(kfp_url, "KFP", create_sqlite=False)
            mlmd_engine = make_engine(mlmd_url, "MLMD", create_sqlite=False)
            try:
                for item in produce(mlmd_engine, kfp_engine, options, multi, last_context_id,
                                    TargetTables(tasks_name, old_tasks_name)):
                    pickle.dump(item, out, protocol=pickle.HIGHEST_PROTOCOL)
                    out.flush()
            finally:
                mlmd_engine.dispose()
                kfp_engine.dispose()
        except BrokenPipeError:
            raise
        except BaseException as exc:  # handed to the writer, which raises it
            pickle.dump(_picklable(exc), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.close()
    except BrokenPipeError:  # the migrator is gone or stopped us: nobody reads what we would send
        os._exit(1)


def _picklable(exc: BaseException) -> BaseException:
    """`exc` if it survives the trip to the writer's process, else its message in a MigrationFailedError."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return MigrationFailedError(f"the reader failed: {type(exc).__name__}: {exc}")
