"""Rendering a `SampleReport` for people (data only in, rich renderable out)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.table import Table

from .api import SampleReport


def render_sample_report(report: SampleReport) -> Table:
    """One row per scenario: runs, namespaces, final states."""
    table = Table(title=f"sample ({'single-user' if report.single_user else 'multi-user'}, seed {report.seed})")
    table.add_column("scenario")
    table.add_column("pipeline")
    table.add_column("runs", justify="right")
    table.add_column("namespaces")
    table.add_column("states")
    by_scenario: dict[str, list[Any]] = {}
    for run in report.runs:
        by_scenario.setdefault(run.scenario, []).append(run)
    for name, runs in by_scenario.items():
        states = Counter(r.state for r in runs)
        table.add_row(name, runs[0].pipeline, str(len(runs)),
                      ", ".join(sorted({r.namespace or "''" for r in runs})),
                      ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    table.caption = "KFP rows: " + ", ".join(f"{k} {v}" for k, v in report.kfp_rows.items())
    return table
