"""Canonical protojson text for every JSON column (kfp-native-schema.md §1.6).

The server stores protojson re-marshalled by Go's encoding/json: camelCase keys sorted, no
whitespace, enum names, int64 as decimal strings, timestamps RFC 3339 UTC with `Z`, a nil list or
map as `null`. Go's encoder writes integral float64 values without a fraction (`3`, not `3.0`)
and leaves non-ASCII unescaped.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from typing import Any

_MAX_EXACT = 2**53


_LEAVES = (str, int, bool, type(None))


def _normalise(value: Any) -> Any:
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is dict:
        return {k if type(k) is str else str(k): v if type(v) in _LEAVES else _normalise(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [v if type(v) in _LEAVES else _normalise(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored in a JSON column")
        if value.is_integer() and abs(value) < _MAX_EXACT:
            return int(value)
        return float(value)
    if isinstance(value, (bool, str, int)):  # subclasses (enums): their plain value
        return value
    if isinstance(value, dict):
        return _normalise(dict(value))
    if isinstance(value, (list, tuple)):
        return _normalise(list(value))
    raise TypeError(f"not a JSON value: {type(value).__name__}")


_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def dumps(value: Any) -> str:
    """The canonical JSON text of `value` (None → `null`)."""
    if value is None:
        return "null"
    return _ENCODER.encode(_normalise(value))


def rfc3339(seconds: int) -> str:
    """A `google.protobuf.Timestamp` in protojson form, whole seconds (`2026-01-01T00:00:00Z`)."""
    if 0 <= seconds < 253402300800:  # years 1970-9999: the C fast path
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
