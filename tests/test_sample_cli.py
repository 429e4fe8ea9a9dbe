"""`sample` through the CLI (issue #27 item 7: it printed nothing for minutes)."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli


def test_item_7_sample_shows_progress_off_a_terminal(tmp_path):
    """Off a terminal (a Job's log, CI): a line per tenth of the runs once there are enough to wait for."""
    pytest.importorskip("ml_metadata")
    result = run_cli("sample", "--runs", "100", "--mlmd-url", f"sqlite:///{tmp_path / 'm.sqlite'}",
                     "--kfp-url", f"sqlite:///{tmp_path / 'k.sqlite'}")
    assert result.code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("writing runs through ml-metadata: ")]
    assert lines[0].startswith("writing runs through ml-metadata: 1/100 runs")
    assert lines[-1].startswith("writing runs through ml-metadata: 100/100 runs") and 10 <= len(lines) <= 12, lines
