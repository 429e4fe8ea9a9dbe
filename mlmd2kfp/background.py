"""A generator run in a second Python process, its items pickled back over a pipe (mapping.md W12).

`migrate` reads and maps MLMD this way while it writes, and `verify` reads its expected side while it
reads and compares the target: the Python work then runs on two cores instead of sharing one
interpreter lock. The child is started as `python -c …` rather than with `multiprocessing`, so it
never re-runs the caller's main script; it receives the function's arguments (database URLs with
passwords included) on stdin, never on its command line, where `ps` would show them. It ignores
Ctrl-C and SIGTERM (the caller handles them and stops it), and it exits on the broken pipe when the
caller is gone. The functions run there must only read: stopping the child at any moment is safe.
"""

from __future__ import annotations

import importlib
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ToolkitError

DEPTH = 2
"""Items the child may have ready ahead of the caller (bounds memory to a few items)."""


def put_unless_halted(q: queue.Queue[Any], item: Any, halt: threading.Event) -> bool:
    """Put `item` on the bounded queue `q`, unless `halt` is set first; whether it was put."""
    while not halt.is_set():
        try:
            q.put(item, timeout=0.2)
            return True
        except queue.Full:
            continue
    return False


@dataclass(frozen=True)
class End:
    """The last message of a child whose generator is exhausted."""


class ChildIterator:
    """`module:function(*args)`, a generator, iterated in a child process.

    `get()` returns the next item, `End()`, or the exception that stopped the child (raised by
    iterating instead). `stop()` ends the child; iterating stops it at the end.
    """

    def __init__(self, function: str, args: tuple[Any, ...], what: str, advice: str,
                 error: type[ToolkitError] = ToolkitError) -> None:
        self.function, self.args, self.what, self.advice, self.error = function, args, what, advice, error
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=DEPTH)
        self.halt = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        self.pipe: Any = None
        self.thread = threading.Thread(target=self._pump, name="mlmd2kfp-child-pipe", daemon=True)

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        package_root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "import sys; from mlmd2kfp.background import child_main; "
                 "child_main(int(sys.argv[1]))", str(write_fd)],
                stdin=subprocess.PIPE, pass_fds=(write_fd,), env=env)
        finally:
            os.close(write_fd)
        self.pipe = os.fdopen(read_fd, "rb")
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(pickle.dumps((self.function, self.args, os.getpid())))
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
                    item = self.error(f"the {self.what} ended unexpectedly (exit code {code}); {self.advice}")
                self._put(item)
                if isinstance(item, (End, BaseException)):
                    return
        except BaseException as exc:
            self._put(exc)

    def _put(self, item: Any) -> None:
        put_unless_halted(self.queue, item, self.halt)

    def get(self) -> Any:
        return self.queue.get()

    def stop(self) -> None:
        """End the child (it only reads, so any moment is safe) and the pipe."""
        self.halt.set()
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
        if self.thread.ident is not None:  # started
            self.thread.join(timeout=30)
        if self.pipe is not None:
            self.pipe.close()

    def __iter__(self) -> Iterator[Any]:
        self.start()
        try:
            while True:
                item = self.get()
                if isinstance(item, End):
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.stop()


def child_main(write_fd: int) -> None:
    """The child: (function, args, caller's pid) from stdin, pickled items to `write_fd`, then `End()`
    or the exception that stopped the generator."""
    from .faults import set_fault_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    function, args, parent = pickle.load(sys.stdin.buffer)
    set_fault_parent(parent)
    module, _, name = function.partition(":")
    out = os.fdopen(write_fd, "wb")
    try:
        try:
            for item in getattr(importlib.import_module(module), name)(*args):
                pickle.dump(item, out, protocol=pickle.HIGHEST_PROTOCOL)
                out.flush()
            pickle.dump(End(), out, protocol=pickle.HIGHEST_PROTOCOL)
        except BrokenPipeError:
            raise
        except BaseException as exc:  # handed to the caller, which raises it
            pickle.dump(_picklable(exc), out, protocol=pickle.HIGHEST_PROTOCOL)
        out.close()
    except BrokenPipeError:  # the caller is gone or stopped us: nobody reads what we would send
        os._exit(1)


def _picklable(exc: BaseException) -> BaseException:
    """`exc` if it survives the trip to the caller's process, else its message in a ToolkitError."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return ToolkitError(f"{type(exc).__name__}: {exc}")


PROCESS_MIN_RUNS = 200
"""From this many run contexts on, migrate's reader and verify's expected side run in a second process
(mapping.md W12): below it, the child's start-up (~0.7 s) costs more than the overlap wins."""
