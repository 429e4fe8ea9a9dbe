"""`ParityReport`: verify's result as data, and its renderers (rich table, JSON, Markdown, JUnit XML)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from xml.etree import ElementTree as ET

from rich.table import Table

FINDINGS_SHOWN = 20
FINDINGS_KEPT = 200
"""Findings a check keeps (it counts them all)."""
NOT_COMPARED = ("Rows whose ids are not the tool's (version-4 ids: written by KFP's API server) are counted, not "
                "compared. Every column of every tool-written row is compared; nothing else is left out.")


@dataclass
class Finding:
    """One difference: which run, which row, which field, expected vs found."""

    check: str
    run: str
    row: str
    field: str
    expected: Any = None
    found: Any = None

    def line(self) -> str:
        """One readable line."""
        return (f"run {self.run or '-'}: {self.row}: {self.field}: expected {self.expected!r}, found {self.found!r}")


@dataclass
class CheckResult:
    """One check: how many things it looked at and what failed."""

    name: str
    description: str
    checked: int = 0
    failures: list[Finding] = field(default_factory=list)
    failure_count: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    blocking: bool = True
    """False for reported-only checks (run state disagreements)."""

    def fail(self, finding: Finding) -> None:
        self.failure_count += 1
        if len(self.failures) < FINDINGS_KEPT:
            self.failures.append(finding)

    @property
    def passed(self) -> bool:
        return self.failure_count == 0 or not self.blocking


@dataclass
class ParityReport:
    """Everything `verify` found."""

    mlmd_url: str
    kfp_url: str
    source_path: str
    mode: str
    mapping_version: str = ""
    """The mapping version the expected rows were derived with (mapping.md)."""
    runs_checked: int = 0
    scope: str = "whole"
    """`whole`, or `partial` for a `--run`/`--namespace` subset (which never opens the startup gate)."""
    phase: str = "after cutover"
    """The state verified in: staged before the cutover, or after it."""
    kind: str = "full"
    """`full` (every run re-derived and compared), or `incremental` (only what changed since the records)."""
    chain: dict[str, Any] | None = None
    """An incremental verify's: the full verify its records chain to (time, mapping version)."""
    not_recorded: str | None = None
    """Why the result was not recorded for the gate (a `migrate` or `rollback` wrote while verify read)."""
    checks: dict[str, CheckResult] = field(default_factory=dict)
    failing_runs: Counter[str] = field(default_factory=Counter)

    def check(self, name: str, description: str, blocking: bool = True) -> CheckResult:
        if name not in self.checks:
            self.checks[name] = CheckResult(name, description, blocking=blocking)
        return self.checks[name]

    def fail(self, finding: Finding) -> None:
        self.checks[finding.check].fail(finding)
        if finding.run and self.checks[finding.check].blocking:
            self.failing_runs[finding.run] += 1

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks.values())

    @property
    def exit_code(self) -> int:
        """0 when everything holds, 1 on any difference."""
        return 0 if self.passed else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed, "source_path": self.source_path, "mode": self.mode,
            "mapping_version": self.mapping_version, "mlmd_url": self.mlmd_url, "kfp_url": self.kfp_url, "runs_checked": self.runs_checked,
            "scope": self.scope, "phase": self.phase, "kind": self.kind, "chain": self.chain,
            "not_compared": NOT_COMPARED, "failing_runs": dict(self.failing_runs),
            "checks": {n: {"passed": c.passed, "blocking": c.blocking, "description": c.description,
                           "checked": c.checked, "failures": c.failure_count, "info": c.info,
                           "first_failures": [f.__dict__ for f in c.failures[:FINDINGS_SHOWN]]}
                       for n, c in self.checks.items()},
        }

    def summary(self) -> dict[str, Any]:
        """What the state table keeps for `status`."""
        return {"passed": self.passed, "source_path": self.source_path, "mapping_version": self.mapping_version,
                "runs_checked": self.runs_checked,
                "scope": self.scope, "phase": self.phase, "kind": self.kind, "chain": self.chain, "failures": {n: c.failure_count for n, c in self.checks.items() if c.failure_count}}


def info_text(info: dict[str, Any]) -> str:
    """A check's counters as words: `name: key n, key n; name n` (nothing empty, no Python reprs)."""
    parts = []
    for name, value in info.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items() if v)
            parts.append(f"{name}: {inner or 'none'}")
        else:
            parts.append(f"{name} {value}")
    return "; ".join(parts)


def render_table(report: ParityReport) -> Table:
    table = Table(title=f"verify (mapping version {report.mapping_version}, {report.mode}, {report.phase}, "
                        f"{report.scope}, {report.kind}; expected side read through "
                        f"{report.source_path}) — "
                        f"{'PASSED' if report.passed else 'FAILED'}", title_justify="left")
    for col in ("check", "checked", "failures", "detail"):
        table.add_column(col, justify="right" if col in ("checked", "failures") else "left")
    for c in report.checks.values():
        mark = "✓" if c.failure_count == 0 else ("!" if not c.blocking else "✗")
        first = c.failures[0].line() if c.failures else info_text(c.info)
        table.add_row(f"{mark} {c.name}", str(c.checked), str(c.failure_count), first or "-")
    table.caption = f"runs checked: {report.runs_checked}; failing runs: {len(report.failing_runs)}"
    return table


def to_json(report: ParityReport) -> str:
    return json.dumps(report.to_dict(), indent=2, sort_keys=True, default=str)


def to_markdown(report: ParityReport) -> str:
    lines = [f"# mlmd2kfp verify: {'PASSED' if report.passed else 'FAILED'}", "",
             f"- expected side read through: {report.source_path}", f"- mode: {report.mode}",
             f"- mapping version: {report.mapping_version}",
             f"- state verified: {report.phase}",
             f"- scope: {report.scope}" + (" (a `--run`/`--namespace` subset: the startup gate stays closed)"
                                          if report.scope == "partial" else ""),
             f"- kind: {report.kind}" + (" (compared in full only the runs that changed since the records of a "
                                        "full verify)" if report.kind == "incremental" else ""),
             f"- runs checked: {report.runs_checked}", "", "| check | checked | failures | what it compares |",
             "| --- | ---: | ---: | --- |"]
    lines += [f"| {c.name}{'' if c.blocking else ' (reported only)'} | {c.checked} | {c.failure_count} | "
              f"{c.description} |" for c in report.checks.values()]
    columns = report.checks["lineage"].info.get("columns compared") if "lineage" in report.checks else None
    if columns:
        lines += ["", "## columns compared", "", ", ".join(f"`{k}` {v}" for k, v in columns.items())]
    lines += ["", "## not compared", "", NOT_COMPARED]
    for c in report.checks.values():
        if c.failures:
            lines += ["", f"## {c.name}", ""] + [f"- {f.line()}" for f in c.failures[:FINDINGS_SHOWN]]
            if c.failure_count > FINDINGS_SHOWN:
                lines.append(f"- … and {c.failure_count - FINDINGS_SHOWN} more")
    return "\n".join(lines) + "\n"


def to_junit(report: ParityReport) -> str:
    """One test case per check and one per failing run, so CI systems show it natively."""
    cases = []
    for c in report.checks.values():
        case = ET.Element("testcase", classname="mlmd2kfp.verify", name=c.name)
        if not c.passed:
            failure = ET.SubElement(case, "failure", message=f"{c.failure_count} difference(s)", type=c.name)
            failure.text = "\n".join(f.line() for f in c.failures[:FINDINGS_SHOWN])
        elif c.failure_count:
            out = ET.SubElement(case, "system-out")
            out.text = "\n".join(f.line() for f in c.failures[:FINDINGS_SHOWN])
        cases.append(case)
    for run, n in sorted(report.failing_runs.items()):
        case = ET.Element("testcase", classname="mlmd2kfp.verify.runs", name=f"run {run}")
        failure = ET.SubElement(case, "failure", message=f"{n} difference(s)", type="run")
        failure.text = "\n".join(f.line() for c in report.checks.values() for f in c.failures if f.run == run)[:20000]
        cases.append(case)
    suite = ET.Element("testsuite", name="mlmd2kfp verify", tests=str(len(cases)),
                       failures=str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.extend(cases)
    return ET.tostring(ET.Element("testsuites"), encoding="unicode").replace(
        "<testsuites />", "<testsuites>" + ET.tostring(suite, encoding="unicode") + "</testsuites>")
