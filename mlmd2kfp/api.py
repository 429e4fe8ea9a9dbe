"""The library: one function per command, the way alembic's `command` module is (the CLI calls only these).

    from mlmd2kfp import api

    report = api.plan(mlmd_url, kfp_url)        # read-only dry run
    result = api.migrate(mlmd_url, kfp_url)     # batched, resumable copy, then the cutover
    staged = api.migrate(mlmd_url, kfp_url, api.MigrateOptions(stage_only=True))  # the pre-run
    parity = api.verify(mlmd_url, kfp_url)      # the independent check; recorded for the gate
    ok, why = api.status(kfp_url).gate          # what `status --check` answers

A database is a SQLAlchemy URL (`mysql://…`, `postgresql+psycopg://…`, `sqlite:///file`) or an `Engine` the
caller made (left open; an in-memory SQLite engine from `db.make_engine("sqlite://", …)` too). Every function
raises a `ToolkitError` subclass (with the exit code the CLI uses) for what an operator must act on;
reports are data (render them with `migrate.plan_render`, `migrate.runner_render`, `verify.report`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from .errors import PlanNotClean
from .migrate.options import MigrateOptions
from .verify.options import VerifyOptions

if TYPE_CHECKING:
    from .migrate.admin import RollbackReport, StatusReport
    from .sample import SampleReport
    from .sample.kfp_db import RunRecord
    from .target.schema import CreateResult, SchemaStatus
    from .migrate.options import MigrateReport
    from .migrate.plan import PlanReport
    from .verify.report import ParityReport

Progress = Callable[[int, int], None]
"""(runs done, runs total)."""
Database = str | Engine
"""A database: its URL, or an engine (the caller's, left open)."""

__all__ = ["Database", "MigrateOptions", "Progress", "VerifyOptions", "check_mlmd", "cleanup", "fast_sample", "gate", "migrate", "plan", "refuse_unclean_plan",
           "rollback", "sample", "schema_check", "schema_create", "status", "verify"]


def plan(mlmd_url: Database, kfp_url: Database, *, multi_user: bool | None = None, source_name: str = "",
         on_progress: Progress | None = None) -> PlanReport:
    """Read and map every run and predict what `migrate` writes and skips; write nothing.

    Args:
        multi_user: KFP's install mode (`--multi-user`/`--single-user`); None detects it from the runs.
        source_name: the `--source-name` the migration will use (it is mixed into every id).
        on_progress: called with (runs done, runs total) as runs are mapped.

    `report.exit_code(strict=True)` is 1 when a row would be skipped or a run has no spec (`plan --strict`).
    """
    from .migrate.plan import build_plan

    return build_plan(mlmd_url, kfp_url, multi_user=multi_user, source_name=source_name, on_progress=on_progress)


def migrate(mlmd: Database, kfp: Database, options: MigrateOptions | None = None, *, strict: bool = False,
            on_progress: Callable[[int, int, int], None] | None = None, on_plan_progress: Progress | None = None,
            on_event: Callable[[str], None] | None = None) -> MigrateReport:
    """Copy MLMD's runs into `tasks`, `artifacts` and `artifact_tasks` (or resume, or true up), then cut over.

    Args:
        options: what to migrate and how (`MigrateOptions`: mode, `--stage-only`, batch size, throttle,
            `--namespace`/`--run`, `--source-name`, `--force-mode`); the defaults migrate every run.
        strict: plan first and refuse to write anything when a row would be skipped or a run has no spec.
        on_progress: (runs done, runs total, rows written); on_plan_progress: the strict plan's progress;
        on_event: one line per notable step (cutover, resume, tables created).

    Raises:
        PlanNotClean: `strict` and the plan would skip rows (nothing written; exit 1).
        LockHeldError, ResumeError, TargetSchemaError, PrivilegeError: refused before any write.
        MigrationFailedError: a batch failed for good (committed batches kept, recorded in the state).
        InterruptedByOperator: Ctrl-C / SIGTERM after a committed batch (the rerun resumes).
    """
    from .migrate.context import migration_context
    from .migrate.runner import run

    options = options or MigrateOptions()
    if strict:
        refuse_unclean_plan(mlmd, kfp, multi_user=options.multi_user, source_name=options.source_name,
                            on_progress=on_plan_progress)
    with migration_context(mlmd, kfp, options, on_event=on_event, on_progress=on_progress) as ctx:
        return run(ctx)


def refuse_unclean_plan(mlmd_url: Database, kfp_url: Database, *, multi_user: bool | None = None, source_name: str = "",
                        on_progress: Progress | None = None) -> None:
    """`migrate --strict`'s check, before anything is asked or written: plan, and refuse when a row would be
    skipped or a run has no spec.

    Raises:
        PlanNotClean: the plan is not clean (exit 1).
    """
    report = plan(mlmd_url, kfp_url, multi_user=multi_user, source_name=source_name, on_progress=on_progress)
    if report.exit_code(strict=True):
        raise PlanNotClean(f"--strict: {report.skipped_rows} MLMD row(s) would be skipped and "
                           f"{report.runs_without_spec} run(s) have no spec; nothing was written "
                           "(run `mlmd2kfp plan` for the ledger)")


def verify(mlmd_url: Database, kfp_url: Database, options: VerifyOptions | None = None,
           on_progress: Progress | None = None) -> ParityReport:
    """Check every row the tool wrote against MLMD, re-derived another way; record the result for the gate.

    `options` (`VerifyOptions`): a `--run`/`--namespace` subset (a partial result, which never opens the gate),
    the install mode (default: the one the migration recorded), how to read MLMD (`auto`: ml-metadata when
    installed, `api`, `sql`), which recorded source this MLMD database is (needed when there are several), and
    `full`: re-derive every run even when the records of a passing full verify would let verify compare only
    the runs that changed since (the default then; `report.kind` says which ran).

    `report.exit_code` is 0 when everything holds, 1 on a difference; `report.not_recorded` says why a
    result could not be recorded (a migrator wrote while it read).
    """
    from .verify import run_verify

    return run_verify(mlmd_url, kfp_url, options or VerifyOptions(), on_progress=on_progress)


def check_mlmd(mlmd_url: Database, kfp_url: Database, source_name: str | None = None) -> tuple[bool, str]:
    """Whether MLMD still holds what the last verify compared (`status --check --mlmd-url`): every run's
    change mark, read with aggregate queries, against the records of that verify; (holds, one line naming
    the runs that changed, added or gone). `source_name`: which recorded source MLMD is, when there are
    several."""
    from .verify import check_mlmd as check

    return check(mlmd_url, kfp_url, source_name)


def gate(kfp_url: Database, mlmd_url: Database | None = None,
         source_name: str | None = None) -> tuple[bool, str, str | None]:
    """The startup gate (`status --check`): (open, the gate's line, MLMD's line). Given `mlmd_url` and the gate
    open, MLMD is compared with what the last verify recorded (`check_mlmd`): a change closes the gate, and
    MLMD's line says what was compared or what changed (None when MLMD was not compared)."""
    passed, why = status(kfp_url).gate
    if not passed or mlmd_url is None:
        return passed, why, None
    held, line = check_mlmd(mlmd_url, kfp_url, source_name)
    return held, why, line


def status(kfp_url: Database) -> StatusReport:
    """Every source's state (`report.states`: a `MigrationState` per source, with phase, counts, checkpoint,
    last error and the last verify as `.verify`; `report.to_dict()` for JSON) and the startup gate
    (`report.gate`: (open, the one line that says why))."""
    from .migrate.admin import read_status

    return read_status(kfp_url)


def rollback(kfp_url: Database, *, source_name: str | None = None, force_without_old_tasks: bool = False) -> RollbackReport:
    """Delete exactly the rows the tool wrote (runs KFP wrote into are kept whole) and, with the last
    source, drop the tables it created and move the old `tasks` back. `force_without_old_tasks` rolls back
    even when `tasks_pre_migration` is gone or differs from what the cutover moved aside.

    Raises:
        ToolkitError: no migration is recorded, or several are and `source_name` does not say which; the
            old `tasks` copy is missing or changed (without `force_without_old_tasks`).
        LockHeldError: a migrator is running.
    """
    from .migrate.admin import rollback as run

    return run(kfp_url, source_name, force_without_old_tasks)


def cleanup(kfp_url: Database) -> list[str]:
    """Drop `tasks_pre_migration` and the tool's own tables (returns their names); refused unless the
    startup gate is open (every source finished and verified)."""
    from .migrate.admin import cleanup as run

    return run(kfp_url)


def schema_create(kfp_url: Database) -> CreateResult:
    """Create `artifacts`, `tasks` and `artifact_tasks` as KFP's API server would; existing tables (and an
    old-form `tasks`) are left alone. A SQLite file that does not exist is an error, not created empty.

    Raises:
        ToolkitError: the database has no `run_details` (not KFP's), or cannot be reached.
    """
    from .db import opened
    from .target.schema import create_schema

    with opened(kfp_url, "KFP") as engine, engine.begin() as conn:
        return create_schema(conn)


def schema_check(kfp_url: Database) -> SchemaStatus:
    """Compare the target tables with KFP's schema (`status.ok`, `.differences`, `.warnings`)."""
    from .db import opened
    from .target.schema import check_schema

    with opened(kfp_url, "KFP") as engine, engine.begin() as conn:
        return check_schema(conn)


def sample(mlmd_url: str, kfp_url: str, *, runs: int | None = None, seed: int = 0, single_user: bool = False,
           no_spec: bool = False, on_progress: Progress | None = None) -> SampleReport:
    """Write a realistic MLMD database through ml-metadata and the matching pre-upgrade KFP database (both
    empty before). See `mlmd2kfp.sample.write_sample`."""
    from .sample import write_sample

    return write_sample(mlmd_url, kfp_url, runs=runs, seed=seed, single_user=single_user, no_spec=no_spec,
                        on_progress=on_progress)


def fast_sample(mlmd_url: str, kfp_url: str, *, runs: int, seed: int = 0, single_user: bool = False,
                on_progress: Progress | None = None) -> list[RunRecord]:
    """A large sample for benchmarks: one repetition through ml-metadata, copied with bulk SQL."""
    from .sample.fast import write_fast_sample

    return write_fast_sample(mlmd_url, kfp_url, runs=runs, seed=seed, single_user=single_user,
                             on_progress=on_progress)
