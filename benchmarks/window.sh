#!/usr/bin/env bash
# window.sh — the maintenance-window benchmark (issue #30): servers on loopback, every backend, results in
# benchmarks/window.json and a Markdown table on stdout. Arguments go to window.py.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/with-db-servers.sh .venv/bin/python benchmarks/window.py "$@"
