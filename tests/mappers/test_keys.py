"""Ids, LogicalKey and URIHash against the spec's test vectors (kfp-native-schema.md §3.3)."""

from __future__ import annotations

import uuid

import pytest

from mlmd2kfp.mappers import keys
from mlmd2kfp.mappers.protojson import dumps, rfc3339

RUN = "7e1b2c3d-0000-4000-8000-000000000001"


@pytest.mark.parametrize("parent,scope,name,task_type,iteration,expected", [
    ("", "root", "ROOT", 1, None, "70aac055ddc1d5eb2e2aa463b0da1b700f5a157b7d996b9aa8871c47c0be77e6"),
    ("11111111-1111-4111-8111-111111111111", "root.print-op", "print-op", 2, None,
     "ba109756d9db71a8670d9cee9db3390c55abde81400279e522130b2469caba81"),
    ("11111111-1111-4111-8111-111111111111", "root.for-loop-2", "for-loop-2", 5, None,
     "cbe4723da7e25a1f229d52274d858b3cbd65c2313bbb8e4aae689a5143345c06"),
    ("22222222-2222-4222-8222-222222222222", "root.for-loop-2.print-op", "print-op", 2, 2,
     "cae5b1279fb8ad6f7c7ad3d63f9c92d56d74ee4a42ae9f64ca5bf164fd8f68f0"),
])
def test_logical_key_vectors(parent, scope, name, task_type, iteration, expected):
    assert keys.logical_key(RUN, parent or None, scope, name, task_type, iteration) == expected


@pytest.mark.parametrize("args", [("", None, "root", "ROOT", 1, None), (RUN, None, "", "ROOT", 1, None),
                                  (RUN, None, "root", "", 1, None), (RUN, None, "root", "ROOT", 0, None)])
def test_logical_key_is_none_when_it_cannot_be_computed(args):
    assert keys.logical_key(*args) is None


def test_uri_hash_vector():
    assert keys.uri_hash("gs://bucket/models/model.joblib") == \
        "78b6fff3fb490892ae8273a6d56bffccd87ea6e4d5eb94a8896bd448ceb77013"
    assert keys.uri_hash(None) == "" and keys.uri_hash("") == ""


def test_ids_are_version_8_deterministic_and_source_scoped():
    a = keys.task_id(None, RUN, "ROOT", None, context_id=7)
    assert a == keys.task_id(None, RUN, "ROOT", None, context_id=7)
    assert uuid.UUID(a).version == 8 and keys.is_migrated_id(a)
    assert keys.is_migrated_id(str(uuid.uuid5(uuid.NAMESPACE_URL, "a version-3 id")))  # rewritten on rerun
    assert not keys.is_migrated_id(str(uuid.uuid4()))
    assert keys.task_id(None, RUN, "ROOT", None, "other-mlmd", context_id=7) != a
    assert keys.task_id(a, RUN, "x", 0) != keys.task_id(a, RUN, "x", None)
    assert keys.artifact_id(5, "ns") != keys.artifact_id(5, "other")
    assert keys.artifact_id(5, "ns", "accuracy") != keys.artifact_id(5, "ns")
    assert keys.link_id("t", "a", 9, -1, "k") != keys.link_id("t", "a", 8, -1, "k")


@pytest.mark.parametrize("name,source_name,position,expected", [
    # docs/mapping.md §2 (mapping version 4): the position in the first 48 bits, then the version digit 8, then
    # the name's SHA-1 (RFC 9562 §5.5 over the namespace) from byte 6 on; values worked out by hand from
    # hashlib.sha1(namespace bytes + name)
    ("task:x:ROOT:-", "", 0, "00000000-0000-844e-a512-9d199518d207"),
    ("a", "src", 12345, "00000000-3039-816c-98a4-272bb416bab2"),
    ("z", "é", 7, "00000000-0007-810d-b236-b12919ff5f9e"),
    ("link:1", "", 2 ** 50, "ffffffff-ffff-8255-b647-596cb7b049c5"),  # capped at 2^48 - 1
])
def test_id_layout_vectors(name, source_name, position, expected):
    assert keys.row_id(name, source_name, position) == expected


def test_ids_sort_in_the_order_their_runs_are_read():
    """A later run's rows sort after an earlier run's (as text, as every backend compares the key column)."""
    ids = [keys.task_id(None, f"run-{c}", "ROOT", None, context_id=c) for c in (1, 2, 255, 256, 70000, 2 ** 40)]
    assert ids == sorted(ids)
    links = [keys.link_id(f"t{c}", "a", 9, -1, "k", context_id=c) for c in (3, 30, 300)]
    assert links == sorted(links)
    artifacts = [keys.artifact_id(i, "ns") for i in (9, 10, 4096)]
    assert artifacts == sorted(artifacts)


def test_protojson_canonical_form():
    assert dumps(None) == "null"
    assert dumps({"b": 1.0, "a": [2.5, "é"], "c": {"z": True}}) == '{"a":[2.5,"é"],"b":1,"c":{"z":true}}'
    assert dumps([]) == "[]" and dumps({}) == "{}"
    with pytest.raises(ValueError):
        dumps(float("nan"))
    assert rfc3339(1767225600) == "2026-01-01T00:00:00Z"
