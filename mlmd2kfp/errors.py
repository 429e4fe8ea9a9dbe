"""One error family for the whole toolkit.

The library raises `ToolkitError` subclasses; `cli.py` catches them once, prints
`Error: …` and exits with `exit_code` (STYLE.md point 2).
"""

from __future__ import annotations


class ToolkitError(Exception):
    """Base of every error the toolkit reports to an operator."""

    exit_code: int = 3

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(ToolkitError):
    """A missing or invalid option or setting."""


class UsageError(ConfigError):
    """The command line itself is wrong (a required option missing, a value no command takes): exit 2, as
    click's own usage errors (issue #27 item 7)."""

    exit_code = 2


class DatabaseConnectError(ToolkitError):
    """A database URL that cannot be connected to."""

    def __init__(self, message: str, *, role: str, url: str, reason: str) -> None:
        super().__init__(message)
        self.role = role
        """Which database: `MLMD` or `KFP`."""
        self.url = url
        """The URL, password masked."""
        self.reason = reason
        """Short classification of what failed."""


class TargetSchemaError(ToolkitError):
    """The KFP database's schema is not what the toolkit can work with."""


class SourceError(ToolkitError):
    """The MLMD database cannot be read as expected."""


class MissingDependencyError(ToolkitError):
    """An optional package (extra) is needed for this command."""


class LockHeldError(ToolkitError):
    """Another migrator holds the migration lock."""


class ResumeError(ToolkitError):
    """The recorded migration cannot be continued with these options."""


class PrivilegeError(ToolkitError):
    """The database user lacks a privilege the command needs."""


class MigrationFailedError(ToolkitError):
    """A batch failed for good; committed batches are kept and the state says where to resume."""


class PlanNotClean(ToolkitError):
    """`--strict`: the plan would skip rows or map runs without a spec, so nothing was written."""

    exit_code = 1


class InterruptedByOperator(ToolkitError):
    """Ctrl-C or SIGTERM: the current batch finished, state recorded."""

    exit_code = 130


class StoppedAtOnce(BaseException):
    """Ctrl-C/SIGTERM outside a batch's natural end: during start-up, or the second signal during a migrate.
    A BaseException (no `except Exception` swallows it) and not `KeyboardInterrupt` (which click turns into
    "Aborted!" and exit 1, the code for "differences found"); the CLI makes it one line and exit 130."""

    def __init__(self, signal_name: str = "SIGINT") -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name


def unexpected_error_line(exc: BaseException) -> str:
    """One line for an exception the toolkit did not anticipate: what it was, and what to do next."""
    cause = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300] or "no message"
    return (f"unexpected {type(exc).__name__}: {cause}. Nothing more was written; rerun with --debug for the "
            "traceback and report it (if it names damaged data, fix or exclude that row and rerun)")
