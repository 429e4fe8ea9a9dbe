#!/usr/bin/env bash
# run.sh — the documented benchmark command: servers on loopback, every backend, results in
# benchmarks/results.json and a Markdown table on stdout. Arguments go to bench.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/with-db-servers.sh .venv/bin/python benchmarks/bench.py "$@"
