"""metaformer-nas: hardware-aware MetaFormer architecture search for edge chips.

Public API (imported lazily so `python -m nas.report` stays light):
`ArchConfig`, `StageConfig`, `build_model`, `load_checkpoint`, `load_hw_profile`, `predict_latency`,
`compose_search_config`, `run_search` (README.md, "From Python"). Beside them: `nas.latency.predict_latency_batch` for
many architectures, `nas.report.write_reports` for a run folder's report, `nas.data.load_search_data` for the data
split as a search splits it (its test split is the report's), and `compress.compose_compress_config` with
`compress.run_compress` to compress a member.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ArchConfig": "nas.arch",
    "StageConfig": "nas.arch",
    "build_model": "nas.model",
    "compose_search_config": "nas.config",
    "load_hw_profile": "nas.config",
    "load_checkpoint": "nas.checkpoint",
    "predict_latency": "nas.latency",
    "run_search": "nas.search",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'nas' has no attribute {name!r}")
