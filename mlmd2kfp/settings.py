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
    debug: bool = False
    """Re-raise errors with their traceback instead of one line."""
