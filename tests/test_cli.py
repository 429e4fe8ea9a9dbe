"""The CLI as an operator meets it: help, exit codes, one-line connection errors, masked passwords."""

from __future__ import annotations

import os
import socket

import pytest
import typer.main
from sqlalchemy.engine import make_url

from mlmd2kfp.cli import app
from tests.conftest import BACKENDS, SERVER_URL_ENV
from tests.helpers import run_cli


def _commands(group, prefix: tuple[str, ...] = ()) -> list:
    out = []
    for name, cmd in group.commands.items():
        out.append(((*prefix, name), cmd))
        if hasattr(cmd, "commands"):
            out.extend(_commands(cmd, (*prefix, name)))
    return out


COMMANDS = _commands(typer.main.get_command(app))  # type: ignore[arg-type]


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.code == 0
    for name in ("schema", "sample", "demo"):
        assert name in result.stdout


@pytest.mark.parametrize("path,command", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else "")
def test_every_command_has_help(path, command):
    assert (command.help or "").strip(), f"`{' '.join(path)}` has no help text"
    result = run_cli(*path, "--help")
    assert result.code == 0
    assert "Usage" in result.stdout


def test_missing_url_is_a_clear_error():
    result = run_cli("schema", "check", env={"MLMD2KFP_KFP_URL": ""})
    assert result.code == 2  # a usage error (issue #27 item 7)
    assert "--kfp-url is required" in result.stderr


def test_unparseable_url():
    result = run_cli("schema", "check", "--kfp-url", "not a url")
    assert result.code == 2
    assert "not a valid SQLAlchemy URL" in result.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("scheme", ["mysql+pymysql", "postgresql+psycopg"], ids=["mariadb", "postgresql"])
def test_unreachable_host_is_one_line_exit_3(scheme):
    url = f"{scheme}://kfp:S3cretPass@127.0.0.1:{_free_port()}/mlpipeline"
    result = run_cli("schema", "check", "--kfp-url", url)
    assert result.code == 3
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "KFP database" in lines[0] and "127.0.0.1" in lines[0] and "unreachable" in lines[0]
    assert "S3cretPass" not in result.stderr + result.stdout
    assert "***" in lines[0]


@pytest.mark.parametrize("server", [b for b in BACKENDS if b != "sqlite"] or ["none"])
def test_wrong_password_is_one_line_exit_3(server):
    if server == "none":
        pytest.skip("no database server configured")
    url = make_url(os.environ[SERVER_URL_ENV[server]]).set(password="Wr0ngPassw0rd")
    raw = url.render_as_string(hide_password=False)
    for option in (("schema", "check", "--kfp-url", raw),):
        result = run_cli(*option)
        assert result.code == 3
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1, result.stderr
        assert "authentication failed" in lines[0]
        assert "Wr0ngPassw0rd" not in result.stderr + result.stdout
    sample = run_cli("sample", "--mlmd-url", raw, "--kfp-url", raw)
    assert sample.code == 3
    assert "Wr0ngPassw0rd" not in sample.stderr + sample.stdout


def test_debug_shows_the_traceback():
    url = f"mysql+pymysql://kfp:S3cretPass@127.0.0.1:{_free_port()}/mlpipeline"
    result = run_cli("--debug", "schema", "check", "--kfp-url", url)
    assert result.code != 0
    assert "Traceback" in result.stderr
    assert "S3cretPass" not in result.stderr


def test_url_from_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'absent.sqlite'}"
    result = run_cli("schema", "check", env={"MLMD2KFP_KFP_URL": url})
    assert result.code == 3
    assert "absent.sqlite does not exist" in result.stderr


def test_version_of_package():
    import mlmd2kfp

    assert mlmd2kfp.__version__


def test_demo_runs_the_whole_job_on_sqlite(tmp_path):
    pytest.importorskip("ml_metadata")
    result = run_cli("demo", "--dir", str(tmp_path / "demo"))
    assert result.code == 0, result.stderr
    out = result.stdout
    # one vocabulary of counts (issue #27 item 7): 12 run contexts everywhere, 11 migrated and 1 skipped
    assert "plan (multi-user): 12 run contexts: 11 runs to migrate, 1 to skip; rows to write: tasks 98" in out
    assert "migrate: 12 run contexts: 11 runs migrated, 1 skipped (orphan-run 1); rows now tasks 98, artifacts 96, " \
           "artifact_tasks 174" in out
    assert "ledger entries (MLMD rows not copied one to one): " in out
    assert "verify (ml-metadata API): PASSED over 12 run contexts" in out and "status --check: OK" in out
    for name in ("mlmd.sqlite", "kfp.sqlite", "plan.md", "plan.json", "migrate.json", "verify.md", "verify.junit.xml"):
        assert (tmp_path / "demo" / name).exists(), name
    again = run_cli("demo", "--dir", str(tmp_path / "demo"))
    assert again.code == 3 and "already exists" in again.stderr


def test_version():
    result = run_cli("--version")
    assert result.code == 0 and result.stdout.startswith("mlmd2kfp ") and "(mapping version 4)" in result.stdout


@pytest.mark.mlmd
def test_plan_refuses_a_database_without_run_details_as_migrate_does(tmp_path):
    from sqlalchemy import create_engine, text

    kfp = f"sqlite:///{tmp_path / 'not-kfp.sqlite'}"
    engine = create_engine(kfp)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE something (id INTEGER)"))
    engine.dispose()
    result = run_cli("demo", "--dir", str(tmp_path / "d"))
    assert result.code == 0, result.stderr
    mlmd = f"sqlite:///{tmp_path / 'd' / 'mlmd.sqlite'}"
    for command in (("plan",), ("migrate", "--yes")):
        result = run_cli(*command, "--mlmd-url", mlmd, "--kfp-url", kfp)
        assert result.code == 3 and "no `run_details` table" in result.stderr, (command, result.stderr)


def test_a_password_with_an_unescaped_at_sign_is_masked_whole():
    from mlmd2kfp.console import mask_url
    from mlmd2kfp.db import parse_url

    raw = "mysql+pymysql://root:s3cr@t@db.example:3306/mlpipeline"
    assert mask_url(raw) == "mysql+pymysql://root:***@db.example:3306/mlpipeline"
    url = parse_url(raw, "KFP")
    assert url.password == "s3cr@t" and url.host == "db.example"


def test_a_bare_postgresql_url_uses_psycopg_3():
    from mlmd2kfp.db import parse_url

    pytest.importorskip("psycopg")
    assert parse_url("postgresql://u:p@h:5432/db", "KFP").drivername == "postgresql+psycopg"


@pytest.mark.mlmd
def test_answering_no_at_the_prompt_changes_nothing_and_says_so(tmp_path):
    import pty
    import subprocess
    import sys

    result = run_cli("demo", "--dir", str(tmp_path / "d"))
    assert result.code == 0
    mlmd, kfp = (f"sqlite:///{tmp_path / 'd' / n}" for n in ("mlmd.sqlite", "kfp.sqlite"))
    before = (tmp_path / "d" / "kfp.sqlite").read_bytes()
    primary, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "mlmd2kfp", "migrate", "--mlmd-url", mlmd, "--kfp-url", kfp],
                            stdin=secondary, stdout=secondary, stderr=secondary, close_fds=True)
    os.close(secondary)
    output = b""
    while b"?" not in output:
        output += os.read(primary, 1024)
    os.write(primary, b"n\n")
    try:
        while True:
            chunk = os.read(primary, 1024)
            if not chunk:
                break
            output += chunk
    except OSError:
        pass
    assert proc.wait(timeout=60) == 3
    os.close(primary)
    assert b"nothing was changed" in output
    assert (tmp_path / "d" / "kfp.sqlite").read_bytes() == before


@pytest.mark.parametrize("delay", [0.2, 0.6, 1.5])
def test_item_7_ctrl_c_during_start_up_is_one_line_and_exit_130(tmp_path, delay):
    """Issue #27 item 7: Ctrl-C while the CLI starts (Python importing it, or the command opening its database)
    printed a KeyboardInterrupt traceback, or click's "Aborted!" with exit 1 ("differences found")."""
    import signal
    import subprocess
    import sys
    import time

    url = f"sqlite:///{tmp_path / 'k.sqlite'}"
    pytest.importorskip("ml_metadata")
    # `sample` of 300 runs takes half a minute: a signal at any of these delays lands during start-up or work
    proc = subprocess.Popen([sys.executable, "-m", "mlmd2kfp", "sample", "--runs", "300",
                             "--mlmd-url", f"sqlite:///{tmp_path / 'm.sqlite'}", "--kfp-url", url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    # 130, or killed by SIGINT itself (Python's exit for an interrupt during its imports): a shell shows 130 for both
    assert proc.returncode in (130, -signal.SIGINT), (proc.returncode, err[-1500:])
    assert "Traceback" not in err and "Aborted" not in err, err[-1500:]
    lines = [line for line in err.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1 and "stopped by SIGINT" in lines[0], err[-1500:]
