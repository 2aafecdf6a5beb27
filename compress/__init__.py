"""Compression of searched winners: structured pruning (torch-pruning), distillation recovery,
int8 quantization (NNCF PTQ, QAT when needed), deployable export (QDQ ONNX + OpenVINO IR) verified
from the files.

Public API (imported lazily, as `nas`'s): `compose_compress_config(overrides)` composes the config
`python -m compress.run <overrides>` runs with, and `run_compress(cfg)` compresses that checkpoint, writes its files and
compressed_metrics.json into its folder (and refreshes its run's report), and returns that JSON's content
(README.md, "From Python"). The search calls `compress_checkpoint(folder, hw=..., data=..., cfg=...)`
(compress/pipeline.py) for its Pareto members.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "compose_compress_config": "nas.config",
    "run_compress": "compress.run",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'compress' has no attribute {name!r}")
