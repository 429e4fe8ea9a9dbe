"""The only module that prints (STYLE.md point 14).

Data goes to stdout, diagnostics and progress to stderr. URLs are always shown
with their password masked.
"""

from __future__ import annotations

from urllib.parse import quote

from typing import Any

from rich.console import Console
from rich.text import Text
from sqlalchemy.engine import URL, make_url

out = Console(highlight=False, soft_wrap=True)
"""Data: tables, reports."""
err = Console(stderr=True, highlight=False, soft_wrap=True)
"""Diagnostics, warnings, progress."""


_SECRET_QUERY = ("pass", "secret", "token", "key", "auth", "credential")


def escape_at_in_password(raw: str) -> str:
    """`scheme://user:p@ss@host/db`: a password holding an unescaped `@` (the last `@` before the path
    ends the user info), percent-escaped so that the URL parses as meant and masks the whole password."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        return raw
    authority_end = len(rest.split("?", 1)[0])
    last_at = rest.rfind("@", 0, authority_end)
    userinfo = rest[:last_at] if last_at > 0 else ""
    if userinfo.count("@") == 0 or "/" in userinfo:
        return raw
    user, colon, password = userinfo.partition(":")
    return f"{scheme}://{user}{colon}{quote(password, safe='%')}{rest[last_at:]}"


def mask_url(url: str | URL) -> str:
    """Render a database URL with its password, and any query value that looks like a credential
    (`sslpassword`, `token`, `api_key`, …), replaced by `***`."""
    try:
        parsed = make_url(escape_at_in_password(url)) if isinstance(url, str) else url
    except Exception:  # not a URL at all: show nothing that could be a secret
        return "<unparseable URL>"
    if parsed.query:
        masked = {k: ("***" if any(word in k.lower() for word in _SECRET_QUERY) else v)
                  for k, v in parsed.query.items()}
        parsed = parsed.set(query=masked)
    return parsed.render_as_string(hide_password=True)


def info(message: str) -> None:
    """A progress or status line on stderr."""
    err.print(Text(message))


def warn(message: str) -> None:
    """A warning on stderr."""
    err.print(Text("Warning: ", style="yellow") + Text(message))


def error(message: str) -> None:
    """An error line on stderr (the CLI's choke point calls this)."""
    err.print(Text("Error: ", style="red") + Text(message))


def print_data(renderable: Any) -> None:
    """A table or text that is the command's result, on stdout."""
    out.print(renderable)


class RunProgress:
    """Progress over runs: a rich bar on a terminal, a plain line every 10% otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar = None
        self._task = None
        self._last_decile = -1

    def __enter__(self) -> RunProgress:
        import time

        self._t0 = time.monotonic()
        if err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 console=err, transient=True)
            self._bar.start()
        return self

    def __call__(self, done: int, total: int, rows: int | None = None) -> None:
        """Report `done` of `total` runs (and `rows` written so far, shown as rows/s)."""
        import time

        if not hasattr(self, "_t0"):
            self._t0 = time.monotonic()
        rate = ""
        elapsed = time.monotonic() - self._t0
        if rows is not None and elapsed >= 1:  # no rate before there is a second to measure it over
            rate = f", {rows / elapsed:,.0f} rows/s"
        if self._bar is not None:
            if self._task is None:
                self._task = self._bar.add_task(self.label, total=total)
            self._bar.update(self._task, completed=done, total=total, description=f"{self.label}{rate}")
            return
        decile = (done * 10 // total) if total else 10
        if decile != self._last_decile:
            self._last_decile = decile
            info(f"{self.label}: {done}/{total} runs{rate}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
