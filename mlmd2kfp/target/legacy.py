"""The pre-upgrade KFP tables the toolkit reads (and `sample` writes): kfp-native-schema.md §1.4, §5.1.

These are KFP master's tables as GORM creates them before MLMD removal. The toolkit never
changes their shape; `sample` creates them for fixtures and demos.
"""

from __future__ import annotations

from .schema import Column, ForeignKey, Index, Table

_C = "CASCADE"


def _cols(*spec: tuple[str, str, bool] | tuple[str, str, bool, str]) -> tuple[Column, ...]:
    return tuple(Column(s[0], s[1], s[2], s[3] if len(s) > 3 else None) for s in spec)  # type: ignore[misc]


EXPERIMENTS = Table(
    "experiments",
    _cols(
        ("UUID", "varchar(64)", False),
        ("Name", "varchar(128)", False),
        ("Description", "varchar(255)", False),
        ("CreatedAtInSec", "int64", False),
        ("LastRunCreatedAtInSec", "int64", False, "0"),
        ("Namespace", "varchar(63)", False),
        ("StorageState", "varchar(255)", False),
    ),
    ("UUID",),
    (Index("idx_name_namespace", (("Name", False), ("Namespace", False)), unique=True),),
    (),
)

PIPELINES = Table(
    "pipelines",
    _cols(
        ("UUID", "varchar(191)", False),
        ("CreatedAtInSec", "int64", False),
        ("Name", "varchar(128)", False),
        ("DisplayName", "varchar(128)", False),
        ("Description", "longtext", False),
        ("Parameters", "longtext", False),
        ("Status", "varchar(255)", False),
        ("DefaultVersionId", "varchar(255)", True),
        ("Namespace", "varchar(63)", True, "''"),
    ),
    ("UUID",),
    (Index("name_namespace_index", (("Name", False), ("Namespace", False)), unique=True),),
    (),
)

PIPELINE_VERSIONS = Table(
    "pipeline_versions",
    _cols(
        ("UUID", "varchar(191)", False),
        ("CreatedAtInSec", "int64", False),
        ("Name", "varchar(127)", False),
        ("DisplayName", "varchar(127)", False),
        ("Parameters", "longtext", False),
        ("PipelineId", "varchar(64)", False),
        ("Status", "varchar(255)", False),
        ("CodeSourceUrl", "varchar(255)", True),
        ("Description", "longtext", False),
        ("PipelineSpec", "longtext", False),
        ("PipelineSpecURI", "longtext", False),
    ),
    ("UUID",),
    (
        Index("idx_pipelineid_name", (("Name", False), ("PipelineId", False)), unique=True),
        Index("idx_pipeline_versions_CreatedAtInSec", (("CreatedAtInSec", False),)),
        Index("idx_pipeline_versions_PipelineId", (("PipelineId", False),)),
    ),
    (ForeignKey("fk_pipeline_versions_pipelines", ("PipelineId",), "pipelines", ("UUID",), _C, _C),),
)

RUN_DETAILS = Table(
    "run_details",
    _cols(
        ("UUID", "varchar(191)", False),
        ("DisplayName", "varchar(255)", False),
        ("Name", "varchar(255)", False),
        ("Description", "varchar(255)", False),
        ("Namespace", "varchar(63)", False),
        ("ExperimentUUID", "varchar(64)", False),
        ("JobUUID", "varchar(255)", True),
        ("StorageState", "varchar(255)", False),
        ("ServiceAccount", "varchar(255)", False),
        ("PipelineId", "varchar(255)", False),
        ("PipelineVersionId", "varchar(255)", True),
        ("PipelineName", "varchar(255)", False),
        ("PipelineSpecManifest", "longtext", True),
        ("WorkflowSpecManifest", "longtext", True),
        ("Parameters", "longtext", True),
        ("RuntimeParameters", "longtext", True),
        ("PipelineRoot", "longtext", True),
        ("CreatedAtInSec", "int64", False),
        ("ScheduledAtInSec", "int64", True, "0"),
        ("FinishedAtInSec", "int64", True, "0"),
        ("Conditions", "varchar(125)", False),
        ("State", "varchar(255)", True),
        ("StateHistory", "longtext", True),
        ("PipelineRuntimeManifest", "longtext", False),
        ("WorkflowRuntimeManifest", "longtext", False),
        ("PipelineContextId", "int64", True, "0"),
        ("PipelineRunContextId", "int64", True, "0"),
    ),
    ("UUID",),
    (
        Index("namespace_createatinsec", (("Namespace", False), ("CreatedAtInSec", False))),
        Index("namespace_conditions_finishedatinsec",
              (("Namespace", False), ("Conditions", False), ("FinishedAtInSec", False))),
        Index("experimentuuid_createatinsec", (("ExperimentUUID", False), ("CreatedAtInSec", False))),
        Index("experimentuuid_conditions_finishedatinsec",
              (("ExperimentUUID", False), ("Conditions", False), ("FinishedAtInSec", False))),
    ),
    (),
)

OLD_TASKS = Table(
    "tasks",
    _cols(
        ("UUID", "varchar(191)", False),
        ("Namespace", "varchar(255)", False),
        ("PipelineName", "varchar(255)", False),
        ("RunUUID", "varchar(191)", False),
        ("PodName", "varchar(255)", False),
        ("MLMDExecutionID", "varchar(255)", False),
        ("CreatedTimestamp", "int64", False),
        ("StartedTimestamp", "int64", True, "0"),
        ("FinishedTimestamp", "int64", True, "0"),
        ("Fingerprint", "varchar(255)", False),
        ("Name", "varchar(255)", True),
        ("ParentTaskUUID", "varchar(255)", True),
        ("State", "varchar(255)", True),
        ("StateHistory", "longtext", True),
        ("MLMDInputs", "longtext", True),
        ("MLMDOutputs", "longtext", True),
        ("ChildrenPods", "longtext", True),
        ("Payload", "longtext", True),
    ),
    ("UUID",),
    (Index("tasks_RunUUID_run_details_UUID_foreign", (("RunUUID", False),)),),
    (ForeignKey("tasks_RunUUID_run_details_UUID_foreign", ("RunUUID",), "run_details", ("UUID",), _C, _C),),
)

LEGACY_TABLES: tuple[Table, ...] = (EXPERIMENTS, PIPELINES, PIPELINE_VERSIONS, RUN_DETAILS, OLD_TASKS)
"""Creation order of the pre-upgrade KFP tables."""
