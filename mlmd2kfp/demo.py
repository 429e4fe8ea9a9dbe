"""`mlmd2kfp demo`: the main job on embedded SQLite files, with no server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import api
from .errors import ConfigError
from .migrate.plan_render import plan_json, plan_markdown
from .migrate.runner_render import migrate_json
from .verify.report import to_junit, to_markdown


@dataclass
class DemoResult:
    """What the demo wrote and the lines that tell an operator what to look at."""

    mlmd_path: Path
    kfp_path: Path
    lines: list[str]


def run_demo(directory: Path) -> DemoResult:
    """Sample into SQLite files in `directory`, create the target schema, plan, migrate, verify, check status.

    Raises:
        ConfigError: `directory` already holds demo databases (remove them or pick another folder).
    """
    directory.mkdir(parents=True, exist_ok=True)
    mlmd_path, kfp_path = directory / "mlmd.sqlite", directory / "kfp.sqlite"
    for path in (mlmd_path, kfp_path):
        if path.exists():
            raise ConfigError(f"{path} already exists; remove it or run `mlmd2kfp demo --dir` with another folder")
    mlmd_url, kfp_url = f"sqlite:///{mlmd_path}", f"sqlite:///{kfp_path}"
    report = api.sample(mlmd_url, kfp_url)
    created = api.schema_create(kfp_url)
    plan = api.plan(mlmd_url, kfp_url)
    (directory / "plan.json").write_text(plan_json(plan), encoding="utf-8")
    (directory / "plan.md").write_text(plan_markdown(plan), encoding="utf-8")
    migrated = api.migrate(mlmd_url, kfp_url)
    (directory / "migrate.json").write_text(migrate_json(migrated), encoding="utf-8")
    verified = api.verify(mlmd_url, kfp_url)
    (directory / "verify.md").write_text(to_markdown(verified), encoding="utf-8")
    (directory / "verify.junit.xml").write_text(to_junit(verified), encoding="utf-8")
    gate_ok, gate_why = api.status(kfp_url).gate
    states: dict[str, int] = {}
    for run in report.runs:
        states[run.state] = states.get(run.state, 0) + 1
    v2 = sum(1 for run in report.runs if not run.pipeline.startswith("v1"))
    reasons = ", ".join(f"{r} {n}" for r, n in sorted(migrated.runs_skipped.items()))
    why_skipped = f" ({reasons})" if reasons else ""
    lines = [
        f"MLMD database (written through ml-metadata, schema 10): {mlmd_path}",
        f"KFP database (pre-upgrade tables + target schema):       {kfp_path}",
        f"runs written to MLMD: {len(report.runs)}, {v2} of them KFP v2 run contexts "
        f"({', '.join(f'{k} {v}' for k, v in sorted(states.items()))}) "
        f"in scenarios: {', '.join(dict.fromkeys(r.scenario for r in report.runs))}",
        f"KFP rows: {', '.join(f'{k} {v}' for k, v in report.kfp_rows.items())}",
        f"target tables created: {', '.join(created.created) or 'none'}",
        *created.notes,
        # one vocabulary (docs/runbook.md "Counts"): run contexts, runs migrated / skipped, rows, ledger entries
        f"plan ({plan.mode}): {plan.runs_total} run contexts: {plan.runs_migrated} runs to migrate, "
        f"{plan.runs_total - plan.runs_migrated} to skip; rows to write: "
        + ", ".join(f"{t} {plan.target_rows.get(t, 0)}" for t in ("tasks", "artifacts", "artifact_tasks"))
        + "; ledger entries (MLMD rows not copied one to one): "
        + ", ".join(f"{r} {s.count}" for r, s in sorted(plan.ledger.items())),
        f"plan report: {directory / 'plan.md'} (and plan.json)",
        f"migrate: {migrated.runs_seen} run contexts: {migrated.runs_written} runs migrated, "
        f"{sum(migrated.runs_skipped.values())} skipped{why_skipped}; rows now "
        + ", ".join(f"{t} {n}" for t, n in migrated.totals.items())
        + ("; cutover done, old `tasks` kept as `tasks_pre_migration`" if migrated.moved_old_tasks else ""),
        f"migrate report: {directory / 'migrate.json'}",
        f"verify ({verified.source_path}): {'PASSED' if verified.passed else 'FAILED'} over "
        f"{verified.runs_checked} run contexts; report {directory / 'verify.md'} (and verify.junit.xml)",
        f"status --check: {'OK' if gate_ok else 'NOT READY'}: {gate_why}",
        f"look at the migrated tasks: sqlite3 {kfp_path} "
        "'SELECT ScopePath, Type, State, TypeAttrs FROM tasks ORDER BY RunUUID, ScopePath'",
        f"check the target schema: mlmd2kfp schema check --kfp-url sqlite:///{kfp_path}",
        "for a real upgrade, follow docs/runbook.md (backup, pre-run, maintenance window, verify, status gate, "
        "rollback, cleanup)",
    ]
    return DemoResult(mlmd_path, kfp_path, lines)
