"""`sample` is deterministic for a seed, scales with `--runs`, and works through the CLI."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import create_engine, inspect, text

from mlmd2kfp.sample import write_sample
from mlmd2kfp.sample.scenarios import SCENARIOS_PER_REPETITION
from tests.helpers import run_cli
from tests.sample.conftest import open_reader


SURROGATE_ID_TABLES = {"attribution", "association"}
"""Link tables whose `id` order comes from ml-metadata's C++ map iteration inside one PutExecution."""


def _canonical(value: object) -> object:
    # ml-metadata serialises Struct values with C++ map order, which differs between processes:
    # compare the decoded struct, not its bytes.
    if isinstance(value, str) and value.startswith("mlmd-struct::"):
        from mlmd2kfp.source.structs import decode_struct

        return "struct:" + json.dumps(decode_struct(value), sort_keys=True)
    return value


def digest(url: str) -> dict[str, str]:
    """A digest of every table's rows (sorted, structs decoded), per table."""
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        for table in sorted(inspect(conn).get_table_names()):
            q = '"' if engine.dialect.name != "mysql" else "`"
            result = conn.execute(text(f"SELECT * FROM {q}{table}{q}"))
            keys = list(result.keys())
            rows = []
            for row in result:
                values = {k: _canonical(v) for k, v in zip(keys, row, strict=True)}
                if table.lower() in SURROGATE_ID_TABLES:
                    values.pop("id")
                rows.append(repr(sorted(values.items())))
            out[table] = hashlib.sha256(repr(sorted(rows)).encode()).hexdigest()
    engine.dispose()
    return out


def test_same_seed_same_databases(databases):
    urls = [(databases.new("m"), databases.new("k")) for _ in range(3)]
    write_sample(*urls[0], seed=11)
    write_sample(*urls[1], seed=11)
    write_sample(*urls[2], seed=12)
    mlmd = [digest(m) for m, _ in urls]
    kfp = [digest(k) for _, k in urls]
    assert mlmd[0] == mlmd[1] and kfp[0] == kfp[1]
    assert len(mlmd[0]) >= 15 and "run_details" in kfp[0]
    assert mlmd[0] != mlmd[2] and kfp[0] != kfp[2]


def test_runs_scales_the_shapes_with_fresh_ids(databases):
    mlmd_url, kfp_url = databases.new("m"), databases.new("k")
    total = SCENARIOS_PER_REPETITION * 2 + 3
    report = write_sample(mlmd_url, kfp_url, runs=total, seed=3)
    assert len(report.runs) == total
    assert len({r.run_id for r in report.runs}) == total
    assert [r.scenario for r in report.runs[:SCENARIOS_PER_REPETITION]] == \
        [r.scenario for r in report.runs[SCENARIOS_PER_REPETITION:2 * SCENARIOS_PER_REPETITION]]
    store = open_reader(mlmd_url)
    v2_runs = [r for r in report.runs if r.scenario != "v1"]
    assert len(store.get_contexts_by_type("system.PipelineRun")) == len(v2_runs)
    # the same shape twice: equal execution counts per run of one scenario
    counts = {}
    for r in v2_runs:
        ctx = store.get_context_by_type_and_name("system.PipelineRun", r.run_id)
        counts.setdefault(r.scenario, set()).add(len(store.get_executions_by_context(ctx.id)))
    assert all(len(c) == 1 for c in counts.values()), counts


def test_sample_cli_writes_and_refuses_a_second_time(databases):
    mlmd_url, kfp_url = databases.new("m"), databases.new("k")
    first = run_cli("sample", "--mlmd-url", mlmd_url, "--kfp-url", kfp_url, "--seed", "5")
    assert first.code == 0, first.stderr
    assert "control-flow" in first.stdout and "multi-user" in first.stdout
    second = run_cli("sample", "--mlmd-url", mlmd_url, "--kfp-url", kfp_url)
    assert second.code == 3
    assert "already holds runs" in second.stderr
    assert "Traceback" not in second.stderr


def test_single_user_cli_flag(databases):
    mlmd_url, kfp_url = databases.new("m"), databases.new("k")
    result = run_cli("sample", "--mlmd-url", mlmd_url, "--kfp-url", kfp_url, "--single-user", "--runs", "3")
    assert result.code == 0, result.stderr
    assert "single-user" in result.stdout
    engine = create_engine(kfp_url)
    with engine.connect() as conn:
        assert conn.execute(text('SELECT COUNT(*) FROM run_details WHERE "Namespace" <> \'\''
                                 if engine.dialect.name != "mysql" else
                                 "SELECT COUNT(*) FROM run_details WHERE `Namespace` <> ''")).scalar() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM run_details")).scalar() == 3
    engine.dispose()
