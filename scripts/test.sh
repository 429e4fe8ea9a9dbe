#!/usr/bin/env bash
# test.sh — the whole test suite on SQLite, MariaDB and PostgreSQL, from a fresh machine.
# Makes .venv, starts throw-away database servers on loopback, runs pytest, stops the servers.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k schema).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
env_out=$(bash scripts/db-servers.sh start)
eval "$env_out"
trap 'bash scripts/db-servers.sh stop "$MLMD2KFP_TEST_DB_DIR"' EXIT
export MLMD2KFP_TEST_BACKENDS=sqlite,mariadb,postgresql   # a missing server is an error, not a skip
.venv/bin/ruff check mlmd2kfp tests
.venv/bin/python -m pytest "$@"
