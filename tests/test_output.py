"""Every command's output on the demo, as an operator reads it in a Kubernetes Job log (stdout and stderr
are pipes, not a terminal), pinned: an operator session from the demo to a rollback and a staged pre-run.

The expected text is `tests/golden/operator_session.txt`, reviewed line by line when it changes
(`MLMD2KFP_UPDATE_GOLDEN=1` rewrites it). Independently of it, no line may hold a Python repr or a word
cut short.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.helpers import run_cli

pytest.importorskip("ml_metadata")

GOLDEN = Path(__file__).parent / "golden" / "operator_session.txt"
PROGRESS = re.compile(r"^(reading and mapping|migrating|verifying|strict: planning): \d+/\d+ runs.*$")


def _normalise(text: str, directory: Path) -> str:
    text = text.replace(str(directory), "<dir>")
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    text = re.sub(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "<time>", text)
    text = re.sub(r"(holder: )\S+", r"\1<host:pid>", text)
    text = re.sub(r"(seconds: ).*", r"\1<seconds>", text)
    return text


def _session(directory: Path) -> list[tuple[str, int, str]]:
    """(command, exit code, output without progress lines) for each step."""
    m, k = f"sqlite:///{directory / 'mlmd.sqlite'}", f"sqlite:///{directory / 'kfp.sqlite'}"
    fresh_m, fresh_k = f"sqlite:///{directory / 'fresh-mlmd.sqlite'}", f"sqlite:///{directory / 'fresh-kfp.sqlite'}"
    steps = [
        ("demo", "--dir", str(directory)),
        ("sample", "--mlmd-url", fresh_m, "--kfp-url", fresh_k),
        ("schema", "check", "--kfp-url", fresh_k),
        ("schema", "create", "--kfp-url", fresh_k),
        ("schema", "check", "--kfp-url", k),
        ("plan", "--mlmd-url", m, "--kfp-url", k),
        ("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes"),
        ("status", "--check", "--kfp-url", k),
        ("verify", "--mlmd-url", m, "--kfp-url", k),
        ("status", "--kfp-url", k),
        ("rollback", "--kfp-url", k, "--yes"),
        ("rollback", "--kfp-url", k, "--yes"),
        ("cleanup", "--kfp-url", k, "--yes"),
        ("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--stage-only"),
        ("cleanup", "--kfp-url", k, "--yes"),
        ("status", "--check", "--kfp-url", k),
    ]
    out = []
    for args in steps:
        result = run_cli(*args, env={"COLUMNS": "80"})
        lines = [line for line in (result.stdout + result.stderr).splitlines() if not PROGRESS.match(line)]
        command = " ".join(a if not a.startswith("sqlite") else a.rsplit("/", 1)[-1] for a in args)
        out.append((_normalise(command, directory), result.code, _normalise("\n".join(lines), directory)))
    return out


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, int, str]]:
    return _session(tmp_path_factory.mktemp("operator") / "demo")


def _render(session: list[tuple[str, int, str]]) -> str:
    return "".join(f"$ mlmd2kfp {command}\n{text}\n[exit {code}]\n\n" for command, code, text in session)


def test_the_operator_session_reads_as_pinned(session):
    text = _render(session)
    if os.environ.get("MLMD2KFP_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
        pytest.fail(f"rewrote {GOLDEN}: review `git diff` of it, then run the tests without MLMD2KFP_UPDATE_GOLDEN")
    assert text == GOLDEN.read_text(encoding="utf-8")


REPR = re.compile(r"\{'|\('|\bNone\b|\[\]|\{\}|Counter\(|<[a-z_.]+ object")


@pytest.mark.parametrize("step", range(16))
def test_no_python_reprs_and_no_cut_words(session, step):
    command, _, text = session[step]
    for line in text.splitlines():
        assert not REPR.search(line), (command, line)
        assert "…" not in line and not line.rstrip().endswith("..."), (command, line)
        assert not re.search(r"[│┃╭╰]", line), (command, line)  # no table boxes in a log


def test_messages_fit_the_state(session):
    by_step = [text for _, _, text in session]
    codes = [code for _, code, _ in session]
    steps = {command.split(" --")[0]: i for i, (command, _, _) in reversed(list(enumerate(session)))}
    migrate_again, gate, rollback = steps["migrate"], steps["status"], steps["rollback"]
    assert codes[steps["schema check"]] == 1 and codes[steps["schema create"]] == 0  # before / after creating
    assert "cutover: adding" not in by_step[migrate_again]  # a rerun after the cutover has nothing to swap
    assert codes[gate] == 1 and "no longer holds" in by_step[gate]  # the rerun invalidated the demo's verify
    second_rollback = rollback + 1
    assert codes[second_rollback] == 0 and "nothing to roll back" in by_step[second_rollback]
    assert "nothing was changed" in by_step[second_rollback]
    staged_cleanup = len(session) - 2
    assert codes[staged_cleanup] == 3 and "without --stage-only" in by_step[staged_cleanup]  # the next real step
