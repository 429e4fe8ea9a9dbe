#!/usr/bin/env bash
# with-db-servers.sh CMD… — make .venv, start throw-away MariaDB and PostgreSQL on loopback (their
# URLs in MLMD2KFP_TEST_MYSQL_URL / MLMD2KFP_TEST_PG_URL), run CMD, stop the servers whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
env_out=$(bash scripts/db-servers.sh start)   # first: it installs the packages (and driver headers)
eval "$env_out"
trap 'bash scripts/db-servers.sh stop "$MLMD2KFP_TEST_DB_DIR"' EXIT
bash scripts/bootstrap.sh
"$@"
