"""training-pipeline: preprocess -> train, with Dataset/Model/Metrics artifacts."""
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

BASE_IMAGE = 'python:3.11'


@dsl.component(base_image=BASE_IMAGE)
def preprocess(message: str, rows: int, output_dataset: Output[Dataset]) -> str:
    """Writes `rows` CSV rows to the output dataset and returns a summary."""
    with open(output_dataset.path, 'w') as f:
        f.write('id,text\n')
        for i in range(rows):
            f.write(f'{i},{message}\n')
    output_dataset.metadata['rows'] = rows
    return f'wrote {rows} rows'


@dsl.component(base_image=BASE_IMAGE)
def train(
    dataset: Input[Dataset],
    epochs: int,
    model: Output[Model],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
) -> float:
    """Pretends to train a model; logs scalar and classification metrics."""
    with open(dataset.path) as f:
        n = max(sum(1 for _ in f) - 1, 0)
    accuracy = min(0.5 + 0.08 * epochs, 0.99)
    with open(model.path, 'w') as f:
        f.write(f'model trained on {n} rows for {epochs} epochs\n')
    model.metadata['framework'] = 'sklearn'
    model.metadata['epochs'] = epochs
    metrics.log_metric('accuracy', accuracy)
    metrics.log_metric('loss', 1.0 - accuracy)
    metrics.log_metric('epochs', epochs)
    metrics.log_metric('rows', n)
    classification_metrics.log_confusion_matrix(
        ['setosa', 'versicolor'], [[45, 5], [3, 47]])
    classification_metrics.log_roc_curve(
        fpr=[0.0, 0.1, 1.0], tpr=[0.0, 0.9, 1.0], threshold=[1.0, 0.5, 0.0])
    return accuracy


@dsl.pipeline(
    name='training-pipeline',
    description='Preprocess a dataset and train a model.')
def training_pipeline(message: str = 'hello', rows: int = 100, epochs: int = 5):
    preprocess_task = preprocess(message=message, rows=rows)
    train(dataset=preprocess_task.outputs['output_dataset'], epochs=epochs)


PIPELINE = training_pipeline
