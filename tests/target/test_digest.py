"""`target.digest` (docs/mapping.md W15): one digest for a run's rows whichever way they come — about to be
written (JSON as canonical text), read back as text (SQLite, MariaDB, MySQL 8's rewritten JSON) or parsed
(PostgreSQL) — and a different one for any change KFP's retry makes. Pure: no database."""

from __future__ import annotations

import json

from mlmd2kfp.target.digest import rows_digest, run_mark

TASK = {
    "UUID": "0f0c2b8e-6a7d-5c1e-9b3a-2d4f6e8a0b1c", "Namespace": "team-a", "RunUUID": "run-1",
    "pods": '[{"name":"p-driver","type":"DRIVER","uid":"u1"}]', "CreatedAtInSec": 10, "StartedInSec": 10,
    "FinishedInSec": 20, "Fingerprint": "", "Name": "train", "DisplayName": "train", "ParentTaskUUID": None,
    "State": 2, "StatusMetadata": None, "StateHistory": '[{"state":"SUCCEEDED","updateTime":"2026-01-01T00:00:20Z"}]',
    "InputParameters": '[{"parameterKey":"a","type":"COMPONENT_INPUT","value":1},'
                       '{"parameterKey":"b","type":"COMPONENT_INPUT","value":"x"}]',
    "OutputParameters": None, "Type": 2, "TypeAttrs": "{}", "ScopePath": "root.train", "LogicalKey": "k" * 64,
}
LINK = {"UUID": "1a2b3c4d-5e6f-5a7b-8c9d-0e1f2a3b4c5d", "ArtifactID": "a1", "TaskID": TASK["UUID"], "Type": 2,
        "Iteration": -1, "RunUUID": "run-1", "Producer": '{"taskName":"train"}', "ArtifactKey": "model"}


def _parsed(row: dict) -> dict:
    """As PostgreSQL's driver returns a row: JSON columns parsed."""
    out = dict(row)
    for column in ("pods", "StatusMetadata", "StateHistory", "InputParameters", "OutputParameters", "TypeAttrs",
                   "Producer"):
        if isinstance(out.get(column), str):
            out[column] = json.loads(out[column])
    return out


def test_text_parsed_and_rewritten_json_give_one_digest():
    want = rows_digest([TASK], [LINK])
    assert rows_digest([_parsed(TASK)], [_parsed(LINK)]) == want
    spaced = {**TASK, "TypeAttrs": "{ }", "pods": json.dumps(json.loads(TASK["pods"]), indent=2)}  # MySQL 8 rewrites
    assert rows_digest([spaced], [LINK]) == want
    doubles = {**TASK, "InputParameters": TASK["InputParameters"].replace('"value":1', '"value":1.0')}
    assert rows_digest([doubles], [LINK]) == want  # a struct's whole double is the integer


def test_parameter_order_is_not_significant_but_values_are():
    entries = json.loads(TASK["InputParameters"])
    assert rows_digest([{**TASK, "InputParameters": json.dumps(entries[::-1])}], [LINK]) == rows_digest([TASK], [LINK])
    entries[0]["value"] = 2
    assert rows_digest([{**TASK, "InputParameters": json.dumps(entries)}], [LINK]) != rows_digest([TASK], [LINK])


def test_what_a_retry_changes_changes_the_digest():
    want = rows_digest([TASK], [LINK])
    assert rows_digest([TASK], []) != want  # a link dropped
    assert rows_digest([{**TASK, "State": 1}], [LINK]) != want
    assert rows_digest([{**TASK, "pods": "[]"}], [LINK]) != want
    assert rows_digest([{**TASK, "StatusMetadata": "{}"}], [LINK]) != want  # NULL and {} differ
    assert rows_digest([{**TASK, "StartedInSec": 11}], [LINK]) != want


def test_rows_kfp_wrote_are_not_the_tools():
    kfp_task = {**TASK, "UUID": "0f0c2b8e-6a7d-4c1e-9b3a-2d4f6e8a0b1c", "Name": "retried-driver"}  # version 4
    assert rows_digest([TASK, kfp_task], [LINK]) == rows_digest([TASK], [LINK])
    assert rows_digest([], []) == rows_digest([kfp_task], [])


def test_run_mark_follows_the_run_state_only():
    row = {"State": "FAILED", "Conditions": "Failed", "FinishedAtInSec": 20, "DisplayName": "x"}
    assert run_mark(row) == run_mark({**row, "DisplayName": "renamed"})
    assert run_mark(row) != run_mark({**row, "State": "RUNNING", "Conditions": "Running", "FinishedAtInSec": 0})
    assert run_mark(None) == ""
