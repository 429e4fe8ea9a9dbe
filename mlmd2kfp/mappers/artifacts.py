"""MLMD artifacts → `artifacts` rows, one per (artifact, namespace); metrics split per key (mapping.md §5)."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import unquote

from ..records import ArtifactRow, LedgerEntry, MlmdArtifact
from ..source.values import BadValue
from . import keys
from .enums import ARTIFACT_TYPES, IMPORTER_EXECUTIONS, METRIC, NO_URI_TYPES
from .protojson import dumps

NAME_LIMIT = 128
_KFP_KEYS = ("display_name", "store_session_info")


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(.*)", re.S)
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST_REFUSED = re.compile(r"[\x00-\x7f]", re.S)
_HOST_ALLOWED = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"%]")


def _base(p: str) -> str:
    """Go's `path.Base`."""
    stripped = p.rstrip("/")
    if not p:
        return "."
    return stripped.rsplit("/", 1)[-1] if stripped else "/"


def _go_path(uri: str) -> str | None:
    """What Go's `url.Parse(uri).Path` is for a URI with a scheme; None without a scheme or when Go refuses
    the URI (control bytes, a `%` not followed by two hex digits, a host character or port Go rejects)."""
    if re.search(r"[\x00-\x1f\x7f]", uri):
        return None
    rest, _, fragment = uri.partition("#")
    match = _SCHEME.fullmatch(rest)
    if match is None or _BAD_ESCAPE.search(fragment):
        return None
    rest = match.group(2).partition("?")[0]
    if not rest.startswith("/"):
        return ""  # an opaque URI: Go leaves Path empty
    if rest.startswith("//"):
        authority, slash, tail = rest[2:].partition("/")
        rest = slash + tail
        host = authority.rpartition("@")[2]
        if any(_HOST_REFUSED.match(c) and not _HOST_ALLOWED.match(c) for c in host) or _BAD_ESCAPE.search(host):
            return None
        port = host[host.rfind("]") + 1:] if host.startswith("[") else host
        if re.search(r":[^:]*\Z", port) and not re.search(r":\d*\Z", port):
            return None
    if _BAD_ESCAPE.search(rest):
        return None
    return unquote(rest, errors="surrogateescape")


def infer_artifact_name(uri: str | None) -> str:
    """The runtime importer's `inferArtifactName` (mapping.md §5, docs/mapping.md M18): Go's
    `path.Base(url.Parse(uri).Path)` when the URI has a scheme, else `path.Base` of the URI without a
    trailing `/` (also where Go would refuse the URI: the old KFP that wrote it did not parse it)."""
    if not uri:
        return ""
    path = _go_path(uri)
    return _base(uri[:-1] if uri.endswith("/") else uri) if path is None else _base(path)


def _unwrap(value: Any) -> Any:
    # KFP stores list metadata as {"list": [...]} and dicts as {"struct": {...}} (converter.go:138-168).
    if isinstance(value, dict) and len(value) == 1 and ("list" in value or "struct" in value):
        return next(iter(value.values()))
    return value


def artifact_name(a: MlmdArtifact) -> str:
    """Name: the producing output key, the importer's URI basename, else a recorded display name."""
    if a.first_output_type in IMPORTER_EXECUTIONS:
        return infer_artifact_name(a.uri)
    if a.first_output_key:
        return a.first_output_key
    shown = a.props.get("display_name")
    return shown if isinstance(shown, str) and shown else infer_artifact_name(a.uri) or f"artifact-{a.id}"


def map_artifact(a: MlmdArtifact, namespace: str, run_id: str, source_name: str = ""
                 ) -> tuple[list[ArtifactRow], list[LedgerEntry]]:
    """The target rows of one MLMD artifact in one namespace, and its ledger entries."""
    ledger: list[LedgerEntry] = []
    bad = {k: v.reason for k, v in a.props.items() if isinstance(v, BadValue)}
    props = {k: v for k, v in a.props.items() if k not in bad}
    for key, reason in sorted(bad.items()):
        ledger.append(LedgerEntry(run_id, "artifact", a.id, "bad-property", f"`{key}`: {reason}"))
    created = a.create_ms // 1000
    art_type = ARTIFACT_TYPES.get(a.type_name, 1)
    if art_type == METRIC:
        rows = []
        for key, value in sorted(props.items()):
            if key in _KFP_KEYS:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                ledger.append(LedgerEntry(run_id, "artifact", a.id, "bad-metric",
                                          f"`{key}` = {str(value)[:40]!r} is not a finite number"))
                continue
            name = key
            if len(name) > NAME_LIMIT:
                ledger.append(LedgerEntry(run_id, "artifact", a.id, "truncated", f"metric name `{key[:40]}…`"))
                name = name[:NAME_LIMIT]
            rows.append(ArtifactRow(
                keys.artifact_id(a.id, namespace, key, source_name), namespace, METRIC, None, "", name, "",
                created, created, dumps({key: value}), float(value), None, a.id))
        if not rows:
            ledger.append(LedgerEntry(run_id, "artifact", a.id, "empty-metrics", "no numeric metric values"))
        elif len(rows) > 1:
            ledger.append(LedgerEntry(run_id, "artifact", a.id, "split", f"{len(rows)} metric rows"))
        return rows, ledger
    name = artifact_name(a)
    metadata = {k: _unwrap(v) for k, v in props.items() if k != "store_session_info"}
    if metadata.get("display_name") == name:
        metadata.pop("display_name")
    if a.type_name not in ARTIFACT_TYPES:
        metadata["_kfp_schema_title"] = a.type_name
    if len(name) > NAME_LIMIT:
        ledger.append(LedgerEntry(run_id, "artifact", a.id, "truncated", f"name `{name[:40]}…`"))
        name = name[:NAME_LIMIT]
    uri = None if art_type in NO_URI_TYPES else a.uri
    row = ArtifactRow(keys.artifact_id(a.id, namespace, None, source_name), namespace, art_type, uri,
                      keys.uri_hash(uri), name, "", created, created, dumps(metadata or None), None, None, a.id)
    return [row], ledger
