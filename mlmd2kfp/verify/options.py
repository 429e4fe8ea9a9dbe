"""What `verify` checks and how (kept light: `api` imports it without the verifier)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VerifyOptions:
    """What `verify` checks and how it reads the source."""

    run_ids: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ()
    multi_user: bool | None = None
    source_path: str = "auto"
    """`auto` (ml-metadata API when installed), `api` or `sql`."""
    record: bool = True
    source_process: bool | None = None
    """Read the expected side in a second process (mapping.md W12); None: only for stores of
    `PROCESS_MIN_RUNS` run contexts or more."""
    source_name: str | None = None
    """Which MLMD source's migration this store is (`--source-name`); None: the only one recorded."""
    full: bool = False
    """Compare every run even when a chain of per-run records would let verify compare only what changed
    (`--full`, issue #30)."""

    def __post_init__(self) -> None:
        """Raises:
            UsageError: an unknown `source_path`.
        """
        from ..errors import UsageError

        if self.source_path not in ("auto", "api", "sql"):
            raise UsageError("--source must be auto, api or sql")
