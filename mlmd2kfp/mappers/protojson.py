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
from typing import Any

_MAX_EXACT = 2**53


def _normalise(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored in a JSON column")
        if value.is_integer() and abs(value) < _MAX_EXACT:
            return int(value)
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def dumps(value: Any) -> str:
    """The canonical JSON text of `value` (None → `null`)."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def rfc3339(seconds: int) -> str:
    """A `google.protobuf.Timestamp` in protojson form, whole seconds (`2026-01-01T00:00:00Z`)."""
    return _dt.datetime.fromtimestamp(seconds, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
