"""`MigrationContext`: what one `migrate` hands each of its phases, in the spirit of alembic's
`MigrationContext` (one object instead of engines, options, report and callbacks threaded through every
call).

`mlmd2kfp.api` builds it once from URLs or from engines the caller made (an in-memory SQLite engine
included); the runner fills in what it learns on the way (the lock it holds, the stop request, the install
mode, where the tasks go) before the phase that needs it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from ..db import in_memory, label, opened, url_of
from .lock import MigrationLock
from .options import MigrateOptions, MigrateReport, Progress
from .signals import StopRequest
from .writer import TargetTables


def _quiet(_line: str) -> None:
    return None


@dataclass
class MigrationContext:
    """One migration's engines, options, report and event sink, and what the runner detects.

    The fields after `on_progress` are set by the runner (`runner.run`) before the phase that reads them:
    `lock` and `stop` when the lock is taken, `multi` after the refusals, `targets` as the data phase starts.
    """

    kfp: Engine
    mlmd: Engine
    options: MigrateOptions
    report: MigrateReport
    say: Callable[[str], None] = _quiet
    """The event sink: one line per notable step (cutover, resume, tables created, warnings)."""
    on_progress: Progress | None = None
    lock: MigrationLock = field(init=False)
    stop: StopRequest = field(init=False)
    multi: bool = field(init=False)
    """The install mode the rows are written in (multi-user: namespaces)."""
    targets: TargetTables = field(init=False)
    """The detected target layout: the table the tasks go to and the old `tasks` table (before or after its move)."""

    @property
    def source_name(self) -> str:
        """The MLMD source this migration is (`--source-name`, mapping.md W13)."""
        return self.options.source_name

    @property
    def in_one_process(self) -> bool:
        """An in-memory database exists only in this process: its reader cannot run in another one."""
        return in_memory(self.mlmd) or in_memory(self.kfp)

    @property
    def urls(self) -> tuple[str, str]:
        """(MLMD, KFP) URLs with their passwords, for the reader process (never printed)."""
        return url_of(self.mlmd), url_of(self.kfp)


@contextmanager
def migration_context(mlmd: str | Engine, kfp: str | Engine, options: MigrateOptions, *,
                      on_event: Callable[[str], None] | None = None,
                      on_progress: Progress | None = None) -> Iterator[MigrationContext]:
    """The context of one `migrate` over URLs or the caller's engines (engines made here are disposed at the
    end; the caller's stay open).

    Raises:
        UsageError, ConfigError, DatabaseConnectError: a URL is wrong or its database unreachable (KFP's first).
    """
    with opened(kfp, "KFP") as kfp_engine, opened(mlmd, "MLMD") as mlmd_engine:
        yield MigrationContext(kfp_engine, mlmd_engine, options, MigrateReport(label(mlmd), label(kfp)),
                               on_event or _quiet, on_progress)
