"""The command line: options → Settings → one library call → rendering (STYLE.md point 1).

Errors from the library are `ToolkitError`s, caught once in `main` and printed as one line;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import console
from .errors import MigrationFailedError, StoppedAtOnce, ToolkitError, UsageError, unexpected_error_line
from .settings import KFP_URL_ENV, MLMD_URL_ENV, Settings, url_from_parts

app = typer.Typer(
    name="mlmd2kfp",
    help="Move Kubeflow Pipelines runtime metadata from ML Metadata (MLMD) into KFP's native "
    "`tasks`, `artifacts` and `artifact_tasks` tables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # click's plain help: option types as click names them (no `<bool>` on flags), complete words
    # wrapped at the terminal's width instead of boxes that cut option names and URLs at 80 columns
    rich_markup_mode=None,
)
schema_app = typer.Typer(help="Create or check the KFP target tables.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(schema_app, name="schema")

_state = {"debug": False}

MlmdUrl = Annotated[
    Optional[str],
    typer.Option("--mlmd-url", metavar="URL", envvar=MLMD_URL_ENV, show_envvar=True,
                 help="SQLAlchemy URL of the MLMD database, e.g. mysql+pymysql://user:pw@host/metadb."),
]
KfpUrl = Annotated[
    Optional[str],
    typer.Option("--kfp-url", metavar="URL", envvar=KFP_URL_ENV, show_envvar=True,
                 help="SQLAlchemy URL of the KFP database, e.g. mysql+pymysql://user:pw@host/mlpipeline."),
]


def _require(value: str | None, option: str, env: str) -> str:
    if not value:
        value = url_from_parts("MLMD" if env == MLMD_URL_ENV else "KFP", dict(os.environ))
    if not value:
        raise UsageError(f"{option} is required (or set {env}, or MLMD2KFP_DB_HOST with "
                          f"{'MLMD2KFP_MLMD_DB' if env == MLMD_URL_ENV else 'MLMD2KFP_KFP_DB'}; see docs/runbook.md)")
    return value


def _version(value: bool) -> None:
    if value:
        from . import __version__
        from .migrate.state import MAPPING_VERSION

        console.print_data(f"mlmd2kfp {__version__} (mapping version {MAPPING_VERSION})")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    _state["debug"] = debug


@schema_app.command("create", short_help="Create the target tables as KFP's API server would.")
def schema_create(kfp_url: KfpUrl = None) -> None:
    """Create `artifacts`, `tasks` and `artifact_tasks` exactly as KFP's API server would.

    Existing tables are left alone. An old-form `tasks` table (KFP before MLMD removal) is
    never touched: `migrate` moves it aside.
    """
    from . import api

    settings = Settings(kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    result = api.schema_create(settings.kfp_url)  # type: ignore[arg-type]
    for name in result.created:
        console.info(f"created table `{name}`")
    for note in result.notes:
        console.warn(note)
    if not result.created and not result.notes:
        console.info("nothing to create: every target table exists")
    for warning in result.status.warnings:
        console.print_data(f"warning: {warning}")
    if result.status.differences:
        for diff in result.status.differences:
            console.print_data(f"DIFF {diff}")
        raise typer.Exit(1)


@schema_app.command("check", short_help="Compare the KFP database with the target schema.")
def schema_check(kfp_url: KfpUrl = None) -> None:
    """Compare the KFP database with the target schema; exit 1 on any difference.

    Extra nullable or defaulted columns and extra non-unique indexes on the three tables are
    accepted with a warning line each (a later KFP release may add them); other tables are not
    compared.
    """
    from . import api

    settings = Settings(kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    status = api.schema_check(settings.kfp_url)  # type: ignore[arg-type]
    for warning in status.warnings:
        console.print_data(f"warning: {warning}")
    if status.ok:
        extras = f" ({len(status.warnings)} extra object(s) accepted, listed above)" if status.warnings else ""
        console.print_data(f"schema OK ({status.dialect}): " + ", ".join(t.name for t in status.tables) + extras)
        return
    for diff in status.differences:
        console.print_data(f"DIFF {diff}")
    console.info(f"{len(status.differences)} difference(s) from the KFP target schema")
    raise typer.Exit(1)


@app.command("plan", short_help="Dry run: what `migrate` would write and skip.")
def plan(
    mlmd_url: MlmdUrl = None,
    kfp_url: KfpUrl = None,
    multi_user: Annotated[Optional[bool], typer.Option(
        "--multi-user/--single-user", help="Install mode (KFP's MULTIUSER). Default: detected from the runs' "
        "namespaces; mixed runs make you choose.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", metavar="PATH", help="Write the full report as JSON here.")] = None,
    markdown_path: Annotated[Optional[Path], typer.Option("--markdown", metavar="PATH", help="Write the report as Markdown here.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any MLMD row would be skipped or a run "
                                         "has no pipeline spec.")] = False,
) -> None:
    """Dry run: read and map every run, print what `migrate` would write and skip; write nothing."""
    from . import api
    from .migrate.plan_render import plan_json, plan_markdown, render_plan

    settings = Settings(mlmd_url=_require(mlmd_url, "--mlmd-url", MLMD_URL_ENV),
                        kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    with console.RunProgress("reading and mapping") as progress:
        report = api.plan(settings.mlmd_url, settings.kfp_url,  # type: ignore[arg-type]
                          multi_user=multi_user, on_progress=progress)
    console.print_data(render_plan(report))
    if json_path:
        json_path.write_text(plan_json(report), encoding="utf-8")
        console.info(f"wrote {json_path}")
    if markdown_path:
        markdown_path.write_text(plan_markdown(report), encoding="utf-8")
        console.info(f"wrote {markdown_path}")
    code = report.exit_code(strict)
    if code:
        console.error(f"--strict: {report.skipped_rows} MLMD row(s) would be skipped and "
                      f"{report.runs_without_spec} run(s) have no spec; see the ledger above")
    raise typer.Exit(code)


@app.command("migrate", short_help="Copy MLMD runs into the KFP tables; resumable.")
def migrate_cmd(
    mlmd_url: MlmdUrl = None,
    kfp_url: KfpUrl = None,
    multi_user: Annotated[Optional[bool], typer.Option(
        "--multi-user/--single-user", help="Install mode (KFP's MULTIUSER); default: detected.")] = None,
    stage_only: Annotated[bool, typer.Option("--stage-only", help="Write into the staging table and stop before "
                          "the cutover (pre-run while the old KFP still serves traffic).")] = False,
    batch_rows: Annotated[int, typer.Option("--batch-rows", metavar="ROWS", min=1, help="Target rows per transaction "
                          "(whole runs; a large run makes a larger batch).")] = 2000,
    max_rows_per_second: Annotated[Optional[float], typer.Option("--max-rows-per-second", metavar="ROWS", min=1,
                                   help="Throttle writes to spare a database that serves traffic.")] = None,
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", metavar="NAMESPACE", help="Only runs of this namespace "
                         "(repeatable).")] = None,
    run: Annotated[Optional[list[str]], typer.Option("--run", metavar="RUN_ID", help="Only this run id (repeatable).")] = None,
    source_name: Annotated[str, typer.Option("--source-name", metavar="NAME", help="Names this MLMD database when several are "
                           "migrated into one KFP database: mixed into every id, with a state of its own; every "
                           "rerun of this source passes the same value (docs/mapping.md W13).")] = "",
    strict: Annotated[bool, typer.Option("--strict", help="Plan first and refuse to write when any MLMD row "
                      "would be skipped.")] = False,
    force_mode: Annotated[bool, typer.Option("--force-mode", help="Migrate in the mode given even where the runs' "
                          "namespaces contradict it (refused otherwise).")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    report_path: Annotated[Optional[Path], typer.Option("--report", metavar="PATH", help="Write the summary as JSON here.")] = None,
) -> None:
    """Copy MLMD runs into `tasks`, `artifacts` and `artifact_tasks`: batched, resumable, idempotent.

    Whole runs per transaction, each with its checkpoint; safe to kill and rerun. A rerun re-reads
    only runs that changed ("true up"). Ends with the cutover unless --stage-only.
    """
    from . import api
    from .migrate.runner_render import render_migrate, migrate_json

    settings = Settings(mlmd_url=_require(mlmd_url, "--mlmd-url", MLMD_URL_ENV),
                        kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    if strict:  # refused before the prompt: nothing to confirm when nothing will be written
        with console.RunProgress("strict: planning") as planning:
            api.refuse_unclean_plan(settings.mlmd_url, settings.kfp_url,  # type: ignore[arg-type]
                                    multi_user=multi_user, source_name=source_name, on_progress=planning)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("migrate writes into the KFP database; pass --yes to confirm (no terminal to ask on)")
        what = "stage runs (no cutover)" if stage_only else "migrate runs and swap the tasks tables (cutover)"
        if not typer.confirm(f"{what} in {console.mask_url(settings.kfp_url)}?"):  # type: ignore[arg-type]
            raise ToolkitError("not confirmed at the prompt: nothing was changed (rerun and answer y, or pass --yes)")
    with console.RunProgress("migrating") as progress:
        options = api.MigrateOptions(multi_user=multi_user, stage_only=stage_only, batch_rows=batch_rows,
                                     max_rows_per_second=max_rows_per_second, namespaces=tuple(namespace or ()),
                                     run_ids=tuple(run or ()), source_name=source_name, force_mode=force_mode)
        report = api.migrate(settings.mlmd_url, settings.kfp_url, options,  # type: ignore[arg-type]
                             on_progress=progress, on_event=console.info)
    console.print_data(render_migrate(report))
    if report_path:
        report_path.write_text(migrate_json(report), encoding="utf-8")
        console.info(f"wrote {report_path}")


@app.command("verify", short_help="Independent parity check of MLMD and the KFP tables.")
def verify_cmd(
    mlmd_url: MlmdUrl = None,
    kfp_url: KfpUrl = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", metavar="PATH", help="Write the report as JSON here.")] = None,
    markdown_path: Annotated[Optional[Path], typer.Option("--markdown", metavar="PATH", help="Write the report as Markdown here.")] = None,
    junit_path: Annotated[Optional[Path], typer.Option("--junit", metavar="PATH", help="Write JUnit XML here (one test case per "
                          "check and per failing run).")] = None,
    run: Annotated[Optional[list[str]], typer.Option("--run", metavar="RUN_ID", help="Only this run id (repeatable).")] = None,
    namespace: Annotated[Optional[list[str]], typer.Option("--namespace", metavar="NAMESPACE", help="Only this namespace (repeatable).")] = None,
    multi_user: Annotated[Optional[bool], typer.Option("--multi-user/--single-user",
                          help="Install mode; default: the one the migration recorded.")] = None,
    source: Annotated[str, typer.Option("--source", metavar="auto|api|sql", help="How to read MLMD for the expected side: auto "
                      "(ml-metadata API when installed), api, sql.")] = "auto",
    source_name: Annotated[Optional[str], typer.Option("--source-name", metavar="NAME", help="The --source-name this MLMD database "
                           "was migrated with; needed when the KFP database holds several sources.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-derive and compare every run. Default: when a passing full "
                    "verify left its per-run records, compare in full only the runs whose MLMD rows or migrated "
                    "rows changed since (the report says which kind ran).")] = False,
) -> None:
    """Independent parity check of MLMD against the migrated tables; exit 0 when all holds, 1 on a difference.

    Coverage, counts, lineage per run, invariants, cache fingerprints, run states. The result is
    recorded for `status --check`.
    """
    from . import api
    from .verify.report import render_table, to_json, to_junit, to_markdown

    settings = Settings(mlmd_url=_require(mlmd_url, "--mlmd-url", MLMD_URL_ENV),
                        kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    with console.RunProgress("verifying") as progress:  # a subset is recorded as `partial`: it never opens the gate
        options = api.VerifyOptions(run_ids=tuple(run or ()), namespaces=tuple(namespace or ()), multi_user=multi_user,
                                    source_path=source, source_name=source_name, full=full)
        report = api.verify(settings.mlmd_url, settings.kfp_url, options,  # type: ignore[arg-type]
                            on_progress=progress)
    console.print_data(render_table(report))
    for path, render in ((json_path, to_json), (markdown_path, to_markdown), (junit_path, to_junit)):
        if path:
            path.write_text(render(report), encoding="utf-8")
            console.info(f"wrote {path}")
    if report.not_recorded:  # the report above stands, but the gate cannot take it
        raise MigrationFailedError(report.not_recorded)
    raise typer.Exit(report.exit_code)


@app.command("window", short_help="The maintenance window: true-up, cutover, verify, gate.")
def window_cmd(
    mlmd_url: MlmdUrl = None,
    kfp_url: KfpUrl = None,
    source_name: Annotated[str, typer.Option("--source-name", metavar="NAME", help="The --source-name the pre-run "
                           "used.")] = "",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    report_path: Annotated[Optional[Path], typer.Option("--report", metavar="PATH", help="Write the window's "
                           "account (seconds per phase, what each covered) as JSON here.")] = None,
) -> None:
    """After the pre-run and its verify, with the old API server stopped: the true-up and the cutover
    (`migrate`), `verify` (incremental after the pre-run's), then the startup gate with MLMD compared.

    A line as each phase starts and one at the end with how long the window took and what it covered;
    exit 0 when the gate opened, 1 when verify found differences or the gate stayed closed.
    """
    from .window import run_window

    settings = Settings(mlmd_url=_require(mlmd_url, "--mlmd-url", MLMD_URL_ENV),
                        kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("window migrates and swaps the tasks tables; pass --yes to confirm (no terminal to ask on)")
        if not typer.confirm(f"true up, cut over and verify in {console.mask_url(settings.kfp_url)}?"):  # type: ignore[arg-type]
            raise ToolkitError("not confirmed at the prompt: nothing was changed (rerun and answer y, or pass --yes)")
    with console.RunProgress("window") as progress:
        report = run_window(settings.mlmd_url, settings.kfp_url, source_name, say=console.info, on_progress=progress)
    console.print_data(report.line())
    if report_path:
        import json as _json

        report_path.write_text(_json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str), encoding="utf-8")
        console.info(f"wrote {report_path}")
    raise typer.Exit(report.exit_code)


@app.command("status", short_help="The migration's state; --check is the startup gate.")
def status_cmd(
    kfp_url: KfpUrl = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as JSON.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Startup gate: exit 0 only when a migration finished "
                     "and its last verify passed; else 1 with one line saying why.")] = False,
    mlmd_url: Annotated[Optional[str], typer.Option(
        "--mlmd-url", metavar="URL", envvar=MLMD_URL_ENV, show_envvar=True, help="With --check: also compare "
        "MLMD with what the last verify recorded (a run changed, added or gone since closes the gate).")] = None,
    with_mlmd: Annotated[bool, typer.Option("--with-mlmd", help="With --check: compare MLMD as --mlmd-url does, "
                         "reached through the MLMD2KFP_DB_* variables (the Job manifests).")] = False,
    source_name: Annotated[Optional[str], typer.Option("--source-name", metavar="NAME", help="With --mlmd-url: "
                           "the source this MLMD database is, when the KFP database holds several.")] = None,
) -> None:
    """Show the migration's phase, counts, checkpoint, last error and last verify result."""
    from . import api
    from .migrate.runner_render import render_status

    settings = Settings(kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    if check:
        mlmd = _require(mlmd_url, "--mlmd-url", MLMD_URL_ENV) if mlmd_url or with_mlmd else None
        passed, why, mlmd_line = api.gate(settings.kfp_url, mlmd, source_name)  # type: ignore[arg-type]
        if mlmd_line is not None:
            why = f"{why}; {mlmd_line}" if passed else mlmd_line
        elif passed:
            why += " (MLMD not compared: pass --mlmd-url to check it still holds what verify compared)"
        console.print_data(("OK: " if passed else "NOT READY: ") + why)
        raise typer.Exit(0 if passed else 1)
    report = api.status(settings.kfp_url)  # type: ignore[arg-type]
    if as_json:
        import json as _json

        console.out.print_json(_json.dumps(report.to_dict(), default=str))
        return
    console.print_data(render_status(report))


@app.command("rollback", short_help="Delete the rows this tool wrote; restore old `tasks`.")
def rollback_cmd(
    kfp_url: KfpUrl = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: delete every row this tool wrote.")] = False,
    source_name: Annotated[Optional[str], typer.Option("--source-name", metavar="NAME", help="Roll back this source's migration "
                           "only; needed when the KFP database holds several.")] = None,
    force_without_old_tasks: Annotated[bool, typer.Option("--force-without-old-tasks", help="Roll back even though "
                                       "`tasks_pre_migration` is gone or differs from what the cutover moved aside.")] = False,
) -> None:
    """Delete exactly the rows this tool wrote and move the old `tasks` table back; KFP's own rows stay.

    With several MLMD sources migrated in, each is rolled back on its own; the last one also restores
    the old `tasks` table."""
    from . import api

    settings = Settings(kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    if not yes:
        raise UsageError("rollback deletes every row this tool wrote; pass --yes to confirm")
    report = api.rollback(settings.kfp_url, source_name=source_name,  # type: ignore[arg-type]
                          force_without_old_tasks=force_without_old_tasks)
    if not report.changed and not report.notes and not report.kept_live_rows:  # an earlier rollback did it all
        console.print_data("nothing to roll back: no row, table or moved `tasks` of the migration is left "
                           "(it was rolled back already); nothing was changed")
        return
    for table, n in report.deleted.items():
        console.print_data(f"deleted {n} row(s) from `{table}`")
    for table in report.dropped:
        console.print_data(f"dropped `{table}` (created by the migration)")
    if report.restored_old_tasks:
        console.print_data("moved `tasks_pre_migration` back to `tasks`")
    for table, n in report.kept_live_rows.items():
        console.warn(f"`{table}` keeps {n} row(s) written by KFP itself")
    for note in report.notes:
        console.warn(note)


@app.command("cleanup", short_help="Drop `tasks_pre_migration` and the tool's tables.")
def cleanup_cmd(
    kfp_url: KfpUrl = None,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: drop `tasks_pre_migration` and the tool's tables.")] = False,
) -> None:
    """Drop `tasks_pre_migration` and the tool's own tables but `mlmd2kfp_state`, which keeps the startup gate
    open; refused until the gate is open."""
    from . import api

    settings = Settings(kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    if not yes:
        raise UsageError("cleanup drops `tasks_pre_migration` and the tool's tables; pass --yes to confirm")
    dropped = api.cleanup(settings.kfp_url)  # type: ignore[arg-type]
    for table in dropped:
        console.print_data(f"dropped `{table}`")
    if "mlmd2kfp_state" in dropped:
        console.print_data("the migration was rolled back, so nothing of the tool is left now (the startup gate, "
                           "which the new KFP needs, stays closed)")
    else:
        console.print_data("kept `mlmd2kfp_state`: it records the cleanup, and `mlmd2kfp status --check` stays open "
                           "on it" if dropped else "nothing to clean up: the migration was cleaned up before")


@app.command("sample", short_help="Write realistic MLMD and KFP databases.")
def sample(
    mlmd_url: MlmdUrl = None,
    kfp_url: KfpUrl = None,
    runs: Annotated[Optional[int], typer.Option("--runs", metavar="N", min=1, help="Number of runs to write; default: one "
                    "run of every scenario. More repeats the scenario shapes with fresh ids.")] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed for ids and values; equal seeds write equal databases.")] = 0,
    single_user: Annotated[bool, typer.Option("--single-user", help="Write a single-user installation "
                           "(every KFP namespace empty) instead of a multi-user one.")] = False,
    fast: Annotated[bool, typer.Option("--fast", help="For large benchmark databases: write one repetition "
                    "through ml-metadata, then copy its rows N times with bulk SQL.")] = False,
    no_spec: Annotated[bool, typer.Option("--no-spec", help="Write the same runs with no pipeline spec anywhere "
                       "(PipelineSpecManifest NULL, no pipeline version), so every no-spec fallback is used.")] = False,
) -> None:
    """Write a realistic MLMD database (through ml-metadata) and the matching pre-upgrade KFP database.

    Replays runs of real compiled pipelines the way KFP's driver and launcher write MLMD:
    loops, conditions, an exit handler, importers, cache hits, failures, a retried run, an
    in-flight run, an orphan run, a run whose spec is only in `pipeline_versions`, and a v1 run.
    """
    from . import api
    from .sample.render import render_sample_report

    settings = Settings(mlmd_url=_require(mlmd_url, "--mlmd-url", MLMD_URL_ENV),
                        kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    if fast and no_spec:
        raise UsageError("--no-spec works with the ml-metadata sample only; drop --fast")
    if fast:
        with console.RunProgress("copying repetitions") as progress:
            records = api.fast_sample(settings.mlmd_url, settings.kfp_url, runs=runs or 11,  # type: ignore[arg-type]
                                      seed=seed, single_user=single_user, on_progress=progress)
        console.print_data(f"wrote {len(records)} runs ({len(records) // 11} repetitions of the scenario set) "
                           "with bulk SQL")
        return
    # minutes for thousands of runs: a bar on a terminal, off it a line per tenth once there are enough to wait for
    with console.RunProgress("writing runs through ml-metadata") as progress:
        report = api.sample(settings.mlmd_url, settings.kfp_url, runs=runs, seed=seed,  # type: ignore[arg-type]
                            single_user=single_user, no_spec=no_spec,
                              on_progress=progress if console.err.is_terminal or (runs or 0) >= 100 else None)
    console.print_data(render_sample_report(report))


@app.command("demo", short_help="The whole job on embedded SQLite files.")
def demo(
    directory: Annotated[Path, typer.Option("--dir", metavar="DIR", help="Folder for the SQLite files (created if missing).")]
    = Path("demo-out"),
) -> None:
    """Run the whole job on embedded SQLite files, with no server: sample, schema, plan, migrate, verify.

    Writes `mlmd.sqlite` (MLMD) and `kfp.sqlite` (KFP) into DIR and prints what to look at.
    """
    from .demo import run_demo

    result = run_demo(directory)
    for line in result.lines:
        console.print_data(line)


def _stop_at_once(signum: int, _frame: object) -> None:
    raise StoppedAtOnce(signal.Signals(signum).name)


def main() -> None:
    """Console-script entry point: run the app, turn `ToolkitError` into one line and its exit code.

    Usage errors are click's (exit 2); `typer.Exit` carries a command's own exit code.
    """
    for sig in (signal.SIGINT, signal.SIGTERM):  # `migrate` installs its own while it writes (StopRequest)
        signal.signal(sig, _stop_at_once)
    try:
        app()
    except StoppedAtOnce as stopped:
        console.error(f"stopped by {stopped.signal_name} before anything was left half-written (a write in progress "
                      "was rolled back; `mlmd2kfp status` shows what is recorded); rerun the command")
        sys.exit(130)
    except ToolkitError as exc:
        if _state["debug"]:  # the traceback, and still the error's own exit code (1 means differences)
            traceback.print_exc()
        else:
            console.error(str(exc))
        sys.exit(exc.exit_code)
    except Exception as exc:  # not one of ours: still one line and exit 3, never a traceback (STYLE.md point 2)
        if _state["debug"]:
            traceback.print_exc()
        else:
            console.error(unexpected_error_line(exc))
        sys.exit(3)
