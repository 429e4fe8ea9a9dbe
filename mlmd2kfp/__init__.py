"""mlmd2kfp: move Kubeflow Pipelines runtime metadata out of ML Metadata.

The library is organised as `cli → migrate, verify → mappers, source, target, dialects,
db → errors, records` (see ARCHITECTURE.md).
"""

from __future__ import annotations

from .errors import ToolkitError

__version__ = "0.1.0"

__all__ = ["ToolkitError", "__version__"]
