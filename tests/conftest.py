"""Backend fixtures: every database test runs on SQLite, MariaDB and PostgreSQL.

`scripts/test.sh` (and so `.ci/run`) starts MariaDB and PostgreSQL on loopback and sets
`MLMD2KFP_TEST_BACKENDS=sqlite,mariadb,postgresql`, which makes a missing server an error.
A plain local `pytest` runs SQLite and whichever server URLs are set.
"""

from __future__ import annotations

import os
import uuid

# ml-metadata's C++ core logs every connection through glog; keep test output readable.
os.environ.setdefault("GLOG_minloglevel", "2")
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

SERVER_URL_ENV = {"mariadb": "MLMD2KFP_TEST_MYSQL_URL", "postgresql": "MLMD2KFP_TEST_PG_URL"}


def _wanted_backends() -> list[str]:
    declared = os.environ.get("MLMD2KFP_TEST_BACKENDS")
    if declared:
        return [b.strip() for b in declared.split(",") if b.strip()]
    return ["sqlite"] + [b for b, env in SERVER_URL_ENV.items() if os.environ.get(env)]


BACKENDS = _wanted_backends()


class DatabaseFactory:
    """Makes fresh, empty databases on one backend and drops them afterwards."""

    def __init__(self, backend: str, tmp_path: Path) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.created: list[str] = []
        self.admin_url: URL | None = None
        if backend != "sqlite":
            raw = os.environ.get(SERVER_URL_ENV[backend])
            if not raw:
                pytest.fail(f"backend {backend} requested but {SERVER_URL_ENV[backend]} is not set "
                            "(run the suite through scripts/test.sh, which starts the servers)")
            self.admin_url = make_url(raw)

    def new(self, label: str = "db") -> str:
        """A URL of a new empty database."""
        if self.backend == "sqlite":
            return f"sqlite:///{self.tmp_path / f'{label}-{uuid.uuid4().hex[:6]}.sqlite'}"
        assert self.admin_url is not None
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            if self.backend == "mariadb":
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            else:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Drop every database this factory made."""
        if self.backend == "sqlite" or not self.created:
            return
        assert self.admin_url is not None
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self.created:
                if self.backend == "mariadb":
                    conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
                else:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test; test ids name it (`[sqlite]`, `[mariadb]`, `[postgresql]`)."""
    return str(request.param)


@pytest.fixture
def databases(backend: str, tmp_path: Path) -> Iterator[DatabaseFactory]:
    """A factory of fresh databases on the backend under test."""
    factory = DatabaseFactory(backend, tmp_path)
    yield factory
    factory.drop_all()


@pytest.fixture(scope="module", params=BACKENDS)
def module_databases(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[DatabaseFactory]:
    """A factory shared by one test module per backend (for expensive fixtures such as the sample)."""
    factory = DatabaseFactory(str(request.param), tmp_path_factory.mktemp(str(request.param)))
    yield factory
    factory.drop_all()


def require_mlmd() -> Callable[..., None]:
    """Skip marker for tests that need the ml-metadata package."""
    return pytest.importorskip("ml_metadata")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `mlmd` are skipped, not errors, on an install without ml-metadata (the `mlmd` extra: Python
    3.11 only). Tests that take the sample through `tests.samples` skip themselves the same way."""
    import importlib.util

    if importlib.util.find_spec("ml_metadata") is not None:
        return
    skip = pytest.mark.skip(reason="needs the ml-metadata package (the `mlmd` extra, Python 3.11)")
    for item in items:
        if item.get_closest_marker("mlmd"):
            item.add_marker(skip)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the sample templates the session made on the servers (tests/samples.py)."""
    import sys

    samples = sys.modules.get("tests.samples")
    if samples is not None:
        samples.drop_templates()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many tests ran and passed on each backend, so CI output shows all three."""
    counts: dict[str, dict[str, int]] = {b: {} for b in BACKENDS}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            for b in BACKENDS:
                if f"[{b}" in nodeid or f"-{b}]" in nodeid or f"-{b}-" in nodeid:
                    counts[b][outcome] = counts[b].get(outcome, 0) + 1
    terminalreporter.write_line(
        "backends: " + "; ".join(f"{b}: " + (", ".join(f"{n} {o}" for o, n in sorted(c.items())) or "no tests")
                                 for b, c in counts.items()))
    for suite, label in (("tests/faults/", "fault suite"), ("tests/bad_inputs/", "bad-input corpus")):
        done = {o: sum(1 for r in terminalreporter.stats.get(o, []) if getattr(r, "nodeid", "").startswith(suite)
                       and getattr(r, "when", "call") == "call") for o in ("passed", "failed")}
        if any(done.values()):
            terminalreporter.write_line(f"{label}: {done['passed']} cases passed, {done['failed']} failed")
