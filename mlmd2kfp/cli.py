"""The command line: options → Settings → one library call → rendering (STYLE.md point 1).

Errors from the library are `ToolkitError`s, caught once in `main` and printed as one line;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import console
from .errors import ConfigError, ToolkitError
from .settings import KFP_URL_ENV, MLMD_URL_ENV, Settings

app = typer.Typer(
    name="mlmd2kfp",
    help="Move Kubeflow Pipelines runtime metadata from ML Metadata (MLMD) into KFP's native "
    "`tasks`, `artifacts` and `artifact_tasks` tables.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
schema_app = typer.Typer(help="Create or check the KFP target tables.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

_state = {"debug": False}

MlmdUrl = Annotated[
    Optional[str],
    typer.Option("--mlmd-url", envvar=MLMD_URL_ENV, show_envvar=True,
                 help="SQLAlchemy URL of the MLMD database, e.g. mysql+pymysql://user:pw@host/metadb."),
]
KfpUrl = Annotated[
    Optional[str],
    typer.Option("--kfp-url", envvar=KFP_URL_ENV, show_envvar=True,
                 help="SQLAlchemy URL of the KFP database, e.g. mysql+pymysql://user:pw@host/mlpipeline."),
]


def _require(value: str | None, option: str, env: str) -> str:
    if not value:
        raise ConfigError(f"{option} is required (or set {env})")
    return value


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    _state["debug"] = debug


@schema_app.command("create")
def schema_create(kfp_url: KfpUrl = None) -> None:
    """Create `artifacts`, `tasks` and `artifact_tasks` exactly as KFP's API server would.

    Existing tables are left alone. An old-form `tasks` table (KFP before MLMD removal) is
    never touched: `migrate` moves it aside.
    """
    from .db import connect
    from .target.schema import create_schema

    settings = Settings(kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    with connect(settings.kfp_url, "KFP") as conn:  # type: ignore[arg-type]
        result = create_schema(conn)
    for name in result.created:
        console.info(f"created table `{name}`")
    for note in result.notes:
        console.warn(note)
    if not result.created and not result.notes:
        console.info("nothing to create: every target table exists")
    if result.status.differences:
        for diff in result.status.differences:
            console.print_data(f"DIFF {diff}")
        raise typer.Exit(1)


@schema_app.command("check")
def schema_check(kfp_url: KfpUrl = None) -> None:
    """Compare the KFP database with the target schema; exit 1 on any difference."""
    from .db import connect
    from .target.schema import check_schema

    settings = Settings(kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    with connect(settings.kfp_url, "KFP", create_sqlite=False) as conn:  # type: ignore[arg-type]
        status = check_schema(conn)
    if status.ok:
        console.print_data(f"schema OK ({status.dialect}): " + ", ".join(t.name for t in status.tables))
        return
    for diff in status.differences:
        console.print_data(f"DIFF {diff}")
    console.info(f"{len(status.differences)} difference(s) from the KFP target schema")
    raise typer.Exit(1)


@app.command("plan")
def plan(
    mlmd_url: MlmdUrl = None,
    kfp_url: KfpUrl = None,
    multi_user: Annotated[Optional[bool], typer.Option(
        "--multi-user/--single-user", help="Install mode (KFP's MULTIUSER). Default: detected from the runs' "
        "namespaces; mixed runs make you choose.")] = None,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON here.")] = None,
    markdown_path: Annotated[Optional[Path], typer.Option("--markdown", help="Write the report as Markdown here.")] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any MLMD row would be skipped or a run "
                                         "has no pipeline spec.")] = False,
) -> None:
    """Dry run: read and map every run, print what `migrate` would write and skip; write nothing."""
    from .migrate.plan import build_plan
    from .migrate.plan_render import plan_json, plan_markdown, render_plan

    settings = Settings(mlmd_url=_require(mlmd_url, "--mlmd-url", MLMD_URL_ENV),
                        kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    with console.RunProgress("reading and mapping") as progress:
        report = build_plan(settings.mlmd_url, settings.kfp_url,  # type: ignore[arg-type]
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


@app.command("sample")
def sample(
    mlmd_url: MlmdUrl = None,
    kfp_url: KfpUrl = None,
    runs: Annotated[Optional[int], typer.Option("--runs", min=1, help="Number of runs to write; default: one "
                    "run of every scenario. More repeats the scenario shapes with fresh ids.")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for ids and values; equal seeds write equal databases.")] = 0,
    single_user: Annotated[bool, typer.Option("--single-user", help="Write a single-user installation "
                           "(every KFP namespace empty) instead of a multi-user one.")] = False,
) -> None:
    """Write a realistic MLMD database (through ml-metadata) and the matching pre-upgrade KFP database.

    Replays runs of real compiled pipelines the way KFP's driver and launcher write MLMD:
    loops, conditions, an exit handler, importers, cache hits, failures, a retried run, an
    in-flight run, an orphan run, a run whose spec is only in `pipeline_versions`, and a v1 run.
    """
    from .sample import write_sample
    from .sample.render import render_sample_report

    settings = Settings(mlmd_url=_require(mlmd_url, "--mlmd-url", MLMD_URL_ENV),
                        kfp_url=_require(kfp_url, "--kfp-url", KFP_URL_ENV))
    report = write_sample(settings.mlmd_url, settings.kfp_url, runs=runs, seed=seed,  # type: ignore[arg-type]
                          single_user=single_user)
    console.print_data(render_sample_report(report))


@app.command("demo")
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Folder for the SQLite files (created if missing).")]
    = Path("demo-out"),
) -> None:
    """Run the whole job on embedded SQLite files, with no server: sample, target schema, plan.

    Writes `mlmd.sqlite` (MLMD) and `kfp.sqlite` (KFP) into DIR and prints what to look at.
    """
    from .demo import run_demo

    result = run_demo(directory)
    for line in result.lines:
        console.print_data(line)


def main() -> None:
    """Console-script entry point: run the app, turn `ToolkitError` into one line and its exit code.

    Usage errors are click's (exit 2); `typer.Exit` carries a command's own exit code.
    """
    try:
        app()
    except ToolkitError as exc:
        if _state["debug"]:
            raise
        console.error(str(exc))
        sys.exit(exc.exit_code)
