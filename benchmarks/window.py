"""The maintenance-window benchmark (issue #30): what the window costs when 1% of the runs changed.

    bash benchmarks/window.sh                   # starts the servers, every backend, results in window.json
    python benchmarks/window.py --backends sqlite --sizes 80000

Per backend: a store of the given MLMD executions (`sample --fast`), the pre-run (`migrate --stage-only`)
and its verify while "the old KFP serves", then about 1% of the runs change the way a live KFP changes
them (new runs arrive through bulk copies of the scenario set, in-flight runs finish: their running
executions complete with a new update time, as ml-metadata writes it, and `run_details` says SUCCEEDED;
one run is deleted from `run_details`), then `mlmd2kfp window` (true-up, cutover, incremental verify,
gate), then `verify --full` on the same store. Printed: window / pre-run and window verify / full verify,
with the window's parts. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import EXECUTIONS_PER_RUN, _auto_driver, prepare_backend  # noqa: E402
from common import drop_database, new_database, run_child  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402

from mlmd2kfp.dialects import dialect_for  # noqa: E402
from mlmd2kfp.sample.fast import append_fast_runs, write_fast_sample  # noqa: E402
from mlmd2kfp.sample.scenarios import SCENARIOS_PER_REPETITION  # noqa: E402

SIZES = {"sqlite": 80000, "mariadb": 200000, "postgresql": 200000}
CHANGED = 0.01
"""The share of runs that change between the pre-run and the window."""


def change_like_a_live_kfp(mlmd: str, kfp: str, runs: int) -> dict[str, int]:
    """About `CHANGED` of `runs` change: 40% of them new runs, the rest in-flight runs that finish; one run
    is deleted. Returns how many of each."""
    new_reps = max(1, round(runs * CHANGED * 0.4 / SCENARIOS_PER_REPETITION))
    first = math.ceil(runs / SCENARIOS_PER_REPETITION)
    append_fast_runs(mlmd, kfp, first=first, reps=new_reps, seed=1)
    finishing = max(1, round(runs * CHANGED * 0.6))
    now_ms, now_s = int(time.time() * 1000), int(time.time())
    kfp_engine, mlmd_engine = create_engine(kfp), create_engine(mlmd)
    with kfp_engine.begin() as kconn, mlmd_engine.begin() as mconn:
        d, m = dialect_for(kconn).q, dialect_for(mconn).mlmd_table
        running = [r[0] for r in kconn.execute(text(
            f"SELECT {d('UUID')} FROM run_details WHERE {d('State')} = 'RUNNING' ORDER BY {d('UUID')}"))][:finishing]
        for run_id in running:
            (context_id,) = mconn.execute(text(f"SELECT id FROM {m('Context')} WHERE name = :n"), {"n": run_id}).one()
            mconn.execute(text(
                f"UPDATE {m('Execution')} SET last_known_state = 3, last_update_time_since_epoch = :t WHERE "
                f"last_known_state = 2 AND id IN (SELECT execution_id FROM {m('Association')} WHERE context_id = :c)"),
                {"t": now_ms, "c": context_id})
            kconn.execute(text(f"UPDATE run_details SET {d('State')} = 'SUCCEEDED', {d('FinishedAtInSec')} = :t "
                               f"WHERE {d('UUID')} = :u"), {"t": now_s, "u": run_id})
        gone = kconn.execute(text(f"SELECT {d('UUID')} FROM run_details WHERE {d('State')} = 'SUCCEEDED' "
                                  f"ORDER BY {d('UUID')}")).first()[0]
        kconn.execute(text(f"DELETE FROM tasks WHERE {d('RunUUID')} = :u"), {"u": gone})
        kconn.execute(text(f"DELETE FROM run_details WHERE {d('UUID')} = :u"), {"u": gone})
    kfp_engine.dispose()
    mlmd_engine.dispose()
    return {"new": new_reps * SCENARIOS_PER_REPETITION, "finished": len(running), "deleted": 1}


def scenario(backend: str, size: int, tmp: str) -> dict:
    runs = max(11, math.ceil(size / EXECUTIONS_PER_RUN / 11) * 11)
    mlmd, kfp = new_database(backend, "mlmd", tmp), new_database(backend, "kfp", tmp)
    write_fast_sample(mlmd, kfp, runs=runs, seed=1)
    tool = (lambda u: _auto_driver(u)) if backend == "mariadb" else (lambda u: u)
    urls = ["--mlmd-url", tool(mlmd), "--kfp-url", tool(kfp)]
    py = [sys.executable, "-m", "mlmd2kfp"]
    out: dict = {"backend": backend, "executions": size, "runs": runs}
    out["pre_run"] = run_child([*py, "migrate", *urls, "--yes", "--stage-only"])["seconds"]
    out["pre_verify"] = run_child([*py, "verify", *urls])["seconds"]
    out["changed"] = change_like_a_live_kfp(mlmd, kfp, runs)
    report = f"{tmp}/window-{backend}-{size}.json"
    out["window"] = run_child([*py, "window", *urls, "--yes", "--report", report])["seconds"]
    out["window_parts"] = json.loads(Path(report).read_text())
    out["full_verify"] = run_child([*py, "verify", *urls, "--full"])["seconds"]
    verify_seconds = out["window_parts"]["seconds"]["verify"]
    out["ratios"] = {"window_over_pre_run": round(out["window"] / out["pre_run"], 3),
                     "window_verify_over_full_verify": round(verify_seconds / out["full_verify"], 3)}
    drop_database(backend, mlmd)
    drop_database(backend, kfp)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,mariadb:128M,postgresql")
    parser.add_argument("--sizes", default=None, help="MLMD executions (default: SQLite 80000, servers 200000)")
    parser.add_argument("--out", default="benchmarks/window.json")
    args = parser.parse_args()
    results: dict = {"machine": {"python": platform.python_version(), "platform": platform.platform()},
                     "settings": {}, "scenarios": []}
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.backends.split(","):
            backend, _ = prepare_backend(spec, results)
            for size in ([int(s) for s in args.sizes.split(",")] if args.sizes else [SIZES[backend]]):
                print(f"[window] {spec} {size} executions …", file=sys.stderr, flush=True)
                result = {**scenario(backend, size, tmp), "backend": spec}
                results["scenarios"].append(result)
                print(json.dumps(result, indent=1), file=sys.stderr, flush=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(table(results))


def table(results: dict) -> str:
    lines = ["| backend | executions | pre-run s | pre-verify s | changed (new / finished / deleted) | window s "
             "(true-up+cutover / verify / gate) | window / pre-run | window verify / full verify (s) |",
             "| --- | ---: | ---: | ---: | --- | --- | ---: | ---: |"]
    for r in results["scenarios"]:
        p, c = r["window_parts"]["seconds"], r["changed"]
        lines.append(f"| {r['backend']} | {r['executions']:,} | {r['pre_run']:.1f} | {r['pre_verify']:.1f} | "
                     f"{c['new']} / {c['finished']} / {c['deleted']} | {r['window']:.1f} ({p.get('migrate', 0):.1f} / "
                     f"{p.get('verify', 0):.1f} / {p.get('gate', 0):.1f}) | {r['ratios']['window_over_pre_run']:.2f} | "
                     f"{r['ratios']['window_verify_over_full_verify']:.2f} ({p.get('verify', 0):.1f} / "
                     f"{r['full_verify']:.1f}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
