"""Secrets never leak (issue #7, first part): database passwords and the object-store credentials
MLMD keeps in `store_session_info` appear in no output, report, log line or migrated row."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

pytest.importorskip("ml_metadata")

from tests.samples import write_sample  # noqa: E402
from tests.helpers import run_cli  # noqa: E402

PLANTED = "PLANTED-s3cr3t-TOKEN-7f3a"


def _plant(mlmd_url: str) -> None:
    """Put a credential into every `store_session_info` (run contexts and artifacts), as a real
    install with inline keys would have it."""
    engine = create_engine(mlmd_url)
    lower = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for table in ("ContextProperty", "ArtifactProperty"):
            name = table.lower() if lower else (f"`{table}`" if engine.dialect.name == "mysql" else f'"{table}"')
            updated = conn.execute(text(
                f"UPDATE {name} SET string_value = REPLACE(string_value, '\"fromEnv\":\"false\"', "
                f"'\"fromEnv\":\"false\",\"secretAccessKey\":\"{PLANTED}\"') WHERE name = 'store_session_info'"))
            assert updated.rowcount > 0
    engine.dispose()


def _dump(url: str) -> str:
    engine = create_engine(url)
    q = (lambda n: f"`{n}`") if engine.dialect.name == "mysql" else (lambda n: f'"{n}"')
    chunks = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            if table in ("tasks", "artifacts", "artifact_tasks") or table.startswith("mlmd2kfp_"):
                chunks += [repr(tuple(r)) for r in conn.execute(text(f"SELECT * FROM {q(table)}"))]
    engine.dispose()
    return "\n".join(chunks)


def test_no_secret_in_outputs_reports_or_rows(databases, tmp_path):
    m, k = databases.new("m"), databases.new("k")
    write_sample(m, k, seed=5)
    _plant(m)
    password = make_url(m).password or ""
    files = {name: tmp_path / name for name in ("plan.json", "plan.md", "migrate.json", "verify.json",
                                                 "verify.md", "verify.xml")}
    results = [
        run_cli("plan", "--mlmd-url", m, "--kfp-url", k, "--json", str(files["plan.json"]),
                "--markdown", str(files["plan.md"])),
        run_cli("migrate", "--mlmd-url", m, "--kfp-url", k, "--yes", "--report", str(files["migrate.json"])),
        run_cli("verify", "--mlmd-url", m, "--kfp-url", k, "--json", str(files["verify.json"]),
                "--markdown", str(files["verify.md"]), "--junit", str(files["verify.xml"])),
        run_cli("status", "--kfp-url", k, "--json"),
        run_cli("--debug", "schema", "check", "--kfp-url", k),
    ]
    assert [r.code for r in results[:4]] == [0, 0, 0, 0], [r.stderr[-300:] for r in results]
    texts = [r.stdout + r.stderr for r in results] + [f.read_text() for f in files.values()] + [_dump(k)]
    secrets = [PLANTED] + ([password] if password else [])
    for secret in secrets:
        for i, body in enumerate(texts):
            assert secret not in body, f"secret found in output {i}"
    assert "***" in results[0].stdout or not password  # URLs are shown, masked


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_no_secret_from_a_url_reaches_an_error_message(debug):
    """A password and a token in the URL's query, on a server that cannot be reached."""
    url = f"mysql+pymysql://admin:{PLANTED}-pw@127.0.0.1:1/mlpipeline?charset=utf8mb4&ssl_token={PLANTED}-q"
    args = (["--debug"] if debug else []) + ["status", "--kfp-url", url]
    result = run_cli(*args, env={"MLMD2KFP_CONNECT_TIMEOUT": "2"})
    assert result.code != 0
    body = result.stdout + result.stderr
    assert PLANTED not in body, body[-1500:]
    assert "127.0.0.1" in body and "***" in body  # the URL is shown, masked
