"""Decoding MLMD property values (mlmd-source-model.md §1.3)."""

from __future__ import annotations

from typing import Any

from .structs import STRUCT_PREFIX, decode_struct


class BadValue:
    """A property value that cannot be decoded; carries the reason for the ledger or an error."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"BadValue({self.reason!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BadValue) and other.reason == self.reason

    def __hash__(self) -> int:
        return hash(self.reason)


def decode_value(int_value: Any, double_value: Any, string_value: Any, proto_value: Any, bool_value: Any) -> Any:
    """The value of one property row, checking columns in MLMD's own order (int, double, string, proto, bool).

    Strings starting with `mlmd-struct::` are decoded structs (plain JSON values). A value that
    cannot be decoded is returned as `BadValue`.
    """
    if int_value is not None:
        return int(int_value)
    if double_value is not None:
        return float(double_value)
    if string_value is not None:
        if isinstance(string_value, bytes):
            try:
                string_value = string_value.decode("utf-8")
            except UnicodeDecodeError:
                return BadValue("string_value is not valid UTF-8")
        if string_value.startswith(STRUCT_PREFIX):
            try:
                return decode_struct(string_value)
            except ValueError as exc:
                return BadValue(str(exc))
        return string_value
    if proto_value is not None:  # KFP writes none: left out and ledgered `bad-property` (docs/mapping.md M11)
        return BadValue("a protobuf value (proto_value), which KFP never writes")
    if bool_value is not None:
        return bool(bool_value)
    return None


BAD_TIME = -(2**62)
"""A time column holding something that is not a number (SQLite keeps whatever was written): mapped like a
time before 1970 (written as 0, ledger `bad-time`, docs/mapping.md M17)."""


def millis(value: object) -> int:
    """An MLMD `*_time_since_epoch` value as integer milliseconds; NULL is 0, a non-number `BAD_TIME`."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    try:
        return int(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return BAD_TIME
