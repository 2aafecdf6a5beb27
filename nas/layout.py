"""The names of the files a compression writes into a member's folder (`<run>/checkpoints/<arch_id>`), in one place.

`compress.pipeline` writes them and `nas.report` reads them (a killed compression's leftovers, an IR gone from a
member's folder). compress builds on nas, and the report imports nothing of compress (nor torch: a run folder copied
to a laptop is enough to write it), so the names live here, imported by both, and the two cannot drift apart. Plain
constants, no imports: importing this module costs nothing.
"""

from __future__ import annotations

COMPRESSED_JSON = "compressed_metrics.json"
"""A compression's record (fp32 -> pruned -> int8: accuracies, latencies, the files it wrote), written last: the files
below without it are a compression that did not finish (killed, or still running)."""

PRUNED_FILES = ("model_pruned.pt", "model_pruned.onnx")
"""The pruned fp32 checkpoint and its ONNX export: written only where the compression pruned."""

INT8_ONNX = "model_int8.onnx"
"""The QDQ int8 ONNX (what vendor compilers take), which the OpenVINO IR is converted from."""

IR_FILES = ("model_int8.xml", "model_int8.bin")
"""The OpenVINO IR of a compression: a conversion of its model_int8.onnx, made again from it where only they are gone."""

COMPRESSION_MODEL_FILES = (*PRUNED_FILES, INT8_ONNX, *IR_FILES)
"""A compression's files but its compressed_metrics.json, in the order it writes them."""

COMPRESSED_FILES = (*COMPRESSION_MODEL_FILES, COMPRESSED_JSON)
"""Every file a compression may write into a member's folder (and removes there before compressing it again); the
search's model.onnx, which a compression reads (and exports where it is absent or unreadable), is not among them."""

RETIRED_FOLDER = "retired"
"""The run folder's folder (`<run>/retired/<arch_id>/`) into which a search moves a member's folder, whole and as it was,
where it would otherwise lose it: the member fell off the Pareto front, or its model.pt is replaced by other weights
(final-trained again with another recipe); its compressed files alone where they were made from other weights than its
model.pt holds. Nothing reads it back: the final-trained weights and int8 files a user may have shipped are kept, not
deleted (`nas.checkpoint.retire_folder`, `nas.checkpoint.retire_files`)."""
