"""What `migrate` is asked (`MigrateOptions`) and what it answers (`MigrateReport`): data only, shared by
the orchestration (`runner.py`), the reader (`producer.py`) and the renderers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .state import MAPPING_VERSION


@dataclass(frozen=True)
class MigrateOptions:
    """What `migrate` does (CLI options as data)."""

    multi_user: bool | None = None
    stage_only: bool = False
    batch_rows: int = 2000
    max_rows_per_second: float | None = None
    namespaces: tuple[str, ...] = ()
    run_ids: tuple[str, ...] = ()
    source_name: str = ""
    page_runs: int = 100
    force_mode: bool = False
    """Migrate in the mode given even where `run_details` contradicts it (issue #27 item 5)."""
    reader_process: bool | None = None
    """Read and map in a second process (mapping.md W12); False keeps the reader on a thread; None (the
    default) picks the process for stores of `PROCESS_MIN_RUNS` run contexts or more."""


@dataclass
class TableStats:
    """Per target table: source rows read, rows written and deleted, ledger entries by reason."""

    read: int = 0
    """MLMD rows of the table's source (`Execution`, `Artifact`, `Event`) this invocation read: each distinct row
    of the runs it mapped once (not of runs `--namespace` left out), and the rows of no run; an uninterrupted
    first pass over a store nobody writes meanwhile reads them all."""
    written: int = 0
    deleted: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class MigrateReport:
    """The summary of one `migrate` invocation (data only; `exit_code` is a property of it)."""

    mlmd_url: str
    kfp_url: str
    mode: str = ""
    runs_seen: int = 0
    runs_read: int = 0
    runs_unchanged: int = 0
    runs_written: int = 0
    runs_skipped: Counter[str] = field(default_factory=Counter)
    runs_repaired: int = 0
    """Runs rewritten because their rows differed from what the tool wrote (damage: the new KFP had not taken
    them over; docs/mapping.md W15)."""
    batches: int = 0
    retries: int = 0
    tables: dict[str, TableStats] = field(default_factory=lambda: {
        "tasks": TableStats(), "artifacts": TableStats(), "artifact_tasks": TableStats()})
    ledger: Counter[str] = field(default_factory=Counter)
    totals: dict[str, int] = field(default_factory=dict)
    phase: str = ""
    staged_in: str = ""
    cutover: bool = False
    moved_old_tasks: bool = False
    old_tasks: dict[str, int | None] = field(default_factory=dict)
    fingerprints: dict[str, int] = field(default_factory=lambda: {"agree": 0, "differ": 0})
    created_tables: list[str] = field(default_factory=list)
    schema_warnings: list[str] = field(default_factory=list)
    """Extra columns and indexes on the existing target tables, accepted and left alone (mapping.md S4)."""
    seconds: dict[str, float] = field(default_factory=dict)
    mapping_version: str = MAPPING_VERSION
    """The mapping version of the rows written (mapping.md)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if name == "tables":
                out[name] = {k: {"read": v.read, "written": v.written, "deleted": v.deleted,
                                 "skipped": dict(sorted(v.skipped.items()))} for k, v in value.items()}
            elif isinstance(value, dict):
                out[name] = dict(sorted(value.items()))
            else:
                out[name] = value
        return out


Progress = Callable[[int, int, int], None]
"""(runs done, runs total, rows written so far)."""
