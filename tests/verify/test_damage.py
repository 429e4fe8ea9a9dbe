"""`verify` tested by damage (issues #12, #26, #30): on a migrated sample, each of 52 single-row damages, one or
more per column of `tasks`, `artifacts` and `artifact_tasks` and per rule (ledger, coverage both ways),
gives exit 1 naming the run, the row and the column; after each one the row is put back and verify
passes again. Every backend, in both kinds: a full verify, and an incremental one after a clean verify
recorded its per-run proofs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("ml_metadata")

from mlmd2kfp.verify import VerifyOptions, run_verify  # noqa: E402
from tests.helpers import Db  # noqa: E402


@dataclass
class Damage:
    name: str
    apply: Callable[[Db], tuple[str, Callable[[], None]]]
    """Makes the damage; returns the run that must be named ('' for run-less rows) and the undo."""
    check: str
    field: str


def _task(db: Db, where: str) -> dict[str, Any]:
    return db.one(f'SELECT t.* FROM tasks t WHERE {where} ORDER BY t."UUID"')


def _link(db: Db, where: str) -> dict[str, Any]:
    return db.one(f'SELECT l.* FROM artifact_tasks l JOIN tasks t ON t."UUID" = l."TaskID" WHERE {where} '
                  'ORDER BY l."UUID"')


def _artifact(db: Db, where: str) -> tuple[str, dict[str, Any]]:
    row = db.one(f'SELECT a.*, l."RunUUID" AS run FROM artifacts a JOIN artifact_tasks l ON l."ArtifactID" = '
                 f'a."UUID" WHERE {where} ORDER BY a."UUID", l."RunUUID"')
    return row.pop("run"), row


def task_col(where: str, column: str, value: Callable[[dict[str, Any]], Any]):
    def apply(db: Db) -> tuple[str, Callable[[], None]]:
        t = _task(db, where)
        return t["RunUUID"], db.set("tasks", "UUID", t["UUID"], column, value(t))
    return apply


def link_col(where: str, column: str, value: Callable[[dict[str, Any]], Any]):
    def apply(db: Db) -> tuple[str, Callable[[], None]]:
        lk = _link(db, where)
        return lk["RunUUID"], db.set("artifact_tasks", "UUID", lk["UUID"], column, value(lk))
    return apply


def artifact_col(where: str, column: str, value: Callable[[dict[str, Any]], Any]):
    def apply(db: Db) -> tuple[str, Callable[[], None]]:
        run, a = _artifact(db, where)
        return run, db.set("artifacts", "UUID", a["UUID"], column, value(a))
    return apply


def _js(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _edit_params(column: str, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]):
    return lambda t: json.dumps(edit(_js(t[column])))


def _first(entries: list[dict[str, Any]], **changes: Any) -> list[dict[str, Any]]:
    return [{**entries[0], **changes}] + entries[1:]


RUNTIME_OK = 't."Type" = 2 AND t."State" = 2 AND t."pods" <> \'[]\''
LEAF = 't."Name" = \'train\' AND t."State" = 2'


def _ledger_delete(reason: str, run_less: bool):
    def apply(db: Db) -> tuple[str, Callable[[], None]]:
        where = "run_uuid = ''" if run_less else "run_uuid <> ''"
        row = db.one(f"SELECT * FROM mlmd2kfp_ledger WHERE reason = :r AND {where} ORDER BY id", r=reason)
        return row["run_uuid"], db.delete("mlmd2kfp_ledger", "id", row["id"])
    return apply


def _ledger_reason(db: Db) -> tuple[str, Callable[[], None]]:
    row = db.one("SELECT * FROM mlmd2kfp_ledger WHERE reason = 'superseded-attempt' ORDER BY id")
    return row["run_uuid"], db.set("mlmd2kfp_ledger", "id", row["id"], "reason", "detached-execution")


def _ledger_extra(db: Db) -> tuple[str, Callable[[], None]]:
    t = _task(db, 't."Name" = \'train\'')
    return t["RunUUID"], db.insert("mlmd2kfp_ledger", {"id": "f" * 64, "run_uuid": t["RunUUID"], "entity": "execution",
                                                       "mlmd_id": 1, "reason": "superseded-attempt", "detail": ""})


def _extra_task(db: Db) -> tuple[str, Callable[[], None]]:
    t = _task(db, LEAF)
    ghost = {**t, "UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "ghost")), "Name": "ghost",
             "ScopePath": t["ScopePath"] + "-ghost", "LogicalKey": "e" * 64}
    return t["RunUUID"], db.insert("tasks", ghost)


def _extra_link(db: Db) -> tuple[str, Callable[[], None]]:
    lk = _link(db, 'l."Type" = 9')
    return lk["RunUUID"], db.insert("artifact_tasks", {**lk, "UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, "ghost-link")),
                                                       "ArtifactKey": "ghost"})


def _delete_task(db: Db) -> tuple[str, Callable[[], None]]:
    t = _task(db, 't."Name" = \'preprocess\'')
    undo_links = [db.delete("artifact_tasks", "UUID", lk["UUID"]) for lk in
                  db.sql('SELECT "UUID" FROM artifact_tasks WHERE "TaskID" = :t', t=t["UUID"])]
    undo = db.delete("tasks", "UUID", t["UUID"])
    return t["RunUUID"], lambda: (undo(), [u() for u in undo_links])


def _delete_link(where: str):
    def apply(db: Db) -> tuple[str, Callable[[], None]]:
        lk = _link(db, where)
        return lk["RunUUID"], db.delete("artifact_tasks", "UUID", lk["UUID"])
    return apply


def _delete_metric_row(db: Db) -> tuple[str, Callable[[], None]]:
    run, a = _artifact(db, 'a."Type" = 6 AND a."Name" = \'f1\'')
    undo_links = [db.delete("artifact_tasks", "UUID", lk["UUID"]) for lk in
                  db.sql('SELECT "UUID" FROM artifact_tasks WHERE "ArtifactID" = :a', a=a["UUID"])]
    undo = db.delete("artifacts", "UUID", a["UUID"])
    return run, lambda: (undo(), [u() for u in undo_links])


def _move_task(db: Db) -> tuple[str, Callable[[], None]]:
    t = _task(db, LEAF)
    other = db.one('SELECT "UUID" FROM tasks WHERE "RunUUID" = :r AND "Name" = \'preprocess\'', r=t["RunUUID"])
    return t["RunUUID"], db.set("tasks", "UUID", t["UUID"], "ParentTaskUUID", other["UUID"])


def _move_link(db: Db) -> tuple[str, Callable[[], None]]:
    lk = _link(db, 't."Name" = \'train\' AND l."Type" = 9')
    other = db.one('SELECT "UUID" FROM tasks WHERE "RunUUID" = :r AND "Name" = \'preprocess\'', r=lk["RunUUID"])
    return lk["RunUUID"], db.set("artifact_tasks", "UUID", lk["UUID"], "TaskID", other["UUID"])


def _without_iteration(db: Db) -> tuple[str, Callable[[], None]]:
    """(v3) a propagated link of a loop as version 2 wrote it above the first level: no iteration."""
    lk = _link(db, 't."Type" = 5 AND l."Type" = 8 AND l."Iteration" >= 0')
    undo_producer = db.set("artifact_tasks", "UUID", lk["UUID"], "Producer",
                           json.dumps({"taskName": _js(lk["Producer"])["taskName"]}))
    undo_iteration = db.set("artifact_tasks", "UUID", lk["UUID"], "Iteration", -1)
    return lk["RunUUID"], lambda: (undo_iteration(), undo_producer())


def _nested_loop_as_v2(db: Db) -> tuple[str, Callable[[], None]]:
    """(v3) a nested loop as version 2 typed it: LOOP, labelled `Loop`."""
    t = _task(db, 't."Type" = 8 AND t."TypeAttrs" LIKE \'%iterationCount%\'')
    undo_type = db.set("tasks", "UUID", t["UUID"], "Type", 5)
    undo_label = db.set("tasks", "UUID", t["UUID"], "DisplayName", "Loop")
    return t["RunUUID"], lambda: (undo_label(), undo_type())


def _drop_propagated_param(t: dict[str, Any]) -> str:
    entries = _js(t["OutputParameters"])
    return json.dumps(entries[1:] or None)


DAMAGES = [
    # tasks, one or more per column
    Damage("task Namespace", task_col(LEAF, "Namespace", lambda t: "team-z"), "lineage", "Namespace"),
    Damage("task pods", task_col(RUNTIME_OK, "pods", lambda t: "[]"), "lineage", "pods"),
    Damage("task CreatedAtInSec", task_col(LEAF, "CreatedAtInSec", lambda t: int(t["CreatedAtInSec"]) - 5),
           "lineage", "CreatedAtInSec"),
    Damage("task StartedInSec", task_col(LEAF, "StartedInSec", lambda t: 7), "lineage", "StartedInSec"),
    Damage("task FinishedInSec", task_col(LEAF, "FinishedInSec", lambda t: int(t["FinishedInSec"]) + 1),
           "lineage", "FinishedInSec"),
    Damage("task Fingerprint", task_col(LEAF, "Fingerprint", lambda t: "deadbeef"), "lineage", "Fingerprint"),
    Damage("task Name", task_col(LEAF, "Name", lambda t: "trainer"), "lineage", "Name"),
    Damage("task DisplayName", task_col(LEAF, "DisplayName", lambda t: "Train!"), "lineage", "DisplayName"),
    Damage("task moved to another parent", _move_task, "lineage", "ParentTaskUUID"),
    Damage("container State", task_col(LEAF, "State", lambda t: 4), "lineage", "State"),
    Damage("DAG State", task_col('t."Type" = 8 AND t."State" = 2', "State", lambda t: 4), "lineage", "State"),
    Damage("ROOT State", task_col('t."Type" = 1 AND t."State" = 2', "State", lambda t: 5), "lineage", "State"),
    Damage("task StatusMetadata", task_col(LEAF, "StatusMetadata", lambda t: '{"message":"x"}'),
           "lineage", "StatusMetadata"),
    Damage("task StateHistory", task_col(LEAF, "StateHistory", lambda t: '[{"state":"SUCCEEDED","updateTime":'
                                                                         '"2026-01-01T00:00:00Z"}]'),
           "lineage", "StateHistory"),
    Damage("input parameter IO type", task_col(
        't."Type" = 2 AND t."InputParameters" LIKE \'%COMPONENT_INPUT%\'', "InputParameters",
        _edit_params("InputParameters", lambda e: _first(e, type="RUNTIME_VALUE_INPUT"))),
        "lineage", "InputParameters"),
    Damage("input parameter value", task_col(
        't."Type" = 2 AND t."InputParameters" <> \'null\'', "InputParameters",
        _edit_params("InputParameters", lambda e: _first(e, value="changed"))), "lineage", "InputParameters"),
    Damage("input parameter producer", task_col(
        't."Type" = 2 AND t."InputParameters" <> \'null\'', "InputParameters",
        _edit_params("InputParameters", lambda e: _first(e, producer={"taskName": "nobody"}))),
        "lineage", "InputParameters"),
    Damage("input parameter iteration", task_col(
        't."Type" = 2 AND t."InputParameters" LIKE \'%iteration%\'', "InputParameters",
        _edit_params("InputParameters", lambda e: [{**x, "producer": {**x["producer"], "iteration": "9"}} for x in e])),
        "lineage", "InputParameters"),
    Damage("own output parameter value", task_col(
        't."Type" = 2 AND t."OutputParameters" <> \'null\'', "OutputParameters",
        _edit_params("OutputParameters", lambda e: _first(e, value=12345))), "lineage", "OutputParameters"),
    Damage("propagated output parameter removed", task_col(
        't."Type" IN (1, 3, 5, 8) AND t."OutputParameters" <> \'null\'', "OutputParameters", _drop_propagated_param),
        "lineage", "OutputParameters"),
    Damage("task Type", task_col(LEAF, "Type", lambda t: 7), "lineage", "Type"),
    Damage("iteration index", task_col('t."TypeAttrs" LIKE \'%iterationIndex%\' AND t."Type" = 2', "TypeAttrs",
                                       lambda t: json.dumps({**_js(t["TypeAttrs"]), "iterationIndex": "7"})),
           "lineage", "TypeAttrs"),
    Damage("loop iterationCount", task_col('t."Type" = 5', "TypeAttrs",
                                           lambda t: json.dumps({**_js(t["TypeAttrs"]), "iterationCount": "99"})),
           "lineage", "TypeAttrs"),
    Damage("task ScopePath", task_col(LEAF, "ScopePath", lambda t: "root.elsewhere"), "lineage", "ScopePath"),
    Damage("task LogicalKey", task_col(LEAF, "LogicalKey", lambda t: "0" * 64), "lineage", "LogicalKey"),
    # artifacts
    Damage("artifact Name", artifact_col('a."Type" = 2', "Name", lambda a: "renamed"), "lineage", "Name"),
    Damage("artifact URI", artifact_col('a."Type" = 2', "URI", lambda a: "s3://elsewhere/model"), "lineage", "URI"),
    Damage("artifact URIHash", artifact_col('a."Type" = 3', "URIHash", lambda a: "0" * 64), "lineage", "URIHash"),
    Damage("artifact Metadata", artifact_col('a."Type" = 2 AND a."Metadata" IS NOT NULL', "Metadata",
                                             lambda a: '{"framework":"other"}'), "lineage", "Metadata"),
    Damage("metric value", artifact_col('a."Type" = 6', "NumberValue", lambda a: 0.123), "lineage", "NumberValue"),
    Damage("artifact Type", artifact_col('a."Type" = 3', "Type", lambda a: 1), "lineage", "Type"),
    Damage("artifact created time", artifact_col('a."Type" = 3', "CreatedAtInSec", lambda a: 5), "lineage",
           "CreatedAtInSec"),
    Damage("artifact update time", artifact_col('a."Type" = 3', "LastUpdateInSec", lambda a: 5), "lineage",
           "LastUpdateInSec"),
    Damage("artifact Description", artifact_col('a."Type" = 3', "Description", lambda a: "notes"), "lineage",
           "Description"),
    Damage("artifact IdentityKey", artifact_col('a."Type" = 3', "IdentityKey", lambda a: "k1"), "lineage",
           "IdentityKey"),
    Damage("artifact Namespace", artifact_col('a."Type" = 2', "Namespace", lambda a: "team-z"), "lineage",
           "Namespace"),
    Damage("split metric row deleted", _delete_metric_row, "coverage", "artifact row"),
    # artifact_tasks
    Damage("input link Producer", link_col('l."Type" IN (2, 3, 5)', "Producer", lambda lk: '{"taskName":"nobody"}'),
           "lineage", "Producer"),
    Damage("link IO type", link_col('l."Type" = 9', "Type", lambda lk: 2), "lineage", "Type"),
    Damage("link Iteration", link_col('l."Iteration" >= 0', "Iteration", lambda lk: int(lk["Iteration"]) + 5),
           "lineage", "Iteration"),
    Damage("link ArtifactKey", link_col('l."Type" = 9', "ArtifactKey", lambda lk: "renamed"), "lineage",
           "ArtifactKey"),
    Damage("link moved to another task", _move_link, "lineage", "TaskID"),
    # mapping version 3, one per changed rule
    Damage("(v3) loop-body output typed OUTPUT", link_col(
        't."Type" = 2 AND t."TypeAttrs" LIKE \'%iterationIndex%\' AND l."Type" = 8', "Type", lambda lk: 9),
        "lineage", "Type"),
    Damage("(v3) propagated loop link without its iteration", _without_iteration, "lineage", "Iteration"),
    Damage("(v3) nested loop typed LOOP", _nested_loop_as_v2, "lineage", "Type"),
    Damage("(v3) a sibling's output in the same iteration read as TASK_OUTPUT_INPUT", link_col(
        't."TypeAttrs" LIKE \'%iterationIndex%\' AND l."Type" = 5', "Type", lambda lk: 2), "lineage", "Type"),
    Damage("(v3) a sibling's parameter in the same iteration not collected into a list", task_col(
        't."TypeAttrs" LIKE \'%iterationIndex%\' AND t."InputParameters" LIKE \'%COLLECTED_INPUTS%\'',
        "InputParameters", _edit_params("InputParameters", lambda e: _first(e, value=json.loads(e[0]["value"])[0]))),
        "lineage", "InputParameters"),
    Damage("(v3) a DAG in a loop body with plugin properties of its own", task_col(
        't."Type" = 8 AND t."TypeAttrs" LIKE \'%iterationCount%\' AND t."StatusMetadata" LIKE \'%mlflow%\'',
        "StatusMetadata", lambda t: '{"customProperties":{"plugins.mlflow.run_id":"0123456789abcdef0123456789abcdef"}}'),
        "lineage", "StatusMetadata"),
    Damage("(v3) in-flight parent of a FAILED child left RUNNING", task_col(
        't."Type" = 1 AND t."State" = 4 AND t."RunUUID" IN (SELECT r."UUID" FROM run_details r '
        'WHERE r."State" = \'RUNNING\')', "State", lambda t: 1), "lineage", "State"),
    Damage("propagated link removed", _delete_link('t."Type" IN (1, 3, 5, 8) AND l."Type" IN (8, 9, 10)'),
           "coverage", "link row"),
    Damage("event link removed", _delete_link('t."Type" = 2 AND l."Type" = 9'), "coverage", "link row"),
    Damage("task deleted", _delete_task, "coverage", "task row"),
    Damage("extra task with a tool-looking id", _extra_task, "coverage", "extra row"),
    Damage("extra link with a tool-looking id", _extra_link, "coverage", "extra row"),
    # the ledger is checked, not trusted
    Damage("run ledger row deleted", _ledger_delete("flattened-iteration", False), "coverage", "ledger"),
    Damage("ledger reason changed", _ledger_reason, "coverage", "ledger"),
    Damage("ledger row for a migrated execution", _ledger_extra, "coverage", "ledger"),
    Damage("run-less orphan-artifact row deleted", _ledger_delete("orphan-artifact", True), "coverage", "ledger"),
    Damage("run-less unsupported-v1 row deleted", _ledger_delete("unsupported-v1", True), "coverage", "ledger"),
]


def test_the_damage_suite_has_at_least_40_kinds_and_covers_every_column():
    from mlmd2kfp.verify.expect import ARTIFACT_COLUMNS, LINK_COLUMNS, TASK_COLUMNS

    assert len(DAMAGES) >= 40
    named = {d.field for d in DAMAGES}
    assert set(TASK_COLUMNS) - {"RunUUID"} <= named, set(TASK_COLUMNS) - named
    assert set(ARTIFACT_COLUMNS) <= named, set(ARTIFACT_COLUMNS) - named
    assert set(LINK_COLUMNS) - {"ArtifactID", "RunUUID"} <= named, set(LINK_COLUMNS) - named


def test_every_damage_fails_verify_naming_run_row_and_column(migrated):
    _every_damage_is_caught(*migrated, "full")


def test_every_damage_fails_an_incremental_verify_too(pre_verified):
    """Issue #30: after a clean verify of the staged rows recorded what it proved, and the cutover, each
    damage is made; the next verify is incremental and finds it."""
    _every_damage_is_caught(*pre_verified, "incremental")


def _every_damage_is_caught(m: str, k: str, kind: str) -> None:
    clean = run_verify(m, k, VerifyOptions(record=False))
    assert (clean.passed, clean.kind) == (True, kind)
    if kind == "incremental":  # nothing changed since the records: no run is re-derived
        assert clean.runs_checked == 0
    db = Db(k)
    missed = []
    for damage in DAMAGES:
        run, undo = damage.apply(db)
        try:
            report = run_verify(m, k, VerifyOptions(record=False))
            findings = [f for c in report.checks.values() for f in c.failures]
            hit = [f for f in report.checks[damage.check].failures if f.field == damage.field and f.row
                   and (f.run == run or (not run and not f.run))]
            if report.exit_code != 1 or not hit or report.kind != kind:
                missed.append((damage.name, report.kind, [f.line()[:160] for f in findings[:3]]))
        finally:
            undo()
    db.engine.dispose()
    assert not missed, missed
    assert run_verify(m, k, VerifyOptions(record=False)).passed  # every damage was undone
