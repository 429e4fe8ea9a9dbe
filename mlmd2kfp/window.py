"""`mlmd2kfp window`: the maintenance window as one sequence (issue #30; docs/runbook.md §3).

After the pre-run (`migrate --stage-only`) and its verify, with the old API server stopped: the true-up and
the cutover (`migrate`), the verify (incremental after the pre-run's verify), then the startup gate with
MLMD compared (`status --check --mlmd-url`). Each phase says when it starts; the window stops at the first
phase that does not hold, and the report says how long each part took and what it covered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from typing import TYPE_CHECKING

from . import api

if TYPE_CHECKING:
    from .migrate.options import MigrateReport
    from .verify.report import ParityReport


@dataclass
class WindowReport:
    """What the window did: each phase's seconds, the migrate and verify reports, the gate's line."""

    seconds: dict[str, float] = field(default_factory=dict)
    migrated: MigrateReport | None = None
    verified: ParityReport | None = None
    gate: tuple[bool, str] = (False, "not reached")

    @property
    def exit_code(self) -> int:
        """0 when the gate opened, 1 when verify found differences or the gate stayed closed."""
        return 0 if self.gate[0] else 1

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready account (`window --report`)."""
        m, v = self.migrated, self.verified
        return {"seconds": self.seconds, "gate": {"open": self.gate[0], "line": self.gate[1]},
                "migrate": None if m is None else {"runs_read": m.runs_read, "runs_unchanged": m.runs_unchanged,
                                                   "runs_written": m.runs_written, "cutover": m.cutover},
                "verify": None if v is None else {"kind": v.kind, "passed": v.passed, "runs_checked": v.runs_checked,
                                                  "coverage": v.checks["coverage"].info if "coverage" in v.checks
                                                  else {}}}

    def line(self) -> str:
        """The final line: how long the window took and what it covered."""
        parts = [f"window: {self.seconds.get('total', 0.0):.1f} s"]
        if self.migrated is not None:
            m = self.migrated
            parts.append(f"true-up and cutover {self.seconds.get('migrate', 0.0):.1f} s ({m.runs_read} run(s) re-read, "
                         f"{m.runs_unchanged} unchanged{', cut over' if m.cutover else ''})")
        if self.verified is not None:
            v = self.verified
            parts.append(f"verify {self.seconds.get('verify', 0.0):.1f} s ({v.kind}, {v.runs_checked} run(s) compared "
                         f"in full{'' if v.passed else ', FAILED'})")
        parts.append(("gate OK: " if self.gate[0] else "gate NOT READY: ") + self.gate[1])
        return "; ".join(parts)


def run_window(mlmd: Any, kfp: Any, source_name: str = "", say: Callable[[str], None] = lambda _: None,
               on_progress: Callable[..., None] | None = None) -> WindowReport:
    """The window's phases in order on two databases (URLs or engines); `say` gets a line as each starts,
    `on_progress` (done, total[, rows]) the progress of migrate and verify.

    Raises:
        ToolkitError: as `migrate` and `verify` raise (nothing of a phase is half-written; rerun the window).
    """
    report, started = WindowReport(), time.monotonic()
    try:
        say("true-up and cutover (migrate)")
        report.migrated = _timed(report, "migrate", lambda: api.migrate(
            mlmd, kfp, api.MigrateOptions(source_name=source_name), on_progress=on_progress, on_event=say))
        say("verify")
        report.verified = _timed(report, "verify", lambda: api.verify(
            mlmd, kfp, api.VerifyOptions(source_name=source_name), on_progress=on_progress))
        if not report.verified.passed:
            report.gate = (False, "verify found differences (see its report); fix them, rerun `mlmd2kfp window`")
        elif report.verified.not_recorded:
            report.gate = (False, report.verified.not_recorded)
        else:
            say("startup gate, MLMD compared")
            passed, why, mlmd_line = _timed(report, "gate", lambda: api.gate(kfp, mlmd, source_name))
            report.gate = (passed, mlmd_line if mlmd_line is not None else why)
    finally:
        report.seconds["total"] = round(time.monotonic() - started, 3)
    return report


def _timed(report: WindowReport, phase: str, step: Callable[[], Any]) -> Any:
    started = time.monotonic()
    try:
        return step()
    finally:
        report.seconds[phase] = round(time.monotonic() - started, 3)
