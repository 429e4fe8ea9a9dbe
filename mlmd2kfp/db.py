"""Engines and connections, with one clear error when a database is unreachable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError
from sqlalchemy.pool import StaticPool

from .console import escape_at_in_password, mask_url
from .errors import ConfigError, DatabaseConnectError, UsageError

# Each role names the option and variable an operator would fix.
_ROLE_HINT = {
    "MLMD": "--mlmd-url / MLMD2KFP_MLMD_URL",
    "KFP": "--kfp-url / MLMD2KFP_KFP_URL",
}

# Substrings of driver messages, in priority order, and what they mean to an operator.
_REASONS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("access denied", "password authentication failed", "authentication failed",
      "no password supplied", "(1045"),
     "authentication failed (wrong user or password)",
     "check the user name and password"),
    (("unknown database", "(1049", "does not exist"),
     "the database does not exist",
     "check the database name in the URL"),
    (("connection refused", "can't connect", "could not connect", "(2003", "timed out",
      "timeout expired", "name or service not known", "could not translate host",
      "nodename nor servname", "no route to host", "temporary failure in name resolution",
      "(2005"),
     "the server is unreachable",
     "check the host and port, and that the server is running"),
    (("unable to open database file",),
     "the SQLite file cannot be opened",
     "check that the file's folder exists and is writable"),
    (("file is not a database", "database disk image is malformed"),
     "the file is not a SQLite database (or is damaged)",
     "check that the URL names the database file itself, not a copy or another file"),
)


def parse_url(raw: str, role: str) -> URL:
    """Parse a SQLAlchemy URL or raise `ConfigError` naming the option."""
    try:
        url = make_url(escape_at_in_password(raw))
    except ArgumentError:
        raise UsageError(
            f"the {role} database URL is not a valid SQLAlchemy URL "
            f"(set {_ROLE_HINT.get(role, 'the URL')}; e.g. sqlite:///kfp.sqlite or "
            "mysql+pymysql://user:password@host:3306/mlpipeline)"
        ) from None
    if url.get_backend_name() not in ("sqlite", "mysql", "mariadb", "postgresql"):
        raise UsageError(
            f"the {role} database URL {mask_url(url)} uses backend "
            f"`{url.get_backend_name()}`; supported: sqlite, mysql (MySQL 8, MariaDB), postgresql"
        )
    if url.drivername in ("mysql", "mariadb"):  # no driver named: the fastest one installed
        url = url.set(drivername=f"mysql+{mysql_driver()}")
    elif url.drivername == "postgresql":  # SQLAlchemy's default is psycopg2; the `postgres` extra is psycopg 3
        try:
            import psycopg  # noqa: F401
        except ImportError:
            pass
        else:
            url = url.set(drivername="postgresql+psycopg")
    return url


def mysql_driver() -> str:
    """`mysqldb` (mysqlclient, C: decodes rows ~3x faster) when installed, else `pymysql` (pure Python).

    A URL that names its driver (`mysql+pymysql://`, `mysql+mysqldb://`) keeps it.
    """
    try:
        import MySQLdb  # noqa: F401
    except ImportError:
        return "pymysql"
    return "mysqldb"


def _explain(exc: BaseException, url: URL, role: str) -> DatabaseConnectError:
    text_ = str(getattr(exc, "orig", None) or exc)
    lowered = text_.lower()
    reason, todo = "the connection failed", "check the URL and the server"
    for needles, why, what in _REASONS:
        if any(n in lowered for n in needles):
            reason, todo = why, what
            break
    # Never echo a password, even if a driver put it in its message.
    if url.password:
        text_ = text_.replace(str(url.password), "***")
    detail = " ".join(text_.split())[:200]
    where = url.host or url.database or "?"
    message = (
        f"cannot connect to the {role} database at {mask_url(url)} (host {where}): {reason}; "
        f"{todo} ({_ROLE_HINT.get(role, 'the URL')}). Driver said: {detail}"
    )
    return DatabaseConnectError(message, role=role, url=mask_url(url), reason=reason)


def _engine_options(url: URL, role: str, create_sqlite: bool) -> dict[str, object]:
    """`create_engine`'s options for the backend (a missing SQLite file refused unless `create_sqlite`)."""
    kwargs: dict[str, object] = {"future": True}
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = url.database
        if path and path != ":memory:" and not path.startswith("file:"):
            if not create_sqlite and not Path(path).exists():
                raise DatabaseConnectError(
                    f"the {role} SQLite database {path} does not exist; "
                    f"check {_ROLE_HINT.get(role, 'the URL')}",
                    role=role, url=mask_url(url), reason="file missing",
                )
        kwargs["connect_args"] = {"timeout": 30}
        if path in (None, "", ":memory:"):  # one database per connection: every user of the engine shares it
            kwargs["poolclass"] = StaticPool
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif backend in ("mysql", "mariadb", "postgresql"):
        kwargs["pool_pre_ping"] = True
        kwargs["connect_args"] = {"connect_timeout": int(os.environ.get("MLMD2KFP_CONNECT_TIMEOUT", "10"))}
    return kwargs


def make_engine(raw_url: str | URL, role: str, *, create_sqlite: bool = True) -> Engine:
    """Create an engine for `raw_url` and prove it connects.

    Args:
        raw_url: SQLAlchemy URL.
        role: `MLMD` or `KFP`, used in messages.
        create_sqlite: when False, a missing SQLite file is an error instead of being created.

    Raises:
        ConfigError: the URL is malformed or names an unsupported backend or missing driver.
        DatabaseConnectError: the database cannot be reached or refuses the login.
    """
    url = parse_url(raw_url, role) if isinstance(raw_url, str) else raw_url
    kwargs = _engine_options(url, role, create_sqlite)
    backend = url.get_backend_name()
    try:
        engine = create_engine(url, **kwargs)
    except (NoSuchModuleError, ModuleNotFoundError, ImportError) as exc:
        extra = "postgres" if backend == "postgresql" else None
        hint = f"install the `{extra}` extra (pip install 'mlmd2kfp[{extra}]')" if extra else "install the driver"
        raise ConfigError(f"the {role} database URL {mask_url(url)} needs a driver that is not installed: {exc}; {hint}") from None
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_on_connect_kfp if role == "KFP" else _sqlite_on_connect)
    elif url.get_driver_name() == "mysqldb":
        # mysqlclient splits executemany INSERTs into 64 KB statements; PyMySQL's 1 MB (well below the
        # 16 MB default max_allowed_packet of MariaDB and MySQL 8's 64 MB) needs 16x fewer round trips.
        import MySQLdb.cursors

        MySQLdb.cursors.BaseCursor.max_stmt_length = 1024000
    try:
        with engine.connect() as conn:
            # SQLite reads the file's header only at the first real query
            conn.execute(text("SELECT COUNT(*) FROM sqlite_master" if backend == "sqlite" else "SELECT 1"))
    except (DBAPIError, OSError) as exc:
        engine.dispose()
        raise _explain(exc, url, role) from None
    except TypeError as exc:  # the driver refuses an option from the URL's query string
        engine.dispose()
        option = str(exc).rsplit(" ", 1)[-1].strip("'\"")
        raise ConfigError(f"the {role} database URL {mask_url(url)} has an option the {url.get_driver_name()} "
                          f"driver does not accept ({option}); remove it from the URL's query string") from None
    return engine


def _sqlite_text(raw: bytes) -> str | bytes:
    """SQLite TEXT as str; bytes that are not UTF-8 come back as bytes, for the caller to report
    (sqlite3 would otherwise fail the whole query)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


SQLITE_CACHE_PAGES = -65536
"""SQLite's `cache_size` for the tool's connections to the KFP database: negative is KiB, so 64 MB."""


def _sqlite_on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_conn.text_factory = _sqlite_text
    # Foreign keys are off by default in SQLite; the target schema relies on them.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_on_connect_kfp(dbapi_conn, record) -> None:  # type: ignore[no-untyped-def]
    _sqlite_on_connect(dbapi_conn, record)
    # A 64 MB page cache for the target (SQLite's default is 2 MB): a batch's inserts touch pages all over
    # its random-UUID indexes, and with the default cache each batch re-reads most of them (BENCHMARKS.md:
    # migrate at 80k executions -20%). Capped, so memory does not grow with the store; MLMD, read in
    # order, keeps the default.
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA cache_size={SQLITE_CACHE_PAGES}")
    cur.close()


def in_memory(url: str | Engine) -> bool:
    """An in-memory SQLite database exists only in this process's connection (no other process can open
    it, so its readers run in this process)."""
    parsed = url.url if isinstance(url, Engine) else make_url(url)
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


def url_of(engine: Engine) -> str:
    """The URL `engine` was made from, password included: what a reader process opens (never printed; use
    `console.mask_url` for that)."""
    return engine.url.render_as_string(hide_password=False)


def label(target: str | Engine) -> str:
    """A URL or an engine as reports show it: the URL with its password masked."""
    return mask_url(target.url if isinstance(target, Engine) else target)


@contextmanager
def opened(target: str | Engine, role: str) -> Iterator[Engine]:
    """An engine for `target`: the caller's own engine as it is (left open), or one made from a URL
    (`make_engine`, an existing SQLite file only) and disposed at the end.

    The library's functions take either, so a test can hand them an engine it made (an in-memory SQLite
    one included)."""
    if isinstance(target, Engine):
        yield target
        return
    engine = make_engine(target, role, create_sqlite=False)
    try:
        yield engine
    finally:
        engine.dispose()
