"""The naive peer: a straightforward port of the upstream migration design, measured for comparison.

It reads MLMD through the `ml-metadata` API over the whole store (`get_executions`, `get_artifacts`,
`get_events_by_execution_ids`, contexts), holds it all in memory, maps each run with the same mappers,
and writes one row per INSERT statement, committing per run. Target: a database prepared like the
floor's (run_details + the three tables).

    python benchmarks/naive_peer.py MLMD_URL KFP_URL TARGET_URL
"""

from __future__ import annotations

import sys
from collections import defaultdict

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mlmd2kfp.mappers import MapOptions, map_run
from mlmd2kfp.records import MlmdArtifact, MlmdEvent, MlmdExecution, RunBundle, RunRecord
from mlmd2kfp.source.reader import load_spec
from mlmd2kfp.verify.source import ApiSource, _api_value


def main(mlmd_url: str, kfp_url: str, target_url: str) -> None:
    store = ApiSource(make_url(mlmd_url)).store
    executions = store.get_executions()
    artifacts = {a.id: a for a in store.get_artifacts()}
    events = store.get_events_by_execution_ids([e.id for e in executions])
    runs = store.get_contexts_by_type("system.PipelineRun")
    by_exec = defaultdict(list)
    for ev in events:
        by_exec[ev.execution_id].append(ev)
    exec_by_id = {e.id: e for e in executions}
    first_output: dict[int, tuple[int, str, str]] = {}
    for ev in events:
        if ev.type == 4:
            key = ev.path.steps[0].key if ev.path.steps else None
            if ev.artifact_id not in first_output or ev.milliseconds_since_epoch < first_output[ev.artifact_id][0]:
                first_output[ev.artifact_id] = (ev.milliseconds_since_epoch, key, exec_by_id[ev.execution_id].type)
    kfp = create_engine(kfp_url)
    target = create_engine(target_url)
    q = (lambda n: f"`{n}`") if target.dialect.name == "mysql" else (lambda n: f'"{n}"')
    with kfp.connect() as kc:
        run_rows = {r["UUID"]: dict(r) for r in kc.execute(text(
            f"SELECT r.*, e.{q('Namespace')} AS ens FROM run_details r LEFT JOIN experiments e ON "
            f"e.{q('UUID')} = r.{q('ExperimentUUID')}")).mappings()}
        versions = {r[0]: r[1] for r in kc.execute(text(f"SELECT {q('UUID')}, {q('PipelineSpec')} FROM pipeline_versions"))}
    for ctx in runs:
        ctx_execs = store.get_executions_by_context(ctx.id)
        run = run_rows.get(ctx.name)
        record = None if run is None else RunRecord(
            run["UUID"], run["DisplayName"], run["Name"], run["Namespace"], run["ExperimentUUID"], run["ens"],
            run["State"], run["Conditions"], int(run["CreatedAtInSec"]), int(run["FinishedAtInSec"] or 0),
            run["PipelineVersionId"])
        manifest = (run or {}).get("PipelineSpecManifest") or versions.get((run or {}).get("PipelineVersionId"))
        spec, platform, _ = load_spec(manifest)
        mexecs = [MlmdExecution(e.id, e.type, e.last_known_state if e.HasField("last_known_state") else None,
                                e.name or None, e.create_time_since_epoch, e.last_update_time_since_epoch,
                                {k: _api_value(v) for k, v in e.custom_properties.items()}) for e in ctx_execs]
        mevents = [MlmdEvent(0, ev.artifact_id, ev.execution_id, ev.type,
                             ev.path.steps[0].key if ev.path.steps else None, ev.milliseconds_since_epoch)
                   for e in ctx_execs for ev in by_exec.get(e.id, [])]
        marts = {}
        for ev in mevents:
            a = artifacts[ev.artifact_id]
            fo = first_output.get(a.id)
            marts[a.id] = MlmdArtifact(a.id, a.type, a.uri, a.state, a.create_time_since_epoch,
                                       a.last_update_time_since_epoch,
                                       {k: _api_value(v) for k, v in a.custom_properties.items()},
                                       fo[1] if fo else None, fo[2] if fo else None)
        bundle = RunBundle(ctx.id, ctx.name, {}, None, mexecs, mevents, marts, record, spec,
                           "manifest" if spec else None, None, platform)
        rows = map_run(bundle, MapOptions(multi_user=True))
        with target.begin() as conn:  # one run per transaction, one row per statement
            for a in rows.artifacts:
                exists = conn.execute(text(f"SELECT 1 FROM artifacts WHERE {q('UUID')} = :u"), {"u": a.uuid}).first()
                if not exists:
                    conn.execute(text(f"INSERT INTO artifacts ({q('UUID')}, {q('Namespace')}, {q('Type')}, {q('URI')}, "
                                      f"{q('URIHash')}, {q('Name')}, {q('Description')}, {q('CreatedAtInSec')}, "
                                      f"{q('LastUpdateInSec')}, {q('Metadata')}, {q('NumberValue')}) VALUES (:a, :b, :c, "
                                      ":d, :e, :f, :g, :h, :i, :j, :k)"),
                                 {"a": a.uuid, "b": a.namespace, "c": a.type, "d": a.uri, "e": a.uri_hash, "f": a.name,
                                  "g": a.description, "h": a.created_at, "i": a.last_update, "j": a.metadata,
                                  "k": a.number_value})
            for t in rows.tasks:
                conn.execute(text(
                    f"INSERT INTO tasks ({q('UUID')}, {q('Namespace')}, {q('RunUUID')}, {q('pods')}, {q('CreatedAtInSec')}, "
                    f"{q('StartedInSec')}, {q('FinishedInSec')}, {q('Fingerprint')}, {q('Name')}, {q('DisplayName')}, "
                    f"{q('ParentTaskUUID')}, {q('State')}, {q('StatusMetadata')}, {q('StateHistory')}, "
                    f"{q('InputParameters')}, {q('OutputParameters')}, {q('Type')}, {q('TypeAttrs')}, {q('ScopePath')}, "
                    f"{q('LogicalKey')}) VALUES (:a,:b,:c,:d,:e,:f,:g,:h,:i,:j,:k,:l,:m,:n,:o,:p,:q,:r,:s,:t)"),
                    dict(zip("abcdefghijklmnopqrst", (
                        t.uuid, t.namespace, t.run_uuid, t.pods, t.created_at, t.started_at, t.finished_at,
                        t.fingerprint, t.name, t.display_name, t.parent_task_uuid, t.state, t.status_metadata,
                        t.state_history, t.input_parameters, t.output_parameters, t.type, t.type_attrs, t.scope_path,
                        t.logical_key), strict=True)))
            for lk in rows.links:
                conn.execute(text(f"INSERT INTO artifact_tasks ({q('UUID')}, {q('ArtifactID')}, {q('TaskID')}, "
                                  f"{q('Type')}, {q('Iteration')}, {q('RunUUID')}, {q('Producer')}, {q('ArtifactKey')}) "
                                  "VALUES (:a,:b,:c,:d,:e,:f,:g,:h)"),
                             {"a": lk.uuid, "b": lk.artifact_id, "c": lk.task_id, "d": lk.type, "e": lk.iteration,
                              "f": lk.run_uuid, "g": lk.producer, "h": lk.artifact_key})
    target.dispose()
    kfp.dispose()


if __name__ == "__main__":
    main(*sys.argv[1:4])
