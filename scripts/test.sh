#!/usr/bin/env bash
# test.sh — the whole test suite on SQLite, MariaDB and PostgreSQL, from a fresh machine.
# Makes .venv, starts throw-away database servers on loopback, lints, runs pytest, stops the servers.
# Extra arguments go to pytest (e.g. bash scripts/test.sh -k schema).
set -euo pipefail
cd "$(dirname "$0")/.."
# A missing server is an error, not a skip.
export MLMD2KFP_TEST_BACKENDS=sqlite,mariadb,postgresql
# Lint, then pytest in two processes (PostgreSQL tests beside the rest: scripts/pytest-split.sh).
exec bash scripts/with-db-servers.sh bash scripts/pytest-split.sh "$@"
