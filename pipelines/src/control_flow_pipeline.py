"""control-flow-pipeline: ParallelFor (nested, empty, collected), If/Elif/Else,
and a nested pipeline with DAG outputs."""
from typing import List, NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

BASE_IMAGE = 'python:3.11'


@dsl.component(base_image=BASE_IMAGE)
def process_item(item: int, processed: Output[Dataset]) -> str:
    """Loop body task: writes one artifact per item and returns a label."""
    with open(processed.path, 'w') as f:
        f.write(f'item={item}\n')
    processed.metadata['item'] = item
    return f'item-{item}'


@dsl.component(base_image=BASE_IMAGE)
def handle_large_item(item: int) -> str:
    """Runs inside the loop only when the item passes the condition."""
    return f'large item {item}'


@dsl.component(base_image=BASE_IMAGE)
def combine(item: int, suffix: str) -> str:
    """Body of the inner (nested) loop."""
    return f'{item}-{suffix}'


@dsl.component(base_image=BASE_IMAGE)
def handle_empty_item(item: int) -> str:
    """Body of the loop over a list that is empty at run time."""
    return f'never {item}'


@dsl.component(base_image=BASE_IMAGE)
def aggregate(labels: List[str], datasets: Input[List[Dataset]]) -> int:
    """Fan-in after the first loop: collected parameters and artifacts."""
    print(labels)
    for d in datasets:
        print(d.uri)
    return len(labels)


@dsl.component(base_image=BASE_IMAGE)
def flip_coin() -> str:
    """Returns heads, tails or edge."""
    import random
    return random.choice(['heads', 'tails', 'edge'])


@dsl.component(base_image=BASE_IMAGE)
def print_heads(face: str):
    print('heads branch', face)


@dsl.component(base_image=BASE_IMAGE)
def print_tails(face: str):
    print('tails branch', face)


@dsl.component(base_image=BASE_IMAGE)
def print_edge(face: str):
    print('else branch', face)


@dsl.component(base_image=BASE_IMAGE)
def make_report(message: str, title: str, report: Output[Dataset]) -> str:
    """Inner task of the nested pipeline."""
    with open(report.path, 'w') as f:
        f.write(f'{title}: {message}')
    return f'{title} for {message}'


@dsl.component(base_image=BASE_IMAGE)
def consume_report(summary: str, report: Input[Dataset]):
    """Root-level consumer of the nested pipeline's DAG outputs."""
    print(summary, report.uri)


@dsl.pipeline(name='report-pipeline')
def report_pipeline(
    message: str,
    title: str = 'weekly report',
) -> NamedTuple('Outputs', [('summary', str), ('report', Dataset)]):
    """Nested pipeline used as a component; returns a parameter and an artifact. The parent does
    not wire `title`: the DAG driver records its default in the DAG execution's inputs."""
    report_task = make_report(message=message, title=title)
    Outputs = NamedTuple('Outputs', [('summary', str), ('report', Dataset)])
    return Outputs(
        summary=report_task.outputs['Output'],
        report=report_task.outputs['report'],
    )


@dsl.pipeline(
    name='control-flow-pipeline',
    description='Loops, nested loops, empty loops, fan-in, conditions, '
    'and a nested pipeline.')
def control_flow_pipeline(
    # List[int] (still a LIST pipeline parameter) types the loop item as
    # NUMBER_INTEGER so the nested If compiles to an int() CEL comparison.
    # empty_items stays a bare `list`, whose loop item is typed STRING.
    items: List[int] = [1, 2, 3],
    empty_items: list = [],
    message: str = 'nested',
):
    # First loop: pipeline list parameter, body task, nested If and nested loop.
    with dsl.ParallelFor(items, parallelism=2) as item:
        process_task = process_item(item=item)
        with dsl.If(item >= 2, name='large-item'):
            handle_large_item(item=item)
        with dsl.ParallelFor(['a', 'b']) as suffix:
            combine(item=item, suffix=suffix)

    # Fan-in over the first loop (parameter and artifact outputs).
    aggregate(
        labels=dsl.Collected(process_task.outputs['Output']),
        datasets=dsl.Collected(process_task.outputs['processed']),
    )

    # Second loop: pipeline list parameter that is empty at run time.
    with dsl.ParallelFor(empty_items) as empty_item:
        handle_empty_item(item=empty_item)

    # If / Elif / Else on a task output.
    flip_task = flip_coin()
    with dsl.If(flip_task.output == 'heads'):
        print_heads(face=flip_task.output)
    with dsl.Elif(flip_task.output == 'tails'):
        print_tails(face=flip_task.output)
    with dsl.Else():
        print_edge(face=flip_task.output)

    # Nested pipeline with DAG outputs consumed at the root.
    nested_task = report_pipeline(message=message)
    consume_report(
        summary=nested_task.outputs['summary'],
        report=nested_task.outputs['report'],
    )


PIPELINE = control_flow_pipeline
