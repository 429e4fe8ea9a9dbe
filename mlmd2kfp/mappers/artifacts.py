"""MLMD artifacts → `artifacts` rows, one per (artifact, namespace); metrics split per key (mapping.md §5)."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

from ..records import ArtifactRow, LedgerEntry, MlmdArtifact
from ..source.values import BadValue
from . import keys
from .enums import ARTIFACT_TYPES, IMPORTER_EXECUTIONS, METRIC, NO_URI_TYPES
from .protojson import dumps

NAME_LIMIT = 128
_KFP_KEYS = ("display_name", "store_session_info")


def infer_artifact_name(uri: str | None) -> str:
    """The runtime importer's `inferArtifactName`: the last segment of the URI's path."""
    if not uri:
        return ""
    path = urlsplit(uri).path if "://" in uri else uri
    segment = path.rstrip("/").rsplit("/", 1)[-1]
    return segment or uri.rstrip("/").rsplit("/", 1)[-1]


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
