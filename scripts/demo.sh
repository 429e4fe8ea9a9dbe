#!/usr/bin/env bash
# demo.sh — the main job on embedded SQLite files, on a fresh machine: makes .venv, runs `mlmd2kfp demo`.
#   bash scripts/demo.sh              writes into ./demo-out (replaced on each run)
#   bash scripts/demo.sh --dir PATH   writes into PATH (must not hold a previous demo)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ $# -eq 0 ]; then rm -rf demo-out; set -- --dir demo-out; fi
exec .venv/bin/mlmd2kfp demo "$@"
