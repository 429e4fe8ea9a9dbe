"""The one way to cut work into pieces: slices of a list (`IN` lists, multi-row statements) and batches of
a stream (issue #28: three helpers and thirteen hand-written `range(0, len(x), n)` loops before)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

IN_LIST = 500
"""Values per `IN (…)` list: far below every backend's limit on parameters and statement size."""


def chunks(items: Sequence[T], size: int = IN_LIST) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size` (none for an empty sequence)."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """A stream in lists of `size` (the last one shorter), read as it goes: memory stays one batch."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
