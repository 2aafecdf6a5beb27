"""pareto.csv: a run folder's Pareto members flat, one row each, from pareto.json and the members' compressed files.

Kept apart from `nas.results` (torch, Optuna) so that `python -m nas.report <run folder>`, which reads the run's files
alone, writes it too: a folder compressed by a version before its int8 columns gets them from its own files. It imports
nothing but `nas.report`'s readers, so that the CSV's int8 columns and the report's compressed table read the same files
alike.
"""

from __future__ import annotations

import csv
import io
import pathlib
from typing import Any, Sequence

from nas.report import MISSING_FILE_MARK, PARETO_JSON, int8_test_acc_source, read_compressed, read_pareto_json
from nas.report.files import _file_size, _missing_files
from nas.report.write import _write_atomic

PARETO_CSV = "pareto.csv"
# pareto.json's members flat, one row each; an interval (`<name>_ci95`) is two columns, `_low` and `_high`. `hw` and
# `hw_precision` are pareto.json's own (the same in every row): the chip and number format `latency_ms` is predicted
# for, which the file named nowhere (on hw=cpu an fp32 time, on edge_npu the int8 model's).
PARETO_COLUMNS = ("number", "arch_id", "val_acc", "val_acc_ci95", "val_acc_final", "val_acc_final_ci95", "test_acc",
                  "test_acc_ci95", "test_acc_onnx", "latency_ms", "hw", "hw_precision", "measured_latency_ms", "params",
                  "macs", "summary", "checkpoint")
# ... then, for a compressed member, its int8 model (compress.pipeline), from its folder's compressed_metrics.json rather
# than pareto.json: compression runs after pareto.json is written (and compress.run of one member later still). Empty
# for a member not compressed; a failed compression fills int8_error alone.
# int8_hw_precision: the number format int8_latency_ms is predicted in, int8_hw's own (fp32 on hw=cpu: the int8 file's
# architecture at float speed, not an int8 time). int8_file ends in MISSING_FILE_MARK where the file is gone from the
# member's folder (deleted by hand), as the report's compressed table marks it: the CSV named a file that was not there.
# int8_size_bytes: that file's size. int8_test_images: how many test images int8_test_acc was scored on
# (compress.eval_images cuts them: test_acc is of them all, so subtracting the two mixed the loss with the subset's
# luck), and int8_fp32_test_acc / int8_pruned_test_acc: model.onnx's and model_pruned.onnx's on those same images, which
# the int8 accuracy compares with. Appended last, so that a column's place in older files' rows stays.
INT8_COLUMNS = ("int8_test_acc", "int8_test_acc_ci95", "int8_test_acc_source", "int8_latency_ms", "int8_hw",
                "int8_hw_precision", "int8_params", "int8_macs", "int8_file", "int8_error", "int8_size_bytes",
                "int8_test_images", "int8_fp32_test_acc", "int8_pruned_test_acc")
# ... and last, of every member: its model.onnx's size on disk in bytes, the float file to budget flash by (the report's
# front table gives it in KiB; no record holds it), empty where its folder has none. Appended last as the int8 ones were.
FILE_COLUMNS = ("onnx_size_bytes",)


def fmt(value: Any) -> str:
    """A value as the run folder's CSV files write it: '' for None, floats to 6 significant digits."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _interval_cells(value: Any) -> list[str]:
    """An interval's two cells: its low and high end, both empty where there is none (or, in a damaged pareto.json,
    no pair of numbers: the report shows none there either)."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        try:
            return [fmt(float(v)) for v in value]
        except (TypeError, ValueError):
            pass
    return ["", ""]


def _int8_fields(compressed: dict[str, Any] | None, *, checkpoint: str, missing: Sequence[str] = (),
                 file_size: int | None = None) -> dict[str, Any]:
    """pareto.csv's `INT8_COLUMNS` of one member from its compressed_metrics.json (`compressed`, as
    `nas.report.read_compressed` reads it; None: not compressed, and {} is returned), as the report's int8 row shows
    them: the headline test accuracy and its interval, the runtime it is from, the chip's predicted latency of the int8
    file's architecture (the pruned one when pruned), that chip (compress.run may name another than the run's) and the
    number format it predicts in (its hw.precision), the architecture's params and MACs, and the QDQ ONNX file relative
    to the run folder (`checkpoint`: the member's folder, as pareto.json names it; the OpenVINO IR lies beside it),
    marked `MISSING_FILE_MARK` (' (missing)') where its name is among `missing` (the files of its records its folder
    lacks); then that file's size in bytes (as recorded, else `file_size`: its size on disk), the number of test images
    its accuracy is of (`eval_images`) and the fp32 and pruned files' accuracies on those images (the pruned one's
    empty when not pruned)."""
    if not isinstance(compressed, dict):
        return {}
    if compressed.get("error"):
        return {"int8_error": compressed["error"]}
    int8 = compressed.get("int8")
    if not isinstance(int8, dict):
        return {}
    pruned = compressed.get("pruned") or {}
    # int8 records its architecture's params, not its MACs: those are the pruned row's, or the fp32 row's when not pruned
    arch = pruned if pruned.get("pruned") else compressed.get("fp32") or {}
    name = str(int8.get("file") or "model_int8.onnx")
    fp32 = compressed.get("fp32") or {}
    fp32_acc = fp32.get("test_acc", (compressed.get("summary") or {}).get("test_acc_fp32"))
    size = int8.get("size_bytes")
    return {"int8_test_acc": int8.get("test_acc"), "int8_test_acc_ci95": int8.get("test_acc_ci95"),
            # as the report names it ('openvino' for files from before the field)
            "int8_test_acc_source": int8_test_acc_source(int8), "int8_latency_ms": int8.get("latency_ms"),
            "int8_hw": compressed.get("hw"), "int8_hw_precision": compressed.get("hw_precision"), "int8_params": int8.get("params"), "int8_macs": arch.get("macs"),
            "int8_file": f"{checkpoint}/{name}{MISSING_FILE_MARK if name in missing else ''}",
            "int8_size_bytes": size if size is not None else file_size,
            "int8_test_images": scored.get("test") if isinstance(scored := compressed.get("eval_images"), dict) else None,
            "int8_fp32_test_acc": fp32_acc,
            "int8_pruned_test_acc": pruned.get("test_acc") if pruned.get("pruned") is True else None}


def pareto_csv(members: Sequence[dict[str, Any]], *, compressed: dict[str, dict[str, Any] | None] | None = None,
               header: dict[str, Any] | None = None, missing: dict[str, Sequence[str]] | None = None,
               sizes: dict[str, int | None] | None = None, onnx_sizes: dict[str, int | None] | None = None) -> str:
    """pareto.csv text of pareto.json's `members`: columns `PARETO_COLUMNS` (`hw` and `hw_precision` from `header`,
    pareto.json's own fields, empty where it has none), then `INT8_COLUMNS` filled from `compressed` ({arch_id: its
    compressed_metrics.json}; a member not in it was not compressed), each interval split into `<name>_low` and
    `<name>_high` (both empty where the member has none). `missing`: {arch_id: the files its compressed_metrics.json
    names that its folder lacks}; an int8 file among them is marked so in `int8_file`. `sizes`: {arch_id: its int8
    file's size on disk}, `int8_size_bytes` where compressed_metrics.json records none. Then `FILE_COLUMNS`: `onnx_sizes`
    is {arch_id: its model.onnx's size on disk} (`onnx_size_bytes`, empty for a member not in it or None)."""
    run = {key: (header or {}).get(key) for key in ("hw", "hw_precision")}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    columns = PARETO_COLUMNS + INT8_COLUMNS + FILE_COLUMNS
    w.writerow([h for c in columns for h in ((f"{c}_low", f"{c}_high") if c.endswith("_ci95") else (c,))])
    for m in members:
        arch_id = m.get("arch_id")
        values = {**run, **m, **_int8_fields((compressed or {}).get(arch_id), checkpoint=_checkpoint_of(m),
                                             missing=(missing or {}).get(arch_id, ()),
                                             file_size=(sizes or {}).get(arch_id)),
                  "onnx_size_bytes": (onnx_sizes or {}).get(arch_id)}
        row: list[str] = []
        for c in columns:
            row += _interval_cells(values.get(c)) if c.endswith("_ci95") else [fmt(values.get(c))]
        w.writerow(row)
    return buf.getvalue()


def _checkpoint_of(member: dict[str, Any]) -> str:
    """A pareto.json member's folder relative to the run folder (its `checkpoint`), as the report finds it."""
    return str(member.get("checkpoint") or f"checkpoints/{member.get('arch_id')}")


def pareto_csv_bytes(run_dir: str | pathlib.Path, *, members: Sequence[dict[str, Any]],
                     header: dict[str, Any] | None = None,
                     compressed: dict[str, dict[str, Any] | None] | None = None) -> bytes:
    """pareto.csv's content for pareto.json's `members` and `header` (its whole object) in the run folder `run_dir`,
    the int8 columns read from the members' folders as they are now (`pareto_csv`), or taken from `compressed` (each
    member folder's compressed_metrics.json as already read, keyed by the folder as pareto.json names it): what
    `write_pareto_csv` writes, and what `nas.results` renames into place beside a new pareto.json."""
    folder = pathlib.Path(run_dir)
    given = compressed or {}
    # keyed by folder, not arch_id: what was read of each member's own folder, whichever arch_id pareto.json gives it
    read = {cp: given[cp] if cp in given else read_compressed(folder / cp) for cp in map(_checkpoint_of, members)}
    compressed = {m.get("arch_id"): read[_checkpoint_of(m)] for m in members}
    # the report's own test of which files are gone, so that the two never disagree
    missing = {m.get("arch_id"): _missing_files(folder / _checkpoint_of(m), None, compressed[m.get("arch_id")])
               for m in members}
    sizes = {m.get("arch_id"): _size_on_disk(folder / _checkpoint_of(m), compressed[m.get("arch_id")]) for m in members}
    # model.onnx as the report's front table finds it: the file on disk
    onnx_sizes = {m.get("arch_id"): _file_size(folder / _checkpoint_of(m) / "model.onnx") for m in members}
    return pareto_csv(members, compressed=compressed, header=header, missing=missing, sizes=sizes,
                      onnx_sizes=onnx_sizes).encode()


def _size_on_disk(folder: pathlib.Path, compressed: dict[str, Any] | None) -> int | None:
    """The size in bytes of the int8 file in a member's `folder` that its compressed_metrics.json (`compressed`) names
    but records no size of (a file edited by hand); None where it records one (that is the column's), or there is no
    such file."""
    int8 = (compressed or {}).get("int8") if isinstance(compressed, dict) else None
    if not isinstance(int8, dict) or int8.get("size_bytes") is not None:
        return None
    return _file_size(folder / str(int8.get("file") or "model_int8.onnx"))


def write_pareto_csv(run_dir: str | pathlib.Path, *, members: Sequence[dict[str, Any]] | None = None,
                     header: dict[str, Any] | None = None,
                     compressed: dict[str, dict[str, Any] | None] | None = None) -> bool:
    """Write the run folder's pareto.csv from pareto.json's `members` and `header` (its whole object, for the chip; both
    None: read from the folder's pareto.json) and
    their folders' compressed_metrics.json, as they are now: with pareto.json, again once members are compressed (the
    search after its compression, compress.run of a member), and by `python -m nas.report <run folder>`, so its int8
    columns show what the report shows (an int8 file deleted from its folder marked as missing, so that the next
    `python -m nas.report` writes the CSV again). Written atomically, and only where its content changes: returns
    whether it was. `compressed`: {a member's folder, as pareto.json names it (its `checkpoint`): its
    compressed_metrics.json as `nas.report.read_compressed` read it (None: none)}, what the caller has read already
    (`python -m nas.report`, under the lock it holds); a member whose folder it lacks is read here.

    Raises `nas.report.ReportInputError` (one line, naming the rebuild from the study) for a pareto.json that cannot be
    read (not JSON, no object, its members no list), and `OSError` where the file cannot be written."""
    folder = pathlib.Path(run_dir)
    if members is None:  # the members the report lists: a pareto.json entry that is no object is skipped there too
        header = read_pareto_json(folder / PARETO_JSON)
        members = [m for m in header.get("members") or [] if isinstance(m, dict)]
    data = pareto_csv_bytes(folder, members=members, header=header, compressed=compressed)
    path = folder / PARETO_CSV
    try:
        if path.read_bytes() == data:
            return False
    except OSError:  # none yet, or unreadable: written
        pass
    _write_atomic(path, data)
    return True
