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
    """A table or text that is the command's result, on stdout: rich tables on a terminal; elsewhere (a Job
    log, CI, a pipe) plain, complete lines, since a table there is cut at 80 columns."""
    if out.is_terminal:
        out.print(renderable)
        return
    for line in plain_lines(renderable):
        out.print(Text(line), crop=False, overflow="ignore")


def plain_lines(renderable: Any) -> list[str]:
    """`renderable` (text, a rich `Table` or a `Group` of them) as whole lines with no box drawing: a
    table's title, then per row `item: value` (two columns) or the first cell and `header: value` pairs
    joined by `; `, then its caption."""
    from rich.console import Group
    from rich.table import Table

    if isinstance(renderable, Group):
        return [line for part in renderable.renderables for line in plain_lines(part)]
    if not isinstance(renderable, Table):
        return [str(renderable)]
    lines = [str(renderable.title)] if renderable.title else []
    columns = [[str(c) for c in col.cells] for col in renderable.columns]
    headers = [str(col.header) for col in renderable.columns]
    for i in range(renderable.row_count):
        cells = [col[i] for col in columns]
        if len(cells) <= 2:  # an item and its value
            lines.append("  " + cells[0].strip() + (f": {cells[1]}" if len(cells) > 1 else ""))
        else:
            lines.append("  " + "; ".join(f"{h}: {c}" if j else c.strip()
                                          for j, (h, c) in enumerate(zip(headers, cells, strict=True))))
    if renderable.caption:
        lines.append(str(renderable.caption))
    return lines


class RunProgress:
    """Progress over runs: a rich bar on a terminal, a plain line every 10% otherwise. The bar appears
    with the first report, and replaces the bar of another `RunProgress` (one phase after another)."""

    _shown: RunProgress | None = None
    """The one whose bar is on the terminal (rich shows one live display at a time)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self._bar: Any = None
        self._task: Any = None
        self._last_decile = -1
        self._t0: float | None = None

    def __enter__(self) -> RunProgress:
        import time

        self._t0 = time.monotonic()
        return self

    def __call__(self, done: int, total: int, rows: int | None = None) -> None:
        """Report `done` of `total` runs (and `rows` written so far, shown as rows/s)."""
        import time

        if self._t0 is None:
            self._t0 = time.monotonic()
        rate = ""
        elapsed = time.monotonic() - self._t0
        if rows is not None and elapsed >= 1:  # no rate before there is a second to measure it over
            rate = f", {rows / elapsed:,.0f} rows/s"
        if err.is_terminal:
            if self._bar is None:
                self._start_bar()
            if self._task is None:
                self._task = self._bar.add_task(self.label, total=total)
            self._bar.update(self._task, completed=done, total=total, description=f"{self.label}{rate}")
            return
        decile = (done * 10 // total) if total else 10
        if decile != self._last_decile:
            self._last_decile = decile
            info(f"{self.label}: {done}/{total} runs{rate}")

    def _start_bar(self) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        if RunProgress._shown is not None:
            RunProgress._shown._stop_bar()
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                             console=err, transient=True)
        self._bar.start()
        RunProgress._shown = self

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar, self._task = None, None
        if RunProgress._shown is self:
            RunProgress._shown = None

    def __exit__(self, *exc: object) -> None:
        self._stop_bar()
