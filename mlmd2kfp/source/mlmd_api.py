"""The `ml-metadata` library as a read path and a store opener (the optional `mlmd` extra).

`verify --source api` reads MLMD through it, independently of the SQL reader; the sample writes its
fixtures through `open_store`.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy.engine import URL

from ..errors import MissingDependencyError, SourceError

# ml-metadata's C++ core logs every connection to stderr through glog; keep stderr for our own lines.
os.environ.setdefault("GLOG_minloglevel", "2")

__all__ = ["connection_config", "metadata_store", "mlmd_errors", "mlmd_pb", "open_read_only", "open_store",
           "require_mlmd"]

# Untyped (generated protobuf modules, no stubs): `Any`, or None without the extra.
mlmd_errors: Any
metadata_store: Any
mlmd_pb: Any
try:  # ml-metadata is the optional `mlmd` extra (protobuf < 5, Python <= 3.11).
    from ml_metadata import errors as _errors
    from ml_metadata.metadata_store import metadata_store as _store
    from ml_metadata.proto import metadata_store_pb2 as _pb

    mlmd_errors, metadata_store, mlmd_pb = _errors, _store, _pb
except ImportError:  # pragma: no cover - exercised only without the extra
    mlmd_errors = metadata_store = mlmd_pb = None


def require_mlmd() -> None:
    """Raise a clear error when the `ml-metadata` package is missing."""
    if metadata_store is None:
        raise MissingDependencyError(
            "this command writes MLMD through the `ml-metadata` package, which is not installed; "
            "install the `mlmd` extra on Python 3.11 (pip install 'mlmd2kfp[mlmd]')"
        )


def connection_config(url: URL) -> Any:
    """An ml-metadata `ConnectionConfig` for a SQLAlchemy URL (SQLite, MySQL/MariaDB, PostgreSQL)."""
    require_mlmd()
    config = mlmd_pb.ConnectionConfig()
    backend = url.get_backend_name()
    if backend == "sqlite":
        config.sqlite.filename_uri = url.database or ""
        config.sqlite.connection_mode = mlmd_pb.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    elif backend in ("mysql", "mariadb"):
        config.mysql.host = url.host or "127.0.0.1"
        config.mysql.port = int(url.port or 3306)
        config.mysql.database = url.database or ""
        config.mysql.user = url.username or ""
        config.mysql.password = url.password or ""
        if url.query.get("unix_socket"):
            config.mysql.socket = str(url.query["unix_socket"])
    elif backend == "postgresql":
        config.postgresql.host = url.host or "127.0.0.1"
        config.postgresql.port = str(url.port or 5432)
        config.postgresql.dbname = url.database or ""
        config.postgresql.user = url.username or ""
        config.postgresql.password = url.password or ""
    else:
        raise SourceError(f"ml-metadata cannot use backend `{backend}`")
    return config


def open_store(url: URL) -> Any:
    """Open (creating schema 10 if the database is empty) an MLMD store through ml-metadata."""
    try:
        return metadata_store.MetadataStore(connection_config(url))
    except Exception as exc:  # ml-metadata raises its own status errors
        raise SourceError(
            f"ml-metadata could not open the MLMD database: {type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:200]}"
        ) from None


def open_read_only(url: URL) -> Any:
    """An ml-metadata store that can only read: no schema creation, no upgrade, SQLite READONLY."""
    config = connection_config(url)
    if config.HasField("sqlite"):
        config.sqlite.connection_mode = mlmd_pb.SqliteMetadataSourceConfig.READONLY
    elif config.HasField("mysql"):
        config.mysql.skip_db_creation = True
    else:
        config.postgresql.skip_db_creation = True
    return metadata_store.MetadataStore(config, enable_upgrade_migration=False)
