"""Realistic MLMD + pre-upgrade KFP databases, written the way KFP writes them.

`write_sample` replays runs of real compiled pipelines (`pipelines/*.yaml`) through the
`ml-metadata` library with the same calls KFP's Go metadata client makes
(mlmd-source-model.md §2, §4), and writes the matching KFP API-server rows.
"""

from __future__ import annotations

from .api import SampleReport, write_sample

__all__ = ["SampleReport", "write_sample"]
