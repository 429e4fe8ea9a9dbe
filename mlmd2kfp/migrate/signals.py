"""Be kind to Ctrl-C (STYLE.md point 8): the first SIGINT/SIGTERM finishes the batch, the second aborts."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..errors import StoppedAtOnce


class StopRequest:
    """Installed for the life of a `with` block; `requested` turns True on the first signal."""

    def __init__(self, on_first: Callable[[str], None] | None = None) -> None:
        self.requested = False
        self.signal_name = ""
        self._on_first = on_first
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:  # second signal: abort now, the open transaction rolls back
            raise StoppedAtOnce(signal.Signals(signum).name)
        self.requested = True
        self.signal_name = signal.Signals(signum).name
        if self._on_first:
            self._on_first(self.signal_name)

    def __enter__(self) -> StopRequest:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (tests calling the library): no handler
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
