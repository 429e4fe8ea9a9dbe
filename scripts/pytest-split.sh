#!/usr/bin/env bash
# pytest-split.sh [PYTEST ARGS…] — lint (ruff, mypy strict), then the suite in two pytest processes, one per core: the
# tests whose id names PostgreSQL, with the SQLite runs of the stateful test, the fault suite and the
# bad-input corpus (to even out the two), in one; everything else (SQLite, MariaDB, tests of no backend)
# in the other. The packet-limit test's server-wide `SET GLOBAL max_allowed_packet` runs with the MariaDB tests,
# all in one process; the one PostgreSQL-process test that also uses MariaDB (a NUL bound for a
# PostgreSQL target) writes only small values there. A caller's own selection (-k, -m, --lf, a path)
# runs in one process as given.
set -uo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check mlmd2kfp tests benchmarks || exit 1
.venv/bin/mypy || exit 1  # strict, over the package (pyproject.toml [tool.mypy])
for arg in "$@"; do
  case "$arg" in
    -k|-k*|-m|-m*|--lf|--last-failed|--junitxml*|--basetemp*|tests*|./tests*)
      exec .venv/bin/python -m pytest "$@" ;;
  esac
done
second="postgresql or (sqlite and (stateful or faults or bad_inputs))"
log=$(mktemp)
.venv/bin/python -m pytest -k "$second" "$@" >"$log" 2>&1 &
pg=$!
trap 'kill "$pg" 2>/dev/null; wait "$pg" 2>/dev/null; cat "$log"; rm -f "$log"; exit 130' INT TERM
.venv/bin/python -m pytest -k "not ($second)" "$@"
rest=$?
wait "$pg"
pg_rc=$?
trap - INT TERM
echo "----- the PostgreSQL tests and some SQLite ones (second process) -----"
cat "$log"
rm -f "$log"
# 5 is "no tests collected": one half may legitimately be empty (e.g. MLMD2KFP_TEST_BACKENDS=sqlite)
[ "$rest" -eq 5 ] && rest=0
[ "$pg_rc" -eq 5 ] && pg_rc=0
echo "[test] exit codes: SQLite/MariaDB/no-backend process $rest, PostgreSQL (+ some SQLite) process $pg_rc"
if [ "$rest" -ne 0 ]; then exit "$rest"; fi
exit "$pg_rc"
