#!/usr/bin/env bash
# run.sh — the documented benchmark command: servers on loopback, every backend, results in
# benchmarks/results.json and a Markdown table on stdout. Arguments go to bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
env_out=$(bash scripts/db-servers.sh start)
eval "$env_out"
trap 'bash scripts/db-servers.sh stop "$MLMD2KFP_TEST_DB_DIR"' EXIT
.venv/bin/python benchmarks/bench.py "$@"
