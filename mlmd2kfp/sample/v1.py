"""A KFP v1 run as the v1 metadata-writer records it (mlmd-source-model.md §2.7): legacy noise."""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from ..source.mlmd_api import mlmd_pb
from .mlmd_client import INPUT, OUTPUT, KfpMetadataClient

STRING = 3  # PropertyType.STRING


def write_v1_run(client: KfpMetadataClient, rng: random.Random, workflow_name: str) -> list[int]:
    """Write one two-step v1 run; returns its execution ids."""
    store = client.store
    ctx_type = client.type_id("context", "KfpRun", {"pipeline_name": STRING, "run_id": STRING})
    ctx = mlmd_pb.Context(type_id=ctx_type, name=workflow_name)
    ctx.properties["pipeline_name"].string_value = workflow_name
    ctx.properties["run_id"].string_value = workflow_name
    [ctx_id] = store.put_contexts([ctx])
    client.clock.touch(client.clock.contexts, ctx_id)
    [run_ctx] = store.get_contexts_by_id([ctx_id])
    executions: list[int] = []
    previous: int | None = None
    for component, out_name, out_type in (("download", "data", "NoType"), ("train", "model", "Model")):
        client.clock.tick(rng.randint(5000, 20000))
        digest = hashlib.sha256(component.encode()).hexdigest()
        exec_type = client.type_id("execution", f"components.{component}@sha256={digest}",
                                   {"pipeline_name": STRING, "run_id": STRING, "component_id": STRING})
        execution = mlmd_pb.Execution(type_id=exec_type)
        for k in ("pipeline_name", "run_id"):
            execution.properties[k].string_value = workflow_name
        execution.properties["component_id"].string_value = f"{component}-{rng.randint(1000, 9999)}"
        execution.custom_properties["kfp_pod_name"].string_value = f"{workflow_name}-{rng.randint(10**9, 10**10 - 1)}"
        execution.custom_properties["input:epochs"].int_value = 3
        uri = f"minio://mlpipeline/artifacts/{workflow_name}/{component}/{out_name}.tgz"
        artifact = mlmd_pb.Artifact(type_id=client.type_id("artifact", out_type), uri=uri)
        argo: dict[str, Any] = {"name": f"{component}-{out_name}",
                                "s3": {"bucket": "mlpipeline", "key": f"artifacts/{workflow_name}/{component}/{out_name}.tgz"}}
        for k, v in (("name", out_name), ("pipeline_name", workflow_name), ("run_id", workflow_name),
                     ("argo_artifact", json.dumps(argo, sort_keys=True))):
            artifact.custom_properties[k].string_value = v
        event = mlmd_pb.Event(type=OUTPUT)
        event.path.steps.add().key = out_name
        exec_id, [artifact_id], _ = store.put_execution(execution, [(artifact, event)], [run_ctx],
                                                        reuse_context_if_already_exist=True)
        client.clock.touch(client.clock.executions, exec_id)
        client.clock.touch(client.clock.artifacts, artifact_id)
        client.clock.events.append((artifact_id, exec_id, OUTPUT, client.clock.now_ms))
        if previous is not None:  # inputs: an INPUT event only, no attribution (metadata_helpers.py)
            inp = mlmd_pb.Event(type=INPUT, artifact_id=previous, execution_id=exec_id)
            inp.path.steps.add().key = "data"
            store.put_events([inp])
            client.clock.events.append((previous, exec_id, INPUT, client.clock.now_ms))
        previous = artifact_id
        executions.append(int(exec_id))
    return executions
