"""Connection settings shared by every command."""

from __future__ import annotations

from dataclasses import dataclass

MLMD_URL_ENV = "MLMD2KFP_MLMD_URL"
KFP_URL_ENV = "MLMD2KFP_KFP_URL"


@dataclass(frozen=True)
class Settings:
    """What a command needs to reach its databases."""

    mlmd_url: str | None = None
    """SQLAlchemy URL of the MLMD database (env `MLMD2KFP_MLMD_URL`)."""
    kfp_url: str | None = None
    """SQLAlchemy URL of the KFP API-server database (env `MLMD2KFP_KFP_URL`)."""


PART_ENVS = ("MLMD2KFP_DB_TYPE", "MLMD2KFP_DB_HOST", "MLMD2KFP_DB_PORT", "MLMD2KFP_DB_USER", "MLMD2KFP_DB_PASSWORD",
             "MLMD2KFP_MLMD_DB", "MLMD2KFP_KFP_DB")
"""A URL from the parts a KFP install keeps apart (`pipeline-install-config`: dbHost, dbPort, mlmdDb,
pipelineDb; `mysql-secret` / `postgres-secret-extended`: username, password), as in deploy/job.yaml."""

_DRIVERS = {"mysql": "mysql", "mariadb": "mysql", "postgres": "postgresql+psycopg",
            "postgresql": "postgresql+psycopg", "pgx": "postgresql+psycopg"}


def url_from_parts(role: str, env: dict[str, str]) -> str | None:
    """The `role` ("MLMD" or "KFP") URL built from MLMD2KFP_DB_* variables, or None when they are not set.

    The password is URL-escaped here, so any character a secret holds works (a URL typed by hand
    would need `%40` for `@`, and so on).
    """
    from sqlalchemy.engine import URL

    from .errors import ConfigError

    database = env.get("MLMD2KFP_MLMD_DB" if role == "MLMD" else "MLMD2KFP_KFP_DB")
    host = env.get("MLMD2KFP_DB_HOST")
    if not database or not host:
        return None
    kind = env.get("MLMD2KFP_DB_TYPE", "mysql").strip().lower() or "mysql"
    if kind not in _DRIVERS:
        raise ConfigError(f"MLMD2KFP_DB_TYPE={kind!r} is not one of {', '.join(sorted(_DRIVERS))}")
    port = env.get("MLMD2KFP_DB_PORT", "").strip()
    if port and not port.isdigit():
        raise ConfigError(f"MLMD2KFP_DB_PORT={port!r} is not a port number")
    url = URL.create(_DRIVERS[kind], username=env.get("MLMD2KFP_DB_USER") or None,
                     password=env.get("MLMD2KFP_DB_PASSWORD") or None, host=host,
                     port=int(port) if port else None, database=database,
                     query={"charset": "utf8mb4"} if _DRIVERS[kind] == "mysql" else {})
    return url.render_as_string(hide_password=False)
