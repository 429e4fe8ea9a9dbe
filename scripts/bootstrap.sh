#!/usr/bin/env bash
# bootstrap.sh — make ./.venv with mlmd2kfp and every extra the tests need. Idempotent.
#   PYTHON=python3.11 bash scripts/bootstrap.sh
# ml-metadata (the `mlmd` extra) has wheels for Python <= 3.11 only, so 3.11 is the default.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || { echo "bootstrap: $PYTHON not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)

# The optional C MySQL driver, when its headers are on the machine (scripts/db-servers.sh installs them
# for the tests); PyMySQL does the same work without it, so a failure here is only a note.
optional_mysqlclient() {
  if pkg-config --exists mariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null; then
    .venv/bin/python -c "import MySQLdb" 2>/dev/null && return 0
    .venv/bin/python -m pip install -q -e '.[mysqlclient]' >>.venv/install.log 2>&1 \
      || echo "[bootstrap] note: mysqlclient did not build (see .venv/install.log); using PyMySQL" >&2
  fi
}

if [ -x .venv/bin/python ] && [ -e "$stamp" ]; then optional_mysqlclient; exit 0; fi
echo "[bootstrap] creating .venv with $($PYTHON --version)" >&2
"$PYTHON" -m venv .venv
# pip's and setuptools' chatter goes to a log that is shown only when the install fails.
{ .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[postgres,mlmd,test]'; } \
  >.venv/install.log 2>&1 || { cat .venv/install.log >&2; echo "bootstrap: pip install failed" >&2; exit 1; }
.venv/bin/python -c "import mlmd2kfp, sqlalchemy, pymysql, psycopg, typer, rich, ml_metadata, pytest" \
  || { echo "bootstrap: install failed" >&2; exit 1; }
optional_mysqlclient
rm -f .venv/.installed-*; touch "$stamp"
echo "[bootstrap] .venv ready" >&2
