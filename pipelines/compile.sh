#!/usr/bin/env bash
# Compile the KFP v2 pipelines in src/ to ../mlmd2kfp/sample/pipelines/*.yaml and INDEX.md.
#
# The kfp SDK lives in its own venv (it needs protobuf>=5, which conflicts with
# the mlmd2kfp project's own dependencies). Default: /tmp/kfp-venv; override
# with KFP_VENV=/path. The venv is created from requirements.txt if missing or
# if it does not hold the pinned kfp version. Safe to run repeatedly; output is
# byte-identical across runs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${KFP_VENV:-/tmp/kfp-venv}"
PYTHON_BIN="${PYTHON_BIN:-python3.11}"
REQ="$HERE/requirements.txt"
WANT="$(grep -E '^kfp==' "$REQ" | head -n1)"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating venv $VENV" >&2
    "$PYTHON_BIN" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -m pip freeze 2>/dev/null | grep -qxF "$WANT"; then
    echo "installing $REQ into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
fi

cd "$HERE"
PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" "$HERE/src/compile.py"
