"""One migrator at a time: MySQL `GET_LOCK`, a PostgreSQL advisory lock, or (SQLite) an OS file lock.

Each lock dies with its holder (session end or process exit), so a killed migrator never leaves a
stale lock behind. Who holds it is written next to it for the "already running" message.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text

from ..db import in_memory
from ..dialects import dialect_for, holds_lock_sql, try_lock_sql, unlock_sql
from ..errors import LockHeldError, MigrationFailedError
from .state import Status, holder, load_states, update_state


class MigrationLock:
    """Hold the migration lock for the life of the `with` block."""

    def __init__(self, engine: Engine, what: str = "migration", source_name: str = "") -> None:
        self.engine = engine
        self.what = what
        self.source_name = source_name
        """The source whose state row records a lost lock (the migration of `--source-name`)."""
        self._conn: Any = None
        self._file: IO[str] | None = None

    def __enter__(self) -> MigrationLock:
        conn = self.engine.connect()
        d = dialect_for(conn)
        sql = try_lock_sql(d, self.engine.url.database)
        if sql is None:
            conn.close()
            self._take_file_lock()
            return self
        got = conn.execute(text(sql)).scalar()
        conn.commit()
        if got != 1:
            since, by = self._recorded_holder(conn)
            conn.close()
            raise LockHeldError(f"{self.what} already running (since {since}, by host {by}); "
                                "wait for it to finish, or stop it (Ctrl-C finishes its current batch)")
        self._conn = conn
        return self

    def check(self) -> None:
        """Before each batch commit: the lock's connection is alive and still holds the lock (the query also
        keeps the server's `wait_timeout` from closing the idle connection in a long run).

        Raises:
            MigrationFailedError: the lock was lost; nothing of the next batch is written.
        """
        if self._conn is None:
            return
        sql = holds_lock_sql(dialect_for(self._conn), self.engine.url.database)
        try:
            held = self._conn.execute(text(sql)).scalar() if sql else 1
            self._conn.commit()
        except Exception as exc:
            held, why = 0, " ".join(str(getattr(exc, "orig", exc)).split())[:200]
        else:
            why = "another session holds it now"
        if held != 1:
            line = (f"the {self.what} lock was lost ({why}; the server may have closed its idle connection, see "
                    "`wait_timeout`): stopped before the next batch, committed batches are kept; rerun to resume")
            if why != "another session holds it now":  # nobody else runs: the state may say what happened
                try:
                    with self.engine.begin() as conn:
                        update_state(conn, self.source_name, status=Status.FAILED, last_error=line)
                except Exception:
                    pass
            raise MigrationFailedError(line)

    def _recorded_holder(self, conn: Any) -> tuple[str, str]:
        try:  # the row written last names the holder (every source's migration takes this one lock)
            state = max(load_states(conn), key=lambda s: s.updated_at or 0, default=None)
        except Exception:  # the holder is best-effort information
            state = None
        if state is None or not state.holder:
            return "an unknown time", "unknown"
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(state.updated_at)), state.holder

    def _lock_path(self) -> Path:
        database = self.engine.url.database or "memory"
        return Path(f"{database}.mlmd2kfp.lock")

    def _take_file_lock(self) -> None:
        if in_memory(self.engine):  # no other process can open this database: nothing to lock it against
            return
        path = self._lock_path()
        handle = open(path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            try:
                info = json.loads(handle.read() or "{}")
            except ValueError:
                info = {}
            handle.close()
            raise LockHeldError(
                f"{self.what} already running (since {info.get('since', 'an unknown time')}, by host "
                f"{info.get('holder', 'unknown')}); wait for it to finish, or stop it "
                "(Ctrl-C finishes its current batch)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"holder": holder(), "since": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}))
        handle.flush()
        os.fsync(handle.fileno())
        self._file = handle

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            sql = unlock_sql(dialect_for(self._conn), self.engine.url.database)
            try:
                if sql:
                    self._conn.execute(text(sql))
                    self._conn.commit()
            except Exception:  # a lost connection released the lock with it
                pass
            finally:
                self._conn.close()
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
