"""importer-pipeline: importers (reimport False/True) and a workspace importer.

The URIs take the shapes the runtime's `inferArtifactName` treats apart: a directory with a trailing
slash (name `iris`), a bucket with no path (name `.`), and (from the run's parameter) percent-escapes."""
from kfp import dsl
from kfp.dsl import Dataset, Input, Model

BASE_IMAGE = 'python:3.11'


@dsl.component(base_image=BASE_IMAGE)
def evaluate(dataset: Input[Dataset], model: Input[Model]) -> float:
    """Consumes one artifact from each importer."""
    print(dataset.uri, dataset.metadata)
    print(model.uri, model.metadata)
    return 0.97


@dsl.component(base_image=BASE_IMAGE)
def count_rows(dataset: Input[Dataset]) -> int:
    """Reads the dataset the workspace importer downloaded into the workspace."""
    with open(dataset.path) as f:
        return max(sum(1 for _ in f) - 1, 0)


@dsl.pipeline(
    name='importer-pipeline',
    description='Import existing artifacts by URI, including into a workspace.',
    pipeline_config=dsl.PipelineConfig(
        workspace=dsl.WorkspaceConfig(size='1Gi')),
)
def importer_pipeline(
        model_uri: str = 'gs://ml-models/iris/v1/model.joblib'):
    dataset_importer = dsl.importer(
        artifact_uri='gs://ml-data/shared/iris/',
        artifact_class=dsl.Dataset,
        reimport=False,
        metadata={'source': 'gcs', 'rows': 150},
    )
    model_importer = dsl.importer(
        artifact_uri=model_uri,
        artifact_class=dsl.Model,
        reimport=True,
        metadata={'framework': 'sklearn'},
    )
    evaluate(
        dataset=dataset_importer.output,
        model=model_importer.output,
    )
    workspace_importer = dsl.importer(
        artifact_uri='s3://ml-data-wine',
        artifact_class=dsl.Dataset,
        reimport=False,
        download_to_workspace=True,
    )
    count_rows(dataset=workspace_importer.output)


PIPELINE = importer_pipeline
