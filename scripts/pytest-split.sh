#!/usr/bin/env bash
# pytest-split.sh [PYTEST ARGS…] — lint, then the suite in two pytest processes, one per core: the
# PostgreSQL tests in one, everything else (SQLite, MariaDB, tests of no backend) in the other. Each
# server serves one process, so a server-wide setting one test makes (the packet-limit test's
# `SET GLOBAL max_allowed_packet`) never meets a test of the other process. A caller's own selection
# (-k, --lf) runs in one process as given.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check mlmd2kfp tests benchmarks || exit 1
for arg in "$@"; do
  case "$arg" in -k|-k*|--lf|--last-failed|tests/*) exec .venv/bin/python -m pytest "$@" ;; esac
done
log=$(mktemp)
.venv/bin/python -m pytest -k postgresql "$@" >"$log" 2>&1 &
pg=$!
.venv/bin/python -m pytest -k "not postgresql" "$@"
rest=$?
wait "$pg"
pg_rc=$?
echo "----- the PostgreSQL tests (second process) -----"
cat "$log"
rm -f "$log"
echo "[test] exit codes: SQLite/MariaDB/no-backend process $rest, PostgreSQL process $pg_rc"
[ "$rest" -eq 0 ] && [ "$pg_rc" -eq 0 ]
