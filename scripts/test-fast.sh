#!/usr/bin/env bash
# test-fast.sh — the fast tier (issue #28): lint and the tests that need no database server and no sample,
# well under a minute on two cores (the mapping rules, the architecture's import rules, the digest, the
# writer and rollback on in-memory engines). The whole suite, on every backend, is scripts/test.sh.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
.venv/bin/ruff check mlmd2kfp tests benchmarks
.venv/bin/mypy
MLMD2KFP_TEST_BACKENDS=sqlite exec .venv/bin/python -m pytest -q -p no:cacheprovider \
  tests/mappers tests/test_architecture.py tests/target/test_digest.py tests/migrate/test_in_memory.py \
  --ignore tests/mappers/test_golden.py -m "not mlmd" "$@"  # `mlmd` tests write a sample through ml-metadata
