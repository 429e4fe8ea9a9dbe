"""`MigrateReport` and `StatusReport` → rich tables and JSON (no printing)."""

from __future__ import annotations

import json
import time
from typing import Any

from rich.console import Group
from rich.table import Table

from .admin import StatusReport
from .options import MigrateReport
from .plan import INFORMATIONAL_REASONS


def render_migrate(report: MigrateReport) -> Group:
    """The end-of-run summary: one row per target table, totals, what happened to the schema."""
    table = Table(title=f"migrate (mapping version {report.mapping_version}, {report.mode}) — {report.phase or 'data'}",
                  title_justify="left")
    for col in ("table", "source rows read", "written", "deleted (rewritten)", "ledger by reason", "rows now"):
        table.add_column(col, justify="left" if col in ("table", "ledger by reason") else "right")
    for name, stats in report.tables.items():
        skipped = ", ".join(f"{r} {n}" + ("" if r in INFORMATIONAL_REASONS else " (skipped)")
                            for r, n in sorted(stats.skipped.items())) or "none"
        table.add_row(name, str(stats.read), str(stats.written), str(stats.deleted), skipped,
                      str(report.totals.get(name, "")))
    facts = Table(show_header=False, title="run summary", title_justify="left")
    facts.add_column("item")
    facts.add_column("value", justify="right")
    facts.add_row("runs seen / read (changed) / unchanged", f"{report.runs_seen} / {report.runs_read} / {report.runs_unchanged}")
    facts.add_row("runs written", str(report.runs_written))
    if report.runs_repaired:
        facts.add_row("runs repaired (rows differed from what was written)", str(report.runs_repaired))
    for reason, n in sorted(report.runs_skipped.items()):
        facts.add_row(f"runs skipped ({reason})", str(n))
    facts.add_row("batches (retries)", f"{report.batches} ({report.retries})")
    facts.add_row("tasks written into", f"`{report.staged_in}`")
    for warning in report.schema_warnings:
        facts.add_row("target schema extra (left alone)", warning)
    facts.add_row("cutover", "done" + (" (old `tasks` → `tasks_pre_migration`)" if report.moved_old_tasks else "")
                  if report.cutover else "not yet (--stage-only)")
    if report.old_tasks:
        facts.add_row("old tasks: cache rows / node rows (kept, not copied)",
                      f"{report.old_tasks.get('cache_rows')} / {report.old_tasks.get('node_rows')}")
        facts.add_row("old cache fingerprints agreeing / differing (rows written now)",
                      f"{report.fingerprints['agree']} / {report.fingerprints['differ']}")
    facts.add_row("seconds", ", ".join(f"{k} {v}" for k, v in report.seconds.items()))
    return Group(table, facts)


def migrate_json(report: MigrateReport) -> str:
    """The summary as JSON."""
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str)


def render_status(report: StatusReport) -> Table:
    """The state row and counts."""
    table = Table(show_header=False, title=f"status of {report.kfp_url}", title_justify="left")
    table.add_column("item")
    table.add_column("value")
    if not report.states:
        table.add_row("migration", "none recorded")

    def when(v: Any) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(v))) if v else "-"

    for s in report.states:
        if len(report.states) > 1:
            table.add_row("source", f"`{s.source_name}`" if s.source_name else "(default: no --source-name)")
        for key in ("phase", "status", "pass_number", "last_context_id", "runs_migrated", "runs_skipped", "tasks",
                    "artifacts", "links", "staging_table", "source_name", "mapping_version", "holder"):
            value = getattr(s, key)
            if key == "source_name" and not value:
                value = "(default: no --source-name)"
            table.add_row(key, "-" if value is None else str(value))
        table.add_row("started / updated / finished", f"{when(s.started_at)} / {when(s.updated_at)} / "
                      f"{when(s.finished_at)}")
        table.add_row("last error", str(s.last_error or "-"))
        verify = "-" if s.verify_passed is None else ("passed" if s.verify_passed else "FAILED")
        table.add_row("last verify", f"{verify} ({when(s.verify_at)})")
    for k, n in sorted(report.runs.items()):
        table.add_row(f"runs {k}", str(n))
    for k, n in sorted(report.ledger.items()):
        table.add_row(f"ledger {k}", str(n))
    table.add_row("tables", ", ".join(report.tables))
    passed, why = report.gate
    table.add_row("startup gate", ("OK: " if passed else "NOT READY: ") + why)
    return table
