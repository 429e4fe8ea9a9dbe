"""mlmd2kfp: move Kubeflow Pipelines runtime metadata out of ML Metadata.

The library surface is `mlmd2kfp.api` (`plan`, `migrate`, `verify`, `status`, `rollback`, `cleanup`);
ARCHITECTURE.md describes the layers under it.
"""

from __future__ import annotations

from .errors import ToolkitError

__version__ = "0.1.0"

__all__ = ["ToolkitError", "__version__"]
