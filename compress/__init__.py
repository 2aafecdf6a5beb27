"""Compression of searched winners: structured pruning (torch-pruning), distillation recovery,
int8 quantization (NNCF PTQ, QAT when needed), deployable export (QDQ ONNX + OpenVINO IR) verified
from the files.

Entry points: `compress_checkpoint(folder, hw=..., data=..., cfg=...)` (compress/pipeline.py), called
by the search for its Pareto members, and `python -m compress.run checkpoint=<folder> hw=<chip>`.
"""
