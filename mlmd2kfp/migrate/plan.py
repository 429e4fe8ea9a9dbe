"""`plan`: read everything, map everything, write nothing (STYLE.md point 9).

The report is data (`PlanReport`); `migrate/plan_render.py` turns it into a table, JSON or Markdown.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy import inspect

from sqlalchemy.engine import Engine

from ..db import label, opened
from ..dialects import max_value_bytes
from ..errors import ConfigError
from ..mappers import MapOptions, map_run
from ..mappers.enums import STATE_NAMES, TASK_TYPE_NAMES
from ..records import LedgerEntry, RunRows
from ..bitmap import Bitmap
from ..source.inventory import (count_run_contexts, executions_in_runs, runless_entries, take_inventory,
                                take_kfp_inventory)
from ..source.reader import MlmdReader
from ..target.schema import check_schema, require_run_details
from .state import MAPPING_VERSION

INFORMATIONAL_REASONS = frozenset({"flattened-iteration", "superseded-attempt", "split", "merged-link",
                                   "dag-driver-failure-not-in-mlmd"})
"""Ledger reasons that are structural merges, not data left behind (`--strict` ignores them)."""
EXAMPLES_PER_REASON = 5


@dataclass
class LedgerSummary:
    """Ledger entries of one reason: how many, per entity, and the first few."""

    count: int = 0
    by_entity: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PlanReport:
    """Everything `plan` found and predicts (data only)."""

    mlmd_url: str
    kfp_url: str
    mode: str
    """`multi-user` or `single-user`."""
    mode_detected: bool
    source_tables: dict[str, int]
    executions_by_type_state: dict[str, int]
    artifacts_by_type: dict[str, int]
    runs_total: int = 0
    runs_migrated: int = 0
    runs_skipped: Counter[str] = field(default_factory=Counter)
    runs_without_spec: int = 0
    target_rows: Counter[str] = field(default_factory=Counter)
    tasks_by_namespace: Counter[str] = field(default_factory=Counter)
    artifacts_by_namespace: Counter[str] = field(default_factory=Counter)
    links_by_namespace: Counter[str] = field(default_factory=Counter)
    tasks_by_type: Counter[str] = field(default_factory=Counter)
    tasks_by_state: Counter[str] = field(default_factory=Counter)
    derived_links: int = 0
    ledger: dict[str, LedgerSummary] = field(default_factory=dict)
    orphan_runs: list[str] = field(default_factory=list)
    orphan_run_count: int = 0
    old_tasks: dict[str, int | None] = field(default_factory=dict)
    target_schema: str = ""
    target_differences: list[str] = field(default_factory=list)
    target_warnings: list[str] = field(default_factory=list)
    """Extra columns and indexes on the target tables, accepted and left alone (mapping.md S4)."""
    write_bytes: int = 0
    mapping_version: str = MAPPING_VERSION
    """The mapping version the predicted rows follow (mapping.md)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def skipped_rows(self) -> int:
        """Ledger entries that mean data is left behind (what `--strict` refuses)."""
        return sum(s.count for r, s in self.ledger.items() if r not in INFORMATIONAL_REASONS)

    def exit_code(self, strict: bool) -> int:
        """0, or 1 when `strict` and anything would be skipped or has no spec."""
        return 1 if strict and (self.skipped_rows or self.runs_without_spec) else 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        # Not dataclasses.asdict: it rebuilds a Counter from (key, value) pairs and counts the pairs.
        data: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            data[f.name] = dict(sorted(value.items())) if isinstance(value, dict) else value
        data["ledger"] = {r: {"count": s.count, "by_entity": dict(s.by_entity), "examples": s.examples}
                          for r, s in sorted(self.ledger.items())}
        data["skipped_rows"] = self.skipped_rows
        return data


class _ArtifactSeen:
    """Which (MLMD artifact, namespace) rows were already counted, and which artifacts any run links."""

    def __init__(self) -> None:
        self.by_namespace: dict[str, Bitmap] = defaultdict(Bitmap)
        self.linked = Bitmap()

    def add(self, namespace: str, mlmd_id: int) -> bool:
        """Mark; True when this (artifact, namespace) was new."""
        self.linked.add(mlmd_id)
        new = mlmd_id not in self.by_namespace[namespace]
        self.by_namespace[namespace].add(mlmd_id)
        return new


def detect_mode(runs: int, without_namespace: int, multi_user: bool | None) -> tuple[bool, bool]:
    """(multi_user, detected): the option if given, else all runs namespaced → multi, none → single.

    Raises:
        ConfigError: runs are mixed and no option says which mode the install runs in.
    """
    if multi_user is not None:
        return multi_user, False
    if runs and without_namespace == runs:
        return False, True
    if without_namespace == 0:
        return True, True
    raise ConfigError(
        f"{without_namespace} of {runs} runs have no namespace and the others have one, so the install mode "
        "cannot be detected; pass --multi-user (KFP's MULTIUSER=true) or --single-user, and to `migrate` also "
        "--force-mode (either mode contradicts some runs)"
    )


def refuse_contradicting_mode(n: int, examples: list[str], multi_user: bool) -> None:
    """Refuse an install mode `run_details` contradicts (`n` runs, `examples` of them), before any write.

    Raises:
        ConfigError: naming the runs, what the mode would do to them and the way past (`--force-mode`).
    """
    if not n:
        return
    given, other = ("--multi-user", "--single-user") if multi_user else ("--single-user", "--multi-user")
    what = ("have no namespace, so each would be skipped (namespace-mismatch)" if multi_user else
            "have a namespace, and every row would be written with Namespace '' where KFP's users could not see it")
    raise ConfigError(f"{given} contradicts run_details: {n} run(s) {what} (e.g. run {', '.join(examples)}). Pass "
                      f"the mode KFP runs in ({other}?), or --force-mode to migrate in this one anyway; nothing was "
                      "written")


def _row_bytes(rows: RunRows) -> int:
    total = 0
    for t in rows.tasks:
        total += 200 + sum(len(x) for x in (t.pods, t.status_metadata, t.state_history, t.input_parameters,
                                            t.output_parameters, t.type_attrs, t.scope_path, t.name, t.display_name))
    for link in rows.links:
        total += 600 + len(link.producer) + len(link.artifact_key)
    return total


def build_plan(mlmd_url: str | Engine, kfp_url: str | Engine, *, multi_user: bool | None = None, source_name: str = "",
               on_progress: Callable[[int, int], None] | None = None, page_runs: int = 100) -> PlanReport:
    """Read and map every run; predict the target rows; write nothing.

    Args:
        mlmd_url: MLMD database URL (or an engine, left open).
        kfp_url: KFP database URL (or an engine, left open).
        multi_user: True/False from `--multi-user`/`--single-user`; None to detect.
        source_name: mixed into ids (as `migrate --source-name`).
        on_progress: called with (runs done, runs total) after each run.
        page_runs: run contexts per read page.
    """
    with opened(mlmd_url, "MLMD") as mlmd_engine, opened(kfp_url, "KFP") as kfp_engine, \
            mlmd_engine.connect() as mlmd, kfp_engine.connect() as kfp:
        require_run_details(set(inspect(kfp).get_table_names()))  # as `migrate` refuses it
        reader = MlmdReader(mlmd, kfp, page_runs=page_runs)
        kfp_inv = take_kfp_inventory(kfp)
        multi, detected = detect_mode(kfp_inv.runs, kfp_inv.runs_without_namespace, multi_user)
        inv = take_inventory(reader)
        report = PlanReport(
            label(mlmd_url), label(kfp_url), "multi-user" if multi else "single-user", detected,
            inv.tables, {f"{t} {s}": n for (t, s), n in sorted(inv.executions_by_type_state.items())},
            dict(sorted(inv.artifacts_by_type.items())))
        report.old_tasks = {"cache_rows": kfp_inv.old_tasks_cache_rows, "node_rows": kfp_inv.old_tasks_node_rows}
        status = check_schema(kfp)
        present = [t for t in status.tables if t.present]
        report.target_schema = ("absent" if not present else "old form" if status.old_tasks_present
                                else "new form" if status.ok else "differences")
        report.target_differences = status.differences if present else []
        report.target_warnings = status.warnings
        options = MapOptions(multi_user=multi, source_name=source_name, max_value_bytes=max_value_bytes(kfp))
        total = count_run_contexts(reader)
        seen = _ArtifactSeen()
        for bundle in reader.run_bundles():
            rows = map_run(bundle, options)
            _account(report, rows, seen)
            if bundle.run is not None and bundle.spec is None:
                report.runs_without_spec += 1
            if on_progress:
                on_progress(report.runs_total, total)
        for entry in runless_entries(reader, executions_in_runs(reader), seen.linked, ""):
            _ledger(report, entry.reason, 1, entry.entity, entry)
    return report


def _ledger(report: PlanReport, reason: str, n: int, entity: str, example: LedgerEntry | None = None) -> None:
    summary = report.ledger.setdefault(reason, LedgerSummary())
    summary.count += n
    summary.by_entity[entity] += n
    if example is not None and len(summary.examples) < EXAMPLES_PER_REASON:
        summary.examples.append({"run_id": example.run_id, "entity": example.entity, "mlmd_id": example.mlmd_id,
                                 "detail": example.detail})


def _account(report: PlanReport, rows: RunRows, seen: _ArtifactSeen) -> None:
    report.runs_total += 1
    for entry in rows.ledger:
        _ledger(report, entry.reason, 1, entry.entity, entry)
    if rows.skipped:
        report.runs_skipped[rows.skipped] += 1
        if rows.skipped == "orphan-run":
            report.orphan_run_count += 1
            if len(report.orphan_runs) < 20:
                report.orphan_runs.append(rows.run_id)
        return
    report.runs_migrated += 1
    ns = rows.namespace or ""
    report.warnings.extend(rows.warnings[:1])
    report.target_rows["tasks"] += len(rows.tasks)
    report.target_rows["artifact_tasks"] += len(rows.links)
    report.tasks_by_namespace[ns] += len(rows.tasks)
    report.links_by_namespace[ns] += len(rows.links)
    report.derived_links += sum(1 for link in rows.links if link.mlmd_event_id is None)
    for task in rows.tasks:
        report.tasks_by_type[TASK_TYPE_NAMES[task.type]] += 1
        report.tasks_by_state[STATE_NAMES[task.state]] += 1
    counted: set[int] = set()
    for artifact in rows.artifacts:
        if artifact.mlmd_artifact_id in counted:
            continue
        counted.add(artifact.mlmd_artifact_id)
        if seen.add(ns, artifact.mlmd_artifact_id):
            n = sum(1 for a in rows.artifacts if a.mlmd_artifact_id == artifact.mlmd_artifact_id)
            report.target_rows["artifacts"] += n
            report.artifacts_by_namespace[ns] += n
            report.write_bytes += n * 400 + sum(len(a.metadata) + len(a.uri or "") for a in rows.artifacts
                                                if a.mlmd_artifact_id == artifact.mlmd_artifact_id)
    report.write_bytes += _row_bytes(rows)
