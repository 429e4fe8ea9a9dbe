"""Least privilege (issue #7): the grants documented in docs/runbook.md are exactly enough.

The statements are read from the runbook and run as written; `migrate`, `verify`, `status` and
`rollback` then run with a SELECT-only MLMD user and the documented KFP user, and the MLMD database
is byte-identical before and after.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.samples import write_sample

from .helpers import execute, run_cli
from .migrate.helpers import check_invariants, digest

RUNBOOK = Path(__file__).resolve().parent.parent / "docs" / "runbook.md"


def documented_grants(backend: str) -> list[str]:
    """The runbook's statements for `backend`, one per line (an indented block between markers)."""
    text_ = RUNBOOK.read_text()
    block = re.search(rf"<!-- grants:{backend} -->\n(.*?)<!-- /grants -->", text_, flags=re.S)
    assert block, f"docs/runbook.md has no grants block for {backend}"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def apply_grants(backend: str, admin_url: str, names: dict[str, str]) -> None:
    """Run the documented statements; `\\c DB` switches database as psql would."""
    url = make_url(admin_url)
    current = url.database
    for statement in documented_grants(backend):
        for key, value in names.items():
            statement = statement.replace(key, value)
        if statement.startswith("\\c "):
            current = statement[3:].strip()
            continue
        execute(url.set(database=current).render_as_string(hide_password=False), statement.rstrip(";"))


def test_runbook_documents_both_server_backends():
    assert any("GRANT SELECT ON `MLMD_DB`" in s for s in documented_grants("mysql"))
    assert any("GRANT SELECT ON ALL TABLES" in s for s in documented_grants("postgresql"))


def test_documented_grants_are_enough_and_mlmd_stays_byte_identical(databases):
    if databases.backend == "sqlite":
        pytest.skip("SQLite has no database users")
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, runs=11, seed=5)
    mu, ku = make_url(m), make_url(k)
    suffix = uuid.uuid4().hex[:8]
    names = {"RO_PASSWORD": "R0-only:pass@x", "KFP_PASSWORD": "Kfp-user/pass%y", "RO_USER": f"ro_{suffix}",
             "KFP_USER": f"kfp_{suffix}", "MLMD_DB": mu.database, "KFP_DB": ku.database}
    if databases.backend == "postgresql":
        # the KFP-side role owns KFP's tables, as the role KFP's API server uses does (runbook)
        execute(k, f"CREATE ROLE {names['KFP_USER']} LOGIN PASSWORD '{names['KFP_PASSWORD']}'",
                f'GRANT CONNECT ON DATABASE "{ku.database}" TO {names["KFP_USER"]}')
        engine = create_engine(k)
        with engine.begin() as conn:
            for (table,) in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")):
                conn.execute(text(f'ALTER TABLE "{table}" OWNER TO {names["KFP_USER"]}'))
        engine.dispose()
        grants = [s for s in documented_grants("postgresql")]
        assert not any("KFP_USER LOGIN" in s for s in grants)  # the owner role exists already in a KFP install
    apply_grants("mysql" if databases.backend == "mariadb" else "postgresql", m, names)
    ro = mu.set(username=names["RO_USER"], password=names["RO_PASSWORD"]).render_as_string(hide_password=False)
    kfp = ku.set(username=names["KFP_USER"], password=names["KFP_PASSWORD"]).render_as_string(hide_password=False)
    engine = create_engine(ro)
    with pytest.raises(Exception, match="(?i)denied|permission"):  # the MLMD user really is read-only
        with engine.begin() as conn:
            table = "execution" if databases.backend == "postgresql" else "Execution"
            conn.execute(text(f"UPDATE {table} SET last_known_state = 3"))
    engine.dispose()
    before = digest(m, tables=None)
    outputs = []
    for args in (["plan"], ["migrate", "--yes"], ["verify"], ["verify", "--source", "sql"], ["status", "--check"]):
        url_args = ["--mlmd-url", ro, "--kfp-url", kfp] if args[0] != "status" else ["--kfp-url", kfp]
        result = run_cli(*args, *url_args)
        assert result.code == 0, (args, result.stderr[-2000:])
        outputs.append(result.stdout + result.stderr)
    counts = check_invariants(k)
    assert counts["tasks"] > 0
    result = run_cli("rollback", "--yes", "--kfp-url", kfp)
    assert result.code == 0, result.stderr
    outputs.append(result.stdout + result.stderr)
    assert digest(m, tables=None) == before  # not one byte of MLMD changed
    for out in outputs:
        assert names["RO_PASSWORD"] not in out and names["KFP_PASSWORD"] not in out
