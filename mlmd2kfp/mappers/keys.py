"""Deterministic ids, LogicalKey and URIHash (mapping.md §2, kfp-native-schema.md §3.3)."""

from __future__ import annotations

import hashlib
import struct
import uuid

ID_NAMESPACE = uuid.UUID("6c2f3a0e-5b7d-5e4a-9a51-6d6c6d64326b")
"""The fixed namespace hashed into every row id this tool writes (owned by this project; never change)."""

POSITION_BITS = 48
"""The leading bits of an id that hold its position in the source (docs/mapping.md §2, mapping version 4)."""
_MAX_POSITION = (1 << POSITION_BITS) - 1
_NS_BYTES = ID_NAMESPACE.bytes
TOOL_VERSIONS = (5, 8)
"""UUID versions of the ids this tool writes: 8 (mapping version 4 on), 5 (mapping versions 1 to 3, which a
rerun rewrites); the KFP runtime writes version 4."""


def row_id(name: str, source_name: str = "", position: int = 0) -> str:
    """A version-8 UUID (RFC 9562 §5.8) for a row name such as `task:<parent>:<Name>:<iteration>`, in key order.

    The first 48 bits are `position`, the row's place in the source (a run's context id, an artifact's MLMD id;
    capped at 2^48 - 1), big-endian, so a run read later gets ids that sort after an earlier run's and a load
    appends to the primary key instead of writing all over it (issue #29). The other 74 free bits are the
    SHA-1 name hash of RFC 9562 §5.5 over the namespace and `source_name|name`, bytes 6 to 15: the same
    row always gets the same id, and two sources never share one."""
    digest = bytearray(hashlib.sha1(_NS_BYTES + (f"{source_name}|{name}" if source_name else name).encode()).digest()[:16])
    digest[0:6] = min(max(position, 0), _MAX_POSITION).to_bytes(6, "big")
    digest[6] = (digest[6] & 0x0F) | 0x80
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_migrated_id(value: str) -> bool:
    """True for ids this tool writes (`TOOL_VERSIONS`); live KFP rows are version 4."""
    try:
        return uuid.UUID(value).version in TOOL_VERSIONS
    except ValueError:
        return False


def task_id(parent_id: str | None, run_id: str, name: str, iteration: int | None, source_name: str = "",
            context_id: int = 0) -> str:
    """`task:<parent task id, or run UUID for ROOT>:<Name>:<iterationIndex or ->`, at the run's context id."""
    it = "-" if iteration is None else str(iteration)
    return row_id(f"task:{parent_id or run_id}:{name}:{it}", source_name, context_id)


def artifact_id(mlmd_id: int, namespace: str, metric_key: str | None = None, source_name: str = "") -> str:
    """`artifact:<mlmd id>:<namespace>` (`…:metric:<key>` for a split metric row), at its MLMD id."""
    base = f"artifact:{mlmd_id}:{namespace}"
    return row_id(base if metric_key is None else f"{base}:metric:{metric_key}", source_name, mlmd_id)


def link_id(task: str, artifact: str, io_type: int, iteration: int, key: str, source_name: str = "",
            context_id: int = 0) -> str:
    """`link:<TaskID>:<ArtifactID>:<Type>:<Iteration>:<ArtifactKey>` (the UniqueLink tuple), at the run's
    context id."""
    return row_id(f"link:{task}:{artifact}:{io_type}:{iteration}:{key}", source_name, context_id)


def logical_key(run_uuid: str, parent_uuid: str | None, scope_path: str, name: str, task_type: int,
                iteration: int | None) -> str | None:
    """The runtime's idempotency key (task_store.go:397-479); None when it cannot be computed."""
    if not run_uuid or not scope_path or not name or task_type == 0:
        return None
    h = hashlib.sha256()
    for part in (run_uuid, parent_uuid or "", scope_path, name):
        raw = part.encode("utf-8")
        h.update(struct.pack(">I", len(raw)))
        h.update(raw)
    h.update(struct.pack(">i", task_type))
    if iteration is None:
        h.update(b"\x00")
    else:
        h.update(b"\x01" + struct.pack(">q", iteration))
    return h.hexdigest()


def uri_hash(uri: str | None) -> str:
    """Lower-case hex SHA-256 of the URI, `''` for NULL or empty."""
    # a URI read from MLMD bytes that are not UTF-8 keeps them as surrogates (the run is then skipped)
    return hashlib.sha256(uri.encode("utf-8", "surrogateescape")).hexdigest() if uri else ""
