"""Both MySQL drivers give the same database: `mysql://` picks mysqlclient (C) when it is installed,
PyMySQL otherwise, and a URL that names its driver keeps it."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from mlmd2kfp.db import mysql_driver, parse_url
from mlmd2kfp.migrate.runner import MigrateOptions, migrate
from tests.samples import write_sample
from mlmd2kfp.verify import VerifyOptions, run_verify

from .helpers import check_invariants, digest


def test_plain_mysql_url_picks_the_fastest_installed_driver():
    assert parse_url("mysql://u:p@h/db", "KFP").drivername == f"mysql+{mysql_driver()}"
    assert parse_url("mariadb://u:p@h/db", "KFP").drivername == f"mysql+{mysql_driver()}"
    assert parse_url("mysql+pymysql://u:p@h/db", "KFP").drivername == "mysql+pymysql"


def test_mysqlclient_and_pymysql_write_identical_rows(databases):
    if databases.backend != "mariadb":
        pytest.skip("a MySQL-driver comparison")
    pytest.importorskip("MySQLdb", reason="mysqlclient is not installed (scripts/bootstrap.sh adds it with libmariadb-dev)")
    m, k_py, k_c = databases.new("m"), databases.new("kpy"), databases.new("kc")
    write_sample(m, k_py, seed=11)
    write_sample(databases.new("m2"), k_c, seed=11)  # the same KFP rows (same seed), a second copy to migrate into
    as_driver = lambda url, d: make_url(url).set(drivername=f"mysql+{d}").render_as_string(hide_password=False)  # noqa: E731
    migrate(as_driver(m, "pymysql"), as_driver(k_py, "pymysql"), MigrateOptions(batch_rows=50))
    report = migrate(as_driver(m, "mysqldb"), as_driver(k_c, "mysqldb"), MigrateOptions(batch_rows=50))
    assert report.runs_written == 11
    assert digest(k_c) == digest(k_py)
    check_invariants(k_c)
    assert run_verify(as_driver(m, "mysqldb"), as_driver(k_c, "mysqldb"), VerifyOptions(record=False)).passed
