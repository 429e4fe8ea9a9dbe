"""loop-io-pipeline: outputs inside ParallelFor bodies, the shapes mapping version 3 writes differently.

A container and an importer in one loop iteration feed a sibling in the same iteration; a `dsl.Collected`
consumer after the loop reads their outputs; nested loops with a `dsl.Collected` consumer after both; a task
with a custom cache key."""
from typing import List

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

BASE_IMAGE = 'python:3.11'


@dsl.component(base_image=BASE_IMAGE)
def make_shard(index: int, shard: Output[Dataset]) -> str:
    """Loop body: one shard per item, and its label."""
    with open(shard.path, 'w') as f:
        f.write(f'shard={index}\n')
    return f'shard-{index}'


@dsl.component(base_image=BASE_IMAGE)
def check_shard(label: str, shard: Input[Dataset], reference: Input[Model]) -> str:
    """Consumes the outputs of its siblings in the same iteration (a container's and an importer's)."""
    print(label, shard.uri, reference.uri)
    return f'{label} checked'


@dsl.component(base_image=BASE_IMAGE)
def aggregate_shards(labels: List[str], shards: Input[List[Dataset]], references: Input[List[Model]]) -> int:
    """Fan-in after the loop: a collected parameter and two collected artifact lists."""
    print(labels, [s.uri for s in shards], [r.uri for r in references])
    return len(shards)


@dsl.component(base_image=BASE_IMAGE)
def make_cell(row: int, col: str, cell: Output[Dataset]) -> str:
    """Body of the inner of two nested loops."""
    with open(cell.path, 'w') as f:
        f.write(f'{row}{col}\n')
    return f'{row}{col}'


@dsl.component(base_image=BASE_IMAGE)
def collect_cells(labels: List[str], cells: Input[List[Dataset]]) -> int:
    """Fan-in after both nested loops."""
    print(labels, [c.uri for c in cells])
    return len(cells)


@dsl.component(base_image=BASE_IMAGE)
def keyed_step(message: str) -> str:
    """Cached under a custom cache key: its fingerprint is sha256(component name, 0x00, key)."""
    return message.upper()


@dsl.pipeline(name='loop-io-pipeline', description='Outputs inside loop bodies, nested loops, a custom cache key.')
def loop_io_pipeline(
    shards: List[int] = [1, 2],
    rows: List[int] = [1, 2],
    reference_uri: str = 'gs://ml-models/reference/model.joblib',
    message: str = 'loop-io',
):
    with dsl.ParallelFor(shards) as shard:
        shard_task = make_shard(index=shard)
        reference = dsl.importer(artifact_uri=reference_uri, artifact_class=Model, reimport=True)
        check_shard(label=shard_task.outputs['Output'], shard=shard_task.outputs['shard'], reference=reference.output)
    aggregate_shards(
        labels=dsl.Collected(shard_task.outputs['Output']),
        shards=dsl.Collected(shard_task.outputs['shard']),
        references=dsl.Collected(reference.output),
    )

    with dsl.ParallelFor(rows) as row:
        with dsl.ParallelFor(['a', 'b']) as col:
            cell_task = make_cell(row=row, col=col)
    collect_cells(labels=dsl.Collected(cell_task.outputs['Output']), cells=dsl.Collected(cell_task.outputs['cell']))

    keyed_step(message=message).set_caching_options(True, cache_key='keyed-step-v1')


PIPELINE = loop_io_pipeline
