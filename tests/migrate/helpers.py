"""Shared checks for migrate tests: digests, invariants, sample set-up."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import create_engine, inspect, text

from mlmd2kfp.mappers.keys import logical_key
from tests.helpers import quote, sql_rows

TARGET = ("tasks", "artifacts", "artifact_tasks")


q = quote  # an identifier quoted for an engine or URL (tests.helpers.quote)
rows = sql_rows  # ANSI-quoted SQL read as dicts (tests.helpers.sql_rows)


def _canon(v):
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, str) and v[:1] in "[{" and v != "":
        try:
            return json.dumps(json.loads(v), sort_keys=True)
        except ValueError:
            return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def digest(url: str, tables=TARGET, exclude_prefix: str | None = None) -> dict[str, str]:
    """Per table, a digest of its rows (JSON normalised: PostgreSQL returns json columns parsed)."""
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        names = inspect(conn).get_table_names()
        wanted = [n for n in names if (tables is None or n in tables)
                  and not (exclude_prefix and n.startswith(exclude_prefix))]
        for name in sorted(wanted):
            result = conn.execute(text(f"SELECT * FROM {q(engine, name)}"))
            cols = list(result.keys())
            body = sorted(repr(sorted(zip(cols, map(_canon, r), strict=True))) for r in result)
            out[name] = hashlib.sha256(repr(body).encode()).hexdigest()
    engine.dispose()
    return out


def check_invariants(url: str) -> dict[str, int]:
    """kfp-native-schema.md §4 on a migrated database; returns row counts."""
    bad = {
        "link→task": 'SELECT COUNT(*) AS n FROM artifact_tasks l WHERE NOT EXISTS (SELECT 1 FROM tasks t '
                     'WHERE t."UUID" = l."TaskID" AND t."RunUUID" = l."RunUUID")',
        "link→artifact": 'SELECT COUNT(*) AS n FROM artifact_tasks l WHERE NOT EXISTS '
                         '(SELECT 1 FROM artifacts a WHERE a."UUID" = l."ArtifactID")',
        "task→run": 'SELECT COUNT(*) AS n FROM tasks t WHERE NOT EXISTS '
                    '(SELECT 1 FROM run_details r WHERE r."UUID" = t."RunUUID")',
        "parent in run": 'SELECT COUNT(*) AS n FROM tasks t WHERE t."ParentTaskUUID" IS NOT NULL AND NOT EXISTS '
                         '(SELECT 1 FROM tasks p WHERE p."UUID" = t."ParentTaskUUID" AND p."RunUUID" = t."RunUUID")',
    }
    for what, sql in bad.items():
        assert rows(url, sql)[0]["n"] == 0, what
    tasks = rows(url, 'SELECT * FROM tasks')
    by_id = {t["UUID"]: t for t in tasks}
    roots: dict[str, list] = {}
    for t in tasks:
        if t["ParentTaskUUID"] is None:
            roots.setdefault(t["RunUUID"], []).append(t)
    assert all(len(r) == 1 and r[0]["Type"] == 1 and r[0]["Name"] == "ROOT" and r[0]["ScopePath"] == "root"
               for r in roots.values())
    assert set(roots) == {t["RunUUID"] for t in tasks}
    assert len({t["LogicalKey"] for t in tasks}) == len(tasks)

    def js(v):
        return v if not isinstance(v, str) else json.loads(v)

    for t in tasks:
        attrs = js(t["TypeAttrs"])
        it = None if not attrs or "iterationIndex" not in attrs else int(attrs["iterationIndex"])
        assert t["LogicalKey"] == logical_key(t["RunUUID"], t["ParentTaskUUID"], t["ScopePath"], t["Name"],
                                              t["Type"], it)
        for col in ("pods", "StateHistory", "InputParameters", "OutputParameters"):
            assert js(t[col]) is None or isinstance(js(t[col]), list), col
        for col in ("StatusMetadata", "TypeAttrs"):
            assert js(t[col]) is None or isinstance(js(t[col]), dict), col
        if t["ParentTaskUUID"]:
            assert by_id[t["ParentTaskUUID"]]["ScopePath"] + "." + t["Name"] == t["ScopePath"]
    links = rows(url, "SELECT * FROM artifact_tasks")
    assert all(1 <= lk["Type"] <= 11 and "taskName" in js(lk["Producer"]) for lk in links)
    arts = rows(url, "SELECT * FROM artifacts")
    assert all(js(a["Metadata"]) is None or isinstance(js(a["Metadata"]), dict) for a in arts)
    return {"tasks": len(tasks), "artifacts": len(arts), "artifact_tasks": len(links)}


def add_second_source(databases, kfp_url: str, seed: int = 9) -> tuple[str, list[str]]:
    """A second MLMD database whose runs are in `kfp_url` too, as after two KFP installations' API databases
    were merged into one: its sample is written into a KFP database of its own, whose runs (and their old
    cache rows) are then copied into `kfp_url`, pointed at the experiments, pipelines and versions of the
    same names there (new ones copied). Returns its URL and run ids."""
    from tests.samples import write_sample
    from tests.helpers import Db

    m2, k2 = databases.new("m2"), databases.new("k2")
    write_sample(m2, k2, seed=seed)
    source, target = Db(k2), Db(kfp_url)
    same: dict[str, str] = {}  # the second database's UUID → the one of the same name in `kfp_url`
    for table, key in (("experiments", ("Name", "Namespace")), ("pipelines", ("Name", "Namespace")),
                       ("pipeline_versions", ("Name", "PipelineId"))):
        present = {tuple(r[c] for c in key): r["UUID"] for r in target.sql(f"SELECT * FROM {table}")}
        for row in source.sql(f"SELECT * FROM {table}"):
            row = {c: same.get(v, v) if c == "PipelineId" else v for c, v in row.items()}
            name = tuple(row[c] for c in key)
            if name in present:
                same[row["UUID"]] = present[name]
            else:
                target.insert(table, row)
    for table in ("run_details", "tasks"):
        for row in source.sql(f"SELECT * FROM {table}"):
            target.insert(table, {c: same.get(v, v) if c in ("ExperimentUUID", "PipelineId", "PipelineVersionId")
                                  else v for c, v in row.items()})
    runs = sorted(r["UUID"] for r in source.sql('SELECT "UUID" FROM run_details'))
    source.engine.dispose()
    target.engine.dispose()
    return m2, runs


def kfp_retry(url: str, run_id: str, now: int = 1_900_000_000, new_driver: bool = True) -> list[str]:
    """What the new KFP's "Retry run" does to a migrated run, written out from its code (issue #27 item 2:
    `ResourceManager.resetRetriedTaskState`, `TaskStore.ResetTasksForRetry`, `RetryRun`): every task not
    SUCCEEDED (2), SKIPPED (3) or CACHED (5) loses its input and output links and becomes RUNNING with the retry
    time as its start, no pods, empty outputs, no status metadata and RUNNING appended to its history; the run
    is running again; with `new_driver`, the retried driver of the first reset task writes a task of its own
    (a version-4 id). Returns the ids of the reset tasks."""
    import uuid

    engine = create_engine(url)
    stamp = "2030-03-17T17:46:40Z"
    with engine.begin() as conn:
        Q = (lambda n: f"`{n}`") if engine.dialect.name == "mysql" else (lambda n: f'"{n}"')
        tasks = [dict(r) for r in conn.execute(text(
            f"SELECT * FROM tasks WHERE {Q('RunUUID')} = :r ORDER BY {Q('UUID')}"), {"r": run_id}).mappings()]
        reset = [t for t in tasks if int(t["State"]) not in (2, 3, 5)]
        for t in reset:
            conn.execute(text(f"DELETE FROM artifact_tasks WHERE {Q('TaskID')} = :t"), {"t": t["UUID"]})
            history = t["StateHistory"]
            history = (json.loads(history) if isinstance(history, str) else history) or []
            history.append({"state": "RUNNING", "updateTime": stamp})
            conn.execute(text(
                f"UPDATE tasks SET {Q('State')} = 1, {Q('StartedInSec')} = :now, {Q('pods')} = '[]', "
                f"{Q('OutputParameters')} = '[]', {Q('StatusMetadata')} = NULL, {Q('StateHistory')} = :h "
                f"WHERE {Q('UUID')} = :t"), {"now": now, "h": json.dumps(history), "t": t["UUID"]})
        conn.execute(text(f"UPDATE run_details SET {Q('State')} = 'RUNNING', {Q('Conditions')} = 'Running', "
                          f"{Q('FinishedAtInSec')} = 0 WHERE {Q('UUID')} = :r"), {"r": run_id})
        if new_driver and reset:
            parent = reset[0]
            row = {**parent, "UUID": str(uuid.uuid4()), "ParentTaskUUID": parent["UUID"], "Name": "retried-driver",
                   "ScopePath": f"{parent['ScopePath']}.retried-driver", "Type": 2, "LogicalKey": None,
                   "CreatedAtInSec": now, "StartedInSec": now, "FinishedInSec": 0, "pods": "[]",
                   "StateHistory": json.dumps([{"state": "RUNNING", "updateTime": stamp}]), "State": 1,
                   "StatusMetadata": None, "InputParameters": None, "OutputParameters": None, "TypeAttrs": "{}"}
            row = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in row.items()}
            conn.execute(text(f"INSERT INTO tasks ({', '.join(Q(c) for c in row)}) VALUES "
                              f"({', '.join(':' + c for c in row)})"), row)
    engine.dispose()
    return [t["UUID"] for t in reset]


def run_rows(url: str, run_id: str) -> dict[str, list[dict]]:
    """A run's `tasks` and `artifact_tasks` rows exactly as stored (JSON text as the database returns it)."""
    return {table: sorted(rows(url, f'SELECT * FROM {table} WHERE "RunUUID" = :r', r=run_id),
                          key=lambda r: r["UUID"]) for table in ("tasks", "artifact_tasks")}
