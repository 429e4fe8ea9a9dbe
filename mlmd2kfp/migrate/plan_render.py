"""`PlanReport` → rich tables, JSON text, Markdown text (data in, text out; no printing)."""

from __future__ import annotations

import json

from rich.console import Group
from rich.table import Table

from .plan import INFORMATIONAL_REASONS, PlanReport


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if i else "left")
    return table


def render_plan(report: PlanReport) -> Group:
    """The summary an operator reads on the terminal."""
    head = _table(f"plan (mapping version {report.mapping_version}, {report.mode}"
                  f"{', detected' if report.mode_detected else ''}) — nothing was written",
                  "item", "value")
    head.add_row("MLMD", report.mlmd_url)
    head.add_row("KFP", report.kfp_url)
    head.add_row("runs (MLMD run contexts)", str(report.runs_total))
    head.add_row("runs to migrate", str(report.runs_migrated))
    for reason, n in sorted(report.runs_skipped.items()):
        head.add_row(f"runs skipped ({reason})", str(n))
    head.add_row("runs without a pipeline spec", str(report.runs_without_spec))
    head.add_row("target schema", report.target_schema)
    for warning in report.target_warnings:
        head.add_row("  accepted extra", warning)
    if report.old_tasks.get("cache_rows") is None:
        head.add_row("old tasks", "no old-form `tasks` table (already moved aside, or never there)")
    else:
        head.add_row("old tasks: cache rows / node rows",
                     f"{report.old_tasks.get('cache_rows')} / {report.old_tasks.get('node_rows')}")
    head.add_row("estimated write volume", f"{report.write_bytes / 1e6:.1f} MB")

    target = _table("predicted target rows", "table", "rows")
    for name in ("tasks", "artifacts", "artifact_tasks"):
        target.add_row(name, str(report.target_rows.get(name, 0)))
    target.add_row("  of which derived links", str(report.derived_links))

    by_ns = _table("per namespace", "namespace", "tasks", "artifacts", "artifact_tasks")
    for ns in sorted(set(report.tasks_by_namespace) | set(report.artifacts_by_namespace)):
        by_ns.add_row(ns or "''", str(report.tasks_by_namespace.get(ns, 0)),
                      str(report.artifacts_by_namespace.get(ns, 0)), str(report.links_by_namespace.get(ns, 0)))

    by_type = _table("tasks per type and state", "type / state", "tasks")
    for name, n in sorted(report.tasks_by_type.items()):
        by_type.add_row(name, str(n))
    for name, n in sorted(report.tasks_by_state.items()):
        by_type.add_row(f"state {name}", str(n))

    source = _table("MLMD rows", "table / type", "rows")
    for name, n in report.source_tables.items():
        source.add_row(name, str(n))
    for name, n in report.executions_by_type_state.items():
        source.add_row(f"  {name}", str(n))

    ledger = _table("ledger (MLMD rows that do not become exactly one target row)", "reason", "rows", "first example")
    for reason, summary in sorted(report.ledger.items()):
        ex = summary.examples[0] if summary.examples else None
        example = _example(ex) if ex else "-"
        mark = "" if reason in INFORMATIONAL_REASONS else " (skipped)"
        ledger.add_row(reason + mark, str(summary.count), example)
    return Group(head, target, by_ns, by_type, ledger, source)


def plan_json(report: PlanReport) -> str:
    """The full report as JSON."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str)


def plan_markdown(report: PlanReport) -> str:
    """The report as Markdown, for a change ticket."""
    lines = [f"# mlmd2kfp plan (mapping version {report.mapping_version}, {report.mode})", "", "Nothing was written.", "",
             f"- MLMD: `{report.mlmd_url}`", f"- KFP: `{report.kfp_url}`",
             f"- runs: {report.runs_total} (to migrate {report.runs_migrated}, "
             f"skipped {sum(report.runs_skipped.values())}, without spec {report.runs_without_spec})",
             f"- target schema: {report.target_schema}",
             (f"- old `tasks`: {report.old_tasks.get('cache_rows')} cache rows, "
              f"{report.old_tasks.get('node_rows')} node rows" if report.old_tasks.get("cache_rows") is not None
              else "- old `tasks`: no old-form table (already moved aside, or never there)"),
             f"- estimated write volume: {report.write_bytes / 1e6:.1f} MB", "",
             "## Predicted target rows", "", "| table | rows |", "| --- | ---: |"]
    lines += [f"| {n} | {report.target_rows.get(n, 0)} |" for n in ("tasks", "artifacts", "artifact_tasks")]
    lines += ["", "## Per namespace", "", "| namespace | tasks | artifacts | artifact_tasks |", "| --- | ---: | ---: | ---: |"]
    for ns in sorted(set(report.tasks_by_namespace) | set(report.artifacts_by_namespace)):
        lines.append(f"| `{ns}` | {report.tasks_by_namespace.get(ns, 0)} | {report.artifacts_by_namespace.get(ns, 0)} "
                     f"| {report.links_by_namespace.get(ns, 0)} |")
    lines += ["", "## Tasks per type", "", "| type | tasks |", "| --- | ---: |"]
    lines += [f"| {k} | {v} |" for k, v in sorted(report.tasks_by_type.items())]
    lines += ["", "## Ledger", "", "| reason | rows | examples |", "| --- | ---: | --- |"]
    for reason, s in sorted(report.ledger.items()):
        examples = "; ".join(_example(e) for e in s.examples[:3])
        lines.append(f"| {reason} | {s.count} | {examples} |")
    if report.orphan_runs:
        lines += ["", "## Orphan runs (MLMD only)", ""] + [f"- `{r}`" for r in report.orphan_runs]
    if report.target_differences:
        lines += ["", "## Target schema differences", ""] + [f"- {d}" for d in report.target_differences]
    if report.target_warnings:
        lines += ["", "## Target schema extras (accepted, left alone)", ""] + [f"- {w}" for w in report.target_warnings]
    return "\n".join(lines) + "\n"


_MLMD_NAME = {"run": "context"}
"""A ledger entry's entity as MLMD calls the row its id is from (a run's id is its context id)."""


def _example(entry: dict[str, object]) -> str:
    """`run `<id>`, MLMD execution 22` (a run's own id is its MLMD context id; run-less rows have no run)."""
    if entry["entity"] == "migration":  # a note on the whole migration, no MLMD row (docs/mapping.md M24)
        return "no MLMD row: a note on the migration as a whole"
    run_id = str(entry["run_id"])
    where = f"run `{run_id}`, " if run_id and not run_id.startswith("@") else ""
    return f"{where}MLMD {_MLMD_NAME.get(str(entry['entity']), entry['entity'])} {entry['mlmd_id']}"
