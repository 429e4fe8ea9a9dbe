"""MLMD's `mlmd-struct::` string encoding of `google.protobuf.Struct` values (mlmd-source-model.md §1.3)."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format, struct_pb2

STRUCT_PREFIX = "mlmd-struct::"


def decode_struct(value: str) -> Any:
    """Decode an `mlmd-struct::<base64>` string into plain JSON values (dict).

    Raises:
        ValueError: the string lacks the prefix, or the payload is not a serialised Struct.
    """
    if not value.startswith(STRUCT_PREFIX):
        raise ValueError("not an mlmd-struct value")
    message = struct_pb2.Struct()
    try:
        message.ParseFromString(base64.b64decode(value[len(STRUCT_PREFIX):], validate=True))
    except Exception as exc:  # binascii.Error, DecodeError
        raise ValueError(f"malformed mlmd-struct payload: {exc}") from None
    return json_format.MessageToDict(message)
