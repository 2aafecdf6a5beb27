"""fp32 checkpoint -> pruned + recovered -> int8 -> exported and verified files, in one folder.

`compress_checkpoint(folder, ...)` reads `folder/model.pt` and writes next to it:

  model_pruned.pt      pruned fp32 checkpoint (its ArchConfig rebuilds it)   [only if pruned]
  model_pruned.onnx    pruned fp32 ONNX                                       [only if pruned]
  model_int8.onnx      QDQ int8 ONNX (vendor compilers)
  model_int8.xml/.bin  OpenVINO IR of the same int8 model (host CPU runtime)
  compressed_metrics.json   fp32 -> pruned -> int8: accuracy from each file (with its 95% interval, and
                            the test images whose verdict changed from the file before, McNemar's p),
                            predicted chip latency, measured host latency, params, size on disk, and
                            how each step went

Every test accuracy (`test_acc`) in `compressed_metrics.json` is computed from the exported file in its runtime
(onnxruntime for ONNX, OpenVINO for the IR) on the test split (`compress.eval_images` of it when set); torch numbers
are kept beside them as a cross-check (`test_acc_torch`). The val accuracies are the torch models' (after distillation,
after QAT), except the int8 file's `val_acc_file`. The int8 file's headline `test_acc` is the one the target chip should see
(`int8_headline_source`, recorded as `int8.test_acc_source`): its runtime's on this host for a profile of this
host, else OpenVINO's, or the file's own (run operator by operator) where this CPU's int8 kernels saturate.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np

from nas.arch import ArchConfig
from nas.checkpoint import (IMAGE_COUNT_KEYS, atomic_write_json, export_onnx, file_sha256, fsync_folder, io_contract,
                            load_checkpoint, member_lock, onnx_metadata, recorded_image_counts,
                            remove_dead_writers_temps, save_checkpoint, scratch_folder)
from nas.config import CompressConfig, DataConfig, Members, PruneConfig
from nas.data import Dataset, Split, preprocessing
from nas.errors import CheckpointError, ConfigError, counted, disk_failure, module_logger, readable_repr
from nas.latency import HardwareProfile, predict_latency
from nas.latency.measure import busy_timing, int8_saturates, machine_info, make_runner, time_runners, timing_spread
from nas.layout import COMPRESSED_FILES, IR_FILES
from nas.layout import COMPRESSED_JSON as METRICS_FILE  # the name this module has always used
from nas.memory import eval_batch_size as fitting_eval_batch, memory_budget, training_refusal
from nas.overrides import shell_override
from nas.rebuild import setting_key
from nas.report import file_within_tolerance, int8_file_tolerance_text
from nas.stats import format_p, interval_of, paired_change
from nas.train import evaluate, keep_freed_memory, per_class_accuracy, seed_everything

from compress.export import (
    accuracy, agreement, export_int8_onnx, export_openvino, onnx_logits, openvino_cause, openvino_logits, torch_logits,
    torch_runner,
)
from compress.prune import check_reachable, latency_floor_ms, prune
from compress.quantize import quantize
from compress.recover import distill

if TYPE_CHECKING:
    import torch

log = module_logger(__name__)  # lines naming a file that is not UTF-8 written readably (ReadableNames)

FORMAT = "metaformer-nas/compressed-v1"
INT8_AGREEMENT_TOLERANCE = {"top1_agreement": 0.99, "max_rel_diff": 0.15}
"""Stated tolerance between the torch int8 model and its exported files on the test split: the same
top-1 class for >= 99% of images and max |logit difference| <= 15% of the largest |logit|. Exact
equality is not expected: NNCF simulates int8 in float, the runtimes compute real int8 and round
intermediate results differently. For the file run operator by operator (`onnx_reference`: does the file compute
the int8 model?) the 99% is judged on `top1_agreement_decided` where recorded (`compress.export.agreement`: flips on
near-tied images, which rounding alone turns, do not count), else on `top1_agreement`. The runtimes as deployed are
judged on `top1_agreement`: every image they classify otherwise is an answer the deployed file gives otherwise."""


RUNTIME_FILES = {"onnx": "onnxruntime (model_int8.onnx)", "openvino": "OpenVINO (model_int8.xml)"}
_HEADLINE_RUNTIMES = {"openvino": "openvino", "onnxruntime": "onnx"}  # int8 test_acc_source: its RUNTIME_FILES key


def _within(run: dict[str, float], *, excuse_near_ties: bool = False) -> bool:
    tol = INT8_AGREEMENT_TOLERANCE
    # near ties are excused for the operator-by-operator run only (files from before the field: the raw share); a
    # runtime's flips, near ties included, are what the deployed file answers otherwise (a saturating CPU's spread
    # logits widen the "typical rounding" until every flip looks like a near tie)
    top1 = run.get("top1_agreement_decided", run["top1_agreement"]) if excuse_near_ties else run["top1_agreement"]
    return run["max_rel_diff"] <= tol["max_rel_diff"] and top1 >= tol["top1_agreement"]


def _like_the_file(run: dict[str, Any], ref: dict[str, Any]) -> bool:
    """Whether a runtime's `run` of the int8 file is off only as the file run operator by operator (`ref`) is
    (`nas.report.flips_as_the_file`, as the report's int8 row judges it): the very images the file's own run flips
    where `shared_flips` is recorded, else no more of them (17 and 17, 16 of them near ties). The file then differs from
    the int8 model there, not this CPU's int8 kernels, which it was blamed on while any flip was not a near tie."""
    from nas.report import flips_as_the_file

    return flips_as_the_file(run, ref, max_rel_diff=INT8_AGREEMENT_TOLERANCE["max_rel_diff"])


def int8_agreement_warning(agree: dict[str, Any], *, saturates: bool, headline: str | None = None) -> str | None:
    """One line when a runtime's int8 file (`agree["onnx"]`, `agree["openvino"]`: as deployed, with the runtime's int8
    kernels) is outside `INT8_AGREEMENT_TOLERANCE` of the torch int8 model, saying whether the file or this CPU is the
    cause (`saturates`: `nas.latency.measure.int8_saturates`; `agree["onnx_reference"]`: the file run operator by
    operator, float arithmetic on int8 values); None when every runtime is within. `headline`: the int8 test_acc's
    source (`int8_headline_source`): a runtime's ("openvino", "onnxruntime") for a profile of this host, whose saturated
    number is then the headline; None (or the reference) for another chip, whose accuracy this CPU's runtimes cannot
    give."""
    off = [name for name in RUNTIME_FILES if name in agree and not _within(agree[name])]
    if not off:
        return None
    from nas.report import file_flips_text, logit_diff_text, top1_text  # worded as the report's int8 row words it (as int8_test_acc_source below)

    tol = INT8_AGREEMENT_TOLERANCE
    # logit_diff_text: "up to 0% of its largest logit" read as exact for a file 0.15% off that warned all the same
    what = (" and ".join(f"{RUNTIME_FILES[n]} differs from the int8 model by up to "
                         f"{logit_diff_text(agree[n]['max_rel_diff'])} of its largest logit "
                         f"({agree[n]['top1_agreement']:.1%} the same top-1 class)" for n in off)
            + f" on this CPU (tolerance {tol['max_rel_diff']:.0%}, {tol['top1_agreement']:.0%})")
    ref = agree.get("onnx_reference")
    if ref is None:
        return what
    if not _within(ref, excuse_near_ties=True):
        # both parts of the tolerance: "3% run operator by operator" alone read as within it when 98.8% top-1 was not
        return (f"{what}, and run operator by operator {logit_diff_text(ref['max_rel_diff'])} ({top1_text(ref)}): "
                "the exported file does not compute the int8 model its accuracies were measured on (an "
                "export problem: please report it)")
    if all(_like_the_file(agree[n], ref) for n in off):
        # Each runtime off only by top-1 flips the file run operator by operator has too (one image of a 64-image test
        # split is 98.4%): the file's own int8 rounding turns them, neither saturation nor this CPU's kernels, which
        # the lines below blamed. Still a warning: the deployed file answers them otherwise.
        compared, why = file_flips_text([agree[n] for n in off], kernels="this CPU's int8 kernels")
        if all(agree[n].get("near_tie_flips") == agree[n].get("top1_flips") for n in off):
            why = "int8 rounding turns test images whose two top classes are nearly tied, not this CPU's int8 kernels"
        return f"{what}, {compared} ({logit_diff_text(ref['max_rel_diff'])}, {top1_text(ref)}): {why}"
    if saturates:
        cause = (f"{what}: this x86 CPU has no VNNI (avx512_vnni, avx_vnni or amx_int8 in /proc/cpuinfo), where int8 "
                 f"kernels add 8-bit products in 16 bits and saturate; the file itself computes the int8 model (run "
                 f"operator by operator: {logit_diff_text(ref['max_rel_diff'])}), whose accuracy is test_acc_reference")
        if (runtime := _HEADLINE_RUNTIMES.get(headline or "")) is not None:
            # a profile of this host (hw=cpu_int8, cpu_ort): the file will run here, saturating as it does now
            return (f"{cause}; test_acc is {RUNTIME_FILES[runtime]}'s on this CPU, saturation included, as the profile's "
                    "runtime will run the file on this host")
        return f"{cause}: the runtimes' accuracy is for the target chip or a VNNI CPU to measure"
    # the file is within the tolerance run operator by operator: "though run operator by operator only 2%" read as
    # less than the runtime's "up to 1%" when the runtime was off by its top-1 flips, not by its logits
    return (f"{what}, though the file itself is within it run operator by operator ({logit_diff_text(ref['max_rel_diff'])}, "
            f"{top1_text(ref)}): the runtime's int8 kernels compute it differently on this CPU")


INT8_SOURCE_SATURATED = "reference (host int8 kernels saturate)"
"""`int8.test_acc_source` when the headline int8 accuracy is the file run operator by operator: the target is another
chip than this host's CPU, whose int8 kernels saturate (`nas.latency.measure.int8_saturates`)."""


def int8_headline_source(*, runtime: str, saturates: bool) -> str:
    """Which of the int8 file's accuracies measured here is `int8.test_acc`, the headline (report row, Pareto stars,
    summaries): an estimate of what the target chip gets. `runtime` is the profile's (`HardwareProfile.runtime`).

    A profile timed on this host (`runtime` "openvino" or "onnxruntime": hw=cpu_int8, cpu_ort, ...) ships the file to
    this CPU, whose runtime computes what the user will get, saturated or not: that runtime's number. Any other chip
    (edge_npu, mobile_cpu: no runtime here) accumulates int8 products in 32 bits; on a CPU whose int8 kernels saturate
    (`saturates`) the runtimes here fall short of it, so the file's own accuracy, run operator by operator, stands for
    it (`INT8_SOURCE_SATURATED`); elsewhere OpenVINO's, which is then within tolerance of it."""
    if runtime in ("openvino", "onnxruntime"):
        return runtime
    return INT8_SOURCE_SATURATED if saturates else "openvino"


def fingerprint(cfg: CompressConfig, hw: HardwareProfile, folder: str | os.PathLike, dataset: str, *,
                largest_split: int | None = None) -> str:
    """Identity of one compression job: same fingerprint -> the folder's files are reusable. It covers the
    weights in `folder/model.pt` (a final training or any other retraining replaces them). `largest_split`: the images
    of the larger of the val and test splits, at or above which `compress.eval_images` scores every image as null does
    (None: not known, the value compared as given)."""
    weights = Path(folder) / "model.pt"
    digest = hashlib.sha1(weights.read_bytes()).hexdigest() if weights.is_file() else None
    settings = _result_settings(dataclasses.asdict(cfg), largest_split=largest_split)
    chip = dataclasses.asdict(hw)
    # which archs (inputs) a calibration was fitted on changes no prediction, nor does the file its numbers were read
    # from (`fitted`, "" once read; a key added since), nor the extent of those archs (`measured_extent`, added since
    # too): files stay reusable
    for key in ("fitted_archs", "measured_inputs", "fitted", "measured_extent"):
        chip.pop(key, None)
    blob = json.dumps({"cfg": settings, "hw": chip, "weights": digest, "data": dataset}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def _result_settings(settings: dict[str, Any], *, largest_split: int | None = None) -> dict[str, Any]:
    """A compression's settings (`CompressConfig` as a dict) without those that change no result: the part of
    `fingerprint` that is the settings'. `largest_split`: as `fingerprint` takes it."""
    settings = dict(settings)
    settings.pop("keep_freed_memory", None)  # how memory is allocated changes no result: files stay reusable either way
    cap = settings.get("eval_images")
    # every image scored, as before the key existed: earlier files stay reusable; so does a cap no split reaches
    # (compress.eval_images=100000 scores all of Fashion-MNIST's images, as null does: `scored_indices`)
    if cap is None or (largest_split is not None and isinstance(cap, int) and cap >= largest_split):
        settings.pop("eval_images", None)
    return settings


def compressed_otherwise(run_dir: Path, cfg: CompressConfig) -> dict[str, str]:
    """{arch_id: the settings that differ, in words} of the run folder's members whose compressed_metrics.json records
    a compression made with other settings than `cfg` (those that change no result aside), which `compress_front` would
    redo, replacing their files (or remove them, for a member `cfg` no longer selects); {} for `compress=none` (the files
    are kept then). Files without recorded settings (a failed compression's) are skipped: they hold no result to lose."""
    if cfg.members == Members.none:
        return {}
    out: dict[str, str] = {}
    for path in sorted((run_dir / "checkpoints").glob(f"*/{METRICS_FILE}")):
        if differ := _settings_that_differ(read_compressed_metrics(path.parent) or {}, cfg):
            out[path.parent.name] = differ
    return out


def _settings_that_differ(metrics: dict[str, Any], cfg: CompressConfig) -> str | None:
    """The settings (keys of `CompressConfig`, comma-separated) whose values differ between the compression that wrote
    `metrics` (a compressed_metrics.json) and `cfg`, those that change no result aside; None where none does or none is
    recorded (a failed compression's file)."""
    done = metrics.get("config")
    # the splits' sizes it recorded: a cap at or above both scored what null scores (files before them: as given)
    scored = metrics.get("eval_images") if isinstance(metrics.get("eval_images"), dict) else {}
    largest = max(scored["val_of"], scored["test_of"]) if {"val_of", "test_of"} <= set(scored) else None
    want = json.loads(json.dumps(_result_settings(dataclasses.asdict(cfg), largest_split=largest), default=str))
    if not isinstance(done, dict) or (done := _result_settings(done, largest_split=largest)) == want:
        return None
    return ", ".join(k for k in {**want, **done} if want.get(k) != done.get(k))


def compressed_for_another_job(folder: str | os.PathLike, *, cfg: CompressConfig, hw: HardwareProfile) -> str | None:
    """How the finished compression in `folder` was made otherwise than `cfg` on `hw` would make it, in words ("for
    hw=cpu", "with other compress settings: prune"), where that is why it is not up to date; None where there is no
    finished compression or it differs otherwise (new weights, a damaged file). A member compressed for another chip
    by `python -m compress.run` was compressed again by the next search, its files replaced, without a word of why."""
    metrics = read_compressed_metrics(folder)
    if not metrics or metrics.get("error") or not isinstance(metrics.get("hw"), str):
        return None
    if metrics["hw"] != hw.name:
        return f"for hw={metrics['hw']}"
    if differ := _settings_that_differ(metrics, cfg):
        return f"with other compress settings: {differ}"
    return None


def read_compressed_metrics(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's compressed_metrics.json, or None if absent or unreadable."""
    path = Path(folder) / METRICS_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def is_up_to_date(folder: str | os.PathLike, fp: str) -> bool:
    """Whether the folder already holds a finished compression with this fingerprint and all its files."""
    m = read_compressed_metrics(folder)
    if not m or m.get("fingerprint") != fp or m.get("error"):
        return False
    if not all((Path(folder) / name).is_file() for name in m.get("files", {}).values()):
        return False
    # A file cut short or changed since (a copy, the disk) is compressed again rather than kept as done; files written
    # before file_sha256 are taken as they are.
    return all(file_sha256(Path(folder) / name) == digest for name, digest in (m.get("file_sha256") or {}).items())


def convert_ir_again(folder: str | os.PathLike, fp: str) -> tuple[str, ...]:
    """Convert `folder`'s model_int8.onnx to OpenVINO IR again (`export_openvino`, as the compression converts it) where
    the finished compression with fingerprint `fp` lacks only its IR files (deleted by hand): the IR holds no result of
    its own, so pruning, recovery and QAT need not run again. The recorded digests of the IR are updated: a conversion
    names its nodes anew (the .xml differs byte for byte, the weights in the .bin do not); a .bin of other weights than
    the recorded one (another OpenVINO) is no longer the file measured, and the files are left to be compressed again.
    The IR files that were gone where it was converted again and the compression is whole; () otherwise."""
    folder = Path(folder)
    m = read_compressed_metrics(folder)
    if not m or m.get("fingerprint") != fp or m.get("error") or not isinstance(m.get("files"), dict):
        return ()
    names = set(m["files"].values())
    gone = {name for name in names if not (folder / name).is_file()}
    if not gone or not gone <= set(IR_FILES) or not set(IR_FILES) <= names:
        return ()
    digests = dict(m.get("file_sha256") or {})
    if any(file_sha256(folder / name) != digest for name, digest in digests.items() if name not in IR_FILES):
        return ()  # another file changed too: the whole compression is redone
    arch = (m.get("fp32") or {}).get("arch") or {}
    if "in_chans" not in arch or "img_size" not in arch:
        return ()
    try:
        export_openvino(folder / "model_int8.onnx", folder / "model_int8.xml", in_chans=arch["in_chans"],
                        img_size=arch["img_size"])
    except Exception as e:  # noqa: BLE001 - OpenVINO raises its own exception types
        if _disk_failure(e):  # stops the run, as in compress_front
            raise
        # a model_int8.onnx no digest vouches for (files from before file_sha256) that OpenVINO refuses: the member is
        # compressed again, as before this shortcut, where a failure is recorded as that member's, not the run's end
        log.warning("%s: converting model_int8.onnx to OpenVINO IR again failed (%s): compressing it again", folder.name,
                    openvino_cause(e))
        return ()
    if "model_int8.bin" in digests and file_sha256(folder / "model_int8.bin") != digests["model_int8.bin"]:
        return ()
    if digests:
        m["file_sha256"] = {**digests, **{name: file_sha256(folder / name) for name in IR_FILES}}
    if isinstance(m.get("int8"), dict) and "size_bytes_ir" in m["int8"]:
        m["int8"]["size_bytes_ir"] = _size(folder, *IR_FILES)
    atomic_write_json(folder / METRICS_FILE, m)
    return tuple(name for name in IR_FILES if name in gone)


def prune_targets(cfg: CompressConfig, fp32_ms: float) -> tuple[float | None, float | None]:
    """(ratio, target_latency_ms) for `compress.prune`, or (None, None) when nothing is to be pruned."""
    p = cfg.prune  # precedence: an explicit latency target overrides the (default) ratio
    if p.target_latency_ms is not None:
        return None, p.target_latency_ms
    if p.target_latency_fraction is not None:
        return (None, p.target_latency_fraction * fp32_ms) if p.target_latency_fraction < 1 else (None, None)
    if p.ratio is not None and p.ratio > 0:
        return p.ratio, None
    return None, None


def check_prune_target(arch: ArchConfig, *, hw: HardwareProfile, cfg: CompressConfig, fp32_ms: float | None = None,
                       floor_ms: float | None = None) -> tuple[float | None, float | None]:
    """Raise `ConfigError` when `cfg.prune`'s latency target (`target_latency_ms`, or `target_latency_fraction` of
    `arch`'s predicted latency on `hw`) cannot be met even by `compress.prune.MAX_RATIO` pruning, naming the setting the
    user gave; nothing for a ratio, or a target the unpruned model meets already. Returns the checked
    `prune_targets(cfg, fp32_ms)`, for the pruning to use. `fp32_ms`: `arch`'s predicted latency on `hw`, and
    `floor_ms` its `compress.prune.latency_floor_ms`, where the caller has them (predicted when None)."""
    if fp32_ms is None:
        fp32_ms = predict_latency(arch, hw).total_ms
    ratio, target_ms = prune_targets(cfg, fp32_ms)
    if target_ms is None or target_ms >= fp32_ms:
        return ratio, target_ms
    fraction = cfg.prune.target_latency_fraction if cfg.prune.target_latency_ms is None else None
    setting = (f"compress.prune.target_latency_fraction={fraction:g} ({target_ms:.3f} ms)" if fraction is not None
               else None)  # the setting the user gave, not the one derived from it
    check_reachable(arch, hw=hw, target_latency_ms=target_ms, setting=setting, floor_ms=floor_ms)
    return ratio, target_ms


def not_pruned_reason(prune_cfg: PruneConfig, *, hw: HardwareProfile, fp32_ms: float) -> str:
    """Why `compress.prune` (`prune_cfg`) left a model unpruned on `hw` (predicted at `fp32_ms`), naming the setting:
    compressed_metrics.json's `pruned.reason`, which the report and `python -m compress.run` show. They said "no target,
    or the target was already met" for every cause, a ratio of 0 or too small to remove a channel included."""
    p = prune_cfg
    if p.target_latency_ms is not None:  # the precedence of `prune_targets`
        return (f"the unpruned model is predicted at {fp32_ms:.3f} ms on {hw.name}, within "
                f"compress.prune.target_latency_ms={p.target_latency_ms:g} already")
    if p.target_latency_fraction is not None:
        return (f"compress.prune.target_latency_fraction={p.target_latency_fraction:g} asks for no cut of the unpruned "
                "model's predicted latency")
    if p.ratio is None:
        return "compress.prune sets no target (ratio, target_latency_ms and target_latency_fraction are all null)"
    if p.ratio == 0:
        return "compress.prune.ratio=0 removes no channel"
    multiple = max(1, int(hw.channel_multiple or 1))
    return (f"compress.prune.ratio={p.ratio:g} removes no channel once each width is rounded to {hw.name}'s "
            f"channel_multiple={multiple}")


def _size(folder: Path, *names: str) -> int:
    return sum((folder / n).stat().st_size for n in names)


def _file_accuracy(logits: np.ndarray, data: Dataset, *, before: tuple[str, np.ndarray] | None = None) -> dict[str, Any]:
    """test_acc, its 95% interval and test_acc_per_class of an exported file's logits on the test split; with `before`
    (the previous file's name and logits), how many test images changed verdict from that file to this one."""
    truth = data.test.y.numpy()
    out = {"test_acc": accuracy(logits, data.test, balanced=data.balanced),
           "test_acc_ci95": interval_of(logits.argmax(1), truth, data.num_classes, balanced=data.balanced),
           "test_acc_per_class": per_class_accuracy(logits, data.test, data.classes)}
    if before is not None:
        out["changed_vs_before"] = {"file": before[0], **paired_change(before[1].argmax(1), logits.argmax(1), truth)}
    return out


def scored_indices(data: Dataset, images: int | None, *, seed: int) -> dict[str, np.ndarray | None]:
    """{"val": ..., "test": ...}: the positions (ascending, in the split's order) of the fixed random `images` of each
    split that `compress.eval_images` scores; None for a split scored whole (`images` None, or a split of no more)."""
    rng = np.random.default_rng(seed)  # val drawn first, then test: the cut of every earlier compression
    return {name: None if images is None or len(split) <= images
            else np.sort(rng.choice(len(split), size=images, replace=False))
            for name, split in (("val", data.val), ("test", data.test))}


def scored_subset(data: Dataset, images: int | None, *, seed: int) -> Dataset:
    """`data` with its val and test splits each cut to a fixed random `images` of theirs (`scored_indices`; a split of
    no more is kept whole), for `compress.eval_images`; `data` itself when `images` is None. The training split stays."""
    if images is None:
        return data
    import torch  # at run time only here: the module imports without it (TYPE_CHECKING above)

    def cut(split: Split, keep: np.ndarray | None) -> Split:
        if keep is None:
            return split
        index = torch.from_numpy(keep)
        return split.select(index)

    keep = scored_indices(data, images, seed=seed)
    return dataclasses.replace(data, val=cut(data.val, keep["val"]), test=cut(data.test, keep["test"]))


def check_memory(arch: ArchConfig, cfg: CompressConfig, data: Dataset, *, budget_bytes: int | None, prunes: bool) -> None:
    """`ConfigError` when a training step of this compression (distillation after pruning, QAT) would need more
    working memory than `budget_bytes` (`nas.memory`): the kernel would kill the process without a word. Both steps
    distil, so the step holds the student's training activations and the teacher's forward pass on the same batch.
    Checked on the unpruned `arch` for both, which no pruned student (or the pruned teacher of QAT) outgrows."""
    if budget_bytes is None:
        return
    steps = [("compress.recover", cfg.recover)] if prunes else []
    steps += [("compress.quantize.qat", cfg.quantize.qat)] if cfg.quantize.qat.epochs > 0 else []
    for where, finetune in steps:
        images = min(len(data.train), finetune.subset or len(data.train))
        refusal = training_refusal(arch, batch_size=min(finetune.batch_size, images), budget_bytes=budget_bytes,
                                   setting=f"{where}.batch_size", teachers=(arch,))
        if refusal is not None:
            raise ConfigError(f"{arch.arch_id}: {refusal}")


def check_data_shape(folder: str | os.PathLike, arch: ArchConfig, meta: dict[str, Any], data: Dataset, *,
                     root: str | None = None, background: int | None = None, recorded: Sequence[str] = ()) -> None:
    """`ConfigError` when `data`'s images or classes are not the shape the checkpoint's `arch` takes, naming the
    settings that make them (`meta`: the checkpoint's metadata, whose `dataset` says what it was trained on; `root`: the
    data.root its search recorded, None when unknown; `background`: the data.background its search recorded, named for
    an image folder, None when transparency was dropped or nothing was recorded), then each of `recorded` (the data
    settings its search's records show, `compress.run.recorded_data_settings`: its split, say) of a key not named yet:
    pasted without the split settings, the hint was refused in turn for the test images."""
    if (arch.in_chans, arch.img_size, arch.num_classes) == (data.in_chans, data.img_size, data.num_classes):
        return
    settings = trained_data_settings(dataset=meta.get("dataset"), root=root, channels=arch.in_chans,
                                     img_size=arch.img_size, background=background,
                                     loaded=(data.in_chans, data.img_size))
    named = {setting_key(s) for s in settings}
    settings += [s for s in recorded if setting_key(s) not in named]
    hint = "; pass the data it was trained on" + (f": {' '.join(settings)}" if settings else "")
    raise ConfigError(
        f"checkpoint {folder} expects {arch.in_chans}x{arch.img_size}x{arch.img_size} images and {arch.num_classes} classes; "
        f"dataset {data.name!r} has {data.in_chans}x{data.img_size}x{data.img_size} and {data.num_classes}{hint}"
    )


def trained_data_settings(*, dataset: str | None, root: str | None, channels: int, img_size: int,
                          background: int | None, loaded: tuple[int, int] | None) -> list[str]:
    """The data settings, each one shell argument, that make the images a checkpoint of `channels` x `img_size` was
    trained on, as `check_data_shape` names them: data=<dataset> (None: unknown, and nothing is named); for an image
    folder its data.root (`root_setting`), data.img_size, data.channels and data.background where one was recorded;
    for other data data.img_size and data.channels where they differ from `loaded`, the (channels, img_size) of the data
    loaded without them (None: not known, and both are named)."""
    # A user's folder needs naming again: data= alone means Fashion-MNIST. The size is named: an image folder is
    # resized to data.img_size (default 32), so a model searched at 64 px needs data.img_size=64 again, which the user
    # cannot guess from "its data.img_size". So are the channels: a folder's are detected (3 where any image is in
    # colour), so a model searched with data.channels=1 on colour photos was refused again, with the same hint, when
    # the user passed what it named; and Fashion-MNIST searched at data.img_size=32 data.channels=3 loads at 1x28x28
    # from data=fashion_mnist alone.
    if not dataset:
        return []
    folder_data = dataset == "imagefolder"
    settings = [f"data={dataset}"]
    settings += [root_setting(root)] if folder_data else []
    settings += [f"data.img_size={img_size}"] if folder_data or loaded is None or img_size != loaded[1] else []
    settings += [f"data.channels={channels}"] if folder_data or loaded is None or channels != loaded[0] else []
    settings += [f"data.background={background}"] if folder_data and background is not None else []
    return settings


def root_setting(root: str | None) -> str:
    """data.root=<the recorded root> for a folder that is still there; a placeholder otherwise (it said
    '<its image folder>' although the run's pareto.json or the checkpoint recorded it), naming a moved one's old place,
    or a relative one's (recorded as given before 2026-12-05) as relative to the folder the search ran in: resolved from
    here it may name another folder, or none."""
    if root is None:
        return "data.root=<its image folder>"
    if not Path(root).is_absolute():
        return f"data.root=<its image folder, {root} relative to the folder its search ran in>"
    # quoted where the shell or Hydra would read into it (spaces, accents, parentheses): the hint is pasted
    return (shell_override(key="data.root", value=root) if Path(root).is_dir()
            else f"data.root=<its image folder, {root} when searched>")


@contextlib.contextmanager
def _earlier_compression_kept(folder: Path) -> Iterator[None]:
    """The files of an earlier compression of `folder` moved aside while the block compresses it again, and put back
    as they were (this run's files removed) if the block raises: Ctrl-C or SIGTERM during a second `compress.run` of a
    checkpoint deleted the first one's deployable files. Their metrics go first and come back last, so no
    compressed_metrics.json ever describes files that are not beside it. On success they are deleted with the folder
    they were moved to; a writer killed inside the block leaves that folder, which `remove_dead_writers_temps` clears."""
    # METRICS_FILE is among COMPRESSED_FILES too
    present = list(dict.fromkeys(name for name in (METRICS_FILE, *COMPRESSED_FILES) if (folder / name).is_file()))
    with contextlib.ExitStack() as stack:
        kept = stack.enter_context(scratch_folder(folder, METRICS_FILE)) if present else None
        for name in present:
            os.replace(folder / name, kept / name)
        if present:
            fsync_folder(folder)
        try:
            yield
        except BaseException:
            for name in COMPRESSED_FILES:  # this run's files, of a compression that did not finish
                (folder / name).unlink(missing_ok=True)
            for name in reversed(present):
                os.replace(kept / name, folder / name)
            if present:
                fsync_folder(folder)
            raise


def compress_checkpoint(
    folder: str | os.PathLike,
    *,
    hw: HardwareProfile,
    data: Dataset,
    cfg: CompressConfig,
    augment: DataConfig | None = None,
    eval_batch_size: int = 512,
    memory_budget_gb: float | None = None,
    floor: tuple[ArchConfig, float] | None = None,
) -> dict[str, Any]:
    """Prune, recover, quantize, export and verify the checkpoint in `folder`; return (and write)
    its compressed_metrics.json content. Raises `CheckpointError` / `ConfigError` on bad input
    before writing anything, a training batch that would not fit `memory_budget_gb` among it (None: 70% of the
    memory available now); evaluations run in batches of at most `eval_batch_size` that fit it. Interrupted or failed,
    it leaves the files of an earlier compression of `folder` as they were (`_earlier_compression_kept`). Another
    process final-training or compressing `folder` meanwhile is waited for (`nas.checkpoint.member_lock`).
    `floor`: (arch, its `compress.prune.latency_floor_ms` on `hw`) where the caller has it (`compress.run` checked its
    latency target with it before loading the data); used where the checkpoint's arch is that arch, worked out
    otherwise."""
    folder = Path(folder)
    with member_lock(folder, doing="compressing it"), _earlier_compression_kept(folder):
        return _compress_checkpoint(folder, hw=hw, data=data, cfg=cfg, augment=augment, eval_batch_size=eval_batch_size,
                                    memory_budget_gb=memory_budget_gb, floor=floor)


def _compress_checkpoint(folder: Path, *, hw: HardwareProfile, data: Dataset, cfg: CompressConfig,
                         augment: DataConfig | None, eval_batch_size: int, memory_budget_gb: float | None,
                         floor: tuple[ArchConfig, float] | None) -> dict[str, Any]:
    """`compress_checkpoint` once the earlier compression's files are moved aside."""
    started = time.perf_counter()
    weights = file_sha256(folder / "model.pt")  # the weights compressed: a member trained again since has others
    model = load_checkpoint(folder)
    arch = model.arch
    check_data_shape(folder, arch, model.meta, data)
    trained_on = model.meta.get("classes")  # checkpoints before 2026-12-04 lack them
    if trained_on is not None and list(trained_on) != list(data.classes):
        i = next(i for i, (a, b) in enumerate(zip(trained_on, data.classes)) if a != b)
        raise ConfigError(f"checkpoint {folder} was trained on other classes than dataset {data.name!r} has: class {i} is "
                          f"{readable_repr(trained_on[i])} there and {readable_repr(data.classes[i])} here; give the data it was trained on")
    trained_for = model.meta.get("metric", "accuracy")  # checkpoints from before data.metric: plain accuracy
    if trained_for != data.metric.value:
        raise ConfigError(f"checkpoint {folder} was trained and selected for {trained_for}, not data.metric="
                          f"{data.metric.value!r}; pass data.metric={trained_for} (allowed: accuracy, balanced_accuracy)")
    fp32_pred = predict_latency(arch, hw)
    # The caller's floor is that of the arch model.pt held before this member's lock was taken: a model.pt replaced since
    # (by hand, or a final training that finished meanwhile) has its own
    floor_ms = floor[1] if floor is not None and floor[0] == arch else latency_floor_ms(arch, hw=hw)
    # before any file is written; the targets are worked out once, from the predictions above
    ratio, target_ms = check_prune_target(arch, hw=hw, cfg=cfg, fp32_ms=fp32_pred.total_ms, floor_ms=floor_ms)
    budget = memory_budget(memory_budget_gb)
    check_memory(arch, cfg, data, budget_bytes=budget, prunes=ratio is not None or target_ms is not None)
    # the same scores as one batch of eval_batch_size, in pieces that fit (no pruned model outgrows `arch`)
    eval_batch_size = fitting_eval_batch(arch, batch_size=eval_batch_size, budget_bytes=budget)
    # The files of an earlier compression are gone (moved aside by `_earlier_compression_kept`, which puts them back if
    # this run stops): a run that does not prune leaves no stale pruned files. Removed here too for a direct caller.
    for name in (METRICS_FILE, *COMPRESSED_FILES):
        (folder / name).unlink(missing_ok=True)
    # So do the temporary files of a compression killed mid-write (a checkpoint compressed by compress.run alone is in no
    # run folder that a search's start would clear); a live worker's are kept.
    if removed := remove_dead_writers_temps(folder):
        log.info("removed %s left in %s by writers that were killed mid-write", counted(len(removed), "temporary file"),
                 folder)
    seed_everything(cfg.seed)
    if cfg.keep_freed_memory:  # a search has done so already; a standalone `python -m compress.run` has not
        keep_freed_memory()
    shape = (1, arch.in_chans, arch.img_size, arch.img_size)
    whole = {"val": len(data.val), "test": len(data.test)}
    # which test images a cut scored, recorded: a deployer checking the file's accuracy on them needs no source code
    test_indices = scored_indices(data, cfg.eval_images, seed=cfg.seed)["test"]
    data = scored_subset(data, cfg.eval_images, seed=cfg.seed)
    test = data.test

    # what the files take and give: compressed_metrics.json states it, and each file exported here carries it in its
    # metadata (the search's model.onnx carries its own)
    contract = _io_contract(folder, model, data, augment)
    labels = {"dataset": data.name, "metric": data.metric.value}  # what the files were trained on and scored for

    # fp32: the search's file (exported again if absent, e.g. a checkpoint from elsewhere).
    fp32_onnx = folder / "model.onnx"
    if not fp32_onnx.is_file():
        export_onnx(model, fp32_onnx, in_chans=arch.in_chans, img_size=arch.img_size,
                    metadata=onnx_metadata(arch=arch, contract=contract, precision="fp32", **labels))
    fp32_logits = torch_logits(model, test, batch_size=eval_batch_size)
    fp32_val = evaluate(model, data.val, batch_size=eval_batch_size, balanced=data.balanced)
    # (name, test logits) of the file the next one is compared with, image by image
    fp32_file_logits = onnx_logits(fp32_onnx, test, batch_size=eval_batch_size)
    source = ("model.onnx", fp32_file_logits)
    fp32 = {
        "arch_id": arch.arch_id, "summary": arch.summary(), "arch": arch.to_dict(), "params": fp32_pred.params,
        "macs": fp32_pred.macs, "latency_ms": fp32_pred.total_ms, "val_acc": fp32_val,
        **_file_accuracy(source[1], data),
        "test_acc_torch": accuracy(fp32_logits, test, balanced=data.balanced), "file": "model.onnx",
        "size_bytes": _size(folder, "model.onnx"),
    }
    files = {"fp32_onnx": "model.onnx"}

    # Pruning + distillation from the unpruned model.
    pruned_model, pruned_arch = model, arch
    pruned: dict[str, Any] = {"pruned": False,
                              "reason": not_pruned_reason(cfg.prune, hw=hw, fp32_ms=fp32_pred.total_ms)}
    if ratio is not None or target_ms is not None:
        result = prune(copy.deepcopy(model), arch, hw=hw, ratio=ratio, target_latency_ms=target_ms, step=cfg.prune.step,
                       floor_ms=floor_ms)
        pruned = {"pruned": result.steps > 0, "ratio": result.ratio, "steps": result.steps,
                  "target_latency_ms": result.target_latency_ms, "target_met": result.target_met}
        if result.steps == 0:
            pruned["reason"] = not_pruned_reason(cfg.prune, hw=hw, fp32_ms=fp32_pred.total_ms)
        if result.steps > 0:
            pruned_model, pruned_arch = result.model, result.arch
            before = evaluate(pruned_model, data.val, batch_size=eval_batch_size, balanced=data.balanced)
            rec = distill(pruned_model, model, data, cfg.recover, augment=augment, seed=cfg.seed, eval_batch_size=eval_batch_size)
            pruned_model.eval()
            save_checkpoint(folder / "model_pruned.pt", pruned_model, pruned_arch, meta={
                "source_arch_id": arch.arch_id, "prune_ratio": result.ratio, "val_acc": rec.val_acc, "dataset": data.name,
                "classes": list(data.classes), "metric": data.metric.value,
            })
            export_onnx(pruned_model, folder / "model_pruned.onnx", in_chans=arch.in_chans, img_size=arch.img_size,
                        metadata=onnx_metadata(arch=pruned_arch, contract=contract, precision="fp32", **labels))
            files.update(pruned_pt="model_pruned.pt", pruned_onnx="model_pruned.onnx")
            pruned_pred = predict_latency(pruned_arch, hw)
            pruned_logits = onnx_logits(folder / "model_pruned.onnx", test, batch_size=eval_batch_size)
            pruned.update({
                "arch_id": pruned_arch.arch_id, "summary": pruned_arch.summary(), "arch": pruned_arch.to_dict(),
                "params": pruned_pred.params, "macs": pruned_pred.macs, "latency_ms": pruned_pred.total_ms,
                "val_acc_before_recovery": before, "val_acc": rec.val_acc, "recover_seconds": rec.seconds,
                "recover_precision": rec.precision,
                **_file_accuracy(pruned_logits, data, before=source),
                "test_acc_torch": evaluate(pruned_model, test, batch_size=eval_batch_size, balanced=data.balanced),
                "file": "model_pruned.onnx", "size_bytes": _size(folder, "model_pruned.onnx"),
            })
            source = ("model_pruned.onnx", pruned_logits)
    pruned_val = pruned.get("val_acc", fp32_val)

    # int8: PTQ (+ QAT if the drop is too large), exported, evaluated from the files.
    q = quantize(pruned_model, data, cfg.quantize, augment=augment, seed=cfg.seed, fp32_val_acc=pruned_val,
                 eval_batch_size=eval_batch_size, label=arch.arch_id, source="pruned" if pruned["pruned"] else "fp32")
    export_int8_onnx(q.model, folder / "model_int8.onnx", in_chans=arch.in_chans, img_size=arch.img_size,
                     metadata=onnx_metadata(arch=pruned_arch, contract=contract, precision="int8", **labels))
    export_openvino(folder / "model_int8.onnx", folder / "model_int8.xml", in_chans=arch.in_chans, img_size=arch.img_size)
    files.update(int8_onnx="model_int8.onnx", int8_xml="model_int8.xml", int8_bin="model_int8.bin")
    q_logits = torch_logits(q.model, test, batch_size=eval_batch_size)
    ort_logits = onnx_logits(folder / "model_int8.onnx", test, batch_size=eval_batch_size)
    ort_reference = onnx_logits(folder / "model_int8.onnx", test, batch_size=eval_batch_size, reference=True)
    ov_logits = openvino_logits(folder / "model_int8.xml", test, batch_size=eval_batch_size)
    source_test = pruned.get("test_acc", fp32["test_acc"])
    int8_pred = predict_latency(pruned_arch, hw)
    saturates = int8_saturates()
    # The headline (test_acc and all that follows it: interval, classes, changes, val_acc_file, the summary) is the
    # accuracy the target chip should see; the others are kept beside it.
    headline = int8_headline_source(runtime=hw.runtime, saturates=saturates)
    headline_logits = {"openvino": ov_logits, "onnxruntime": ort_logits}.get(headline, ort_reference)
    val_logits = (openvino_logits(folder / "model_int8.xml", data.val, batch_size=eval_batch_size) if headline == "openvino"
                  else onnx_logits(folder / "model_int8.onnx", data.val, batch_size=eval_batch_size,
                                   reference=headline == INT8_SOURCE_SATURATED))
    val_file = accuracy(val_logits, data.val, balanced=data.balanced)
    judged = {"fp32_val_acc": q.fp32_val_acc, "val_acc": q.val_acc, "val_acc_file": val_file,
              "max_acc_drop": q.max_acc_drop}
    int8 = {
        "arch_id": pruned_arch.arch_id, "params": int8_pred.params, "latency_ms": int8_pred.total_ms,
        "fp32_val_acc": q.fp32_val_acc, "ptq_val_acc": q.ptq_val_acc, "val_acc": q.val_acc,
        "qat_epochs": q.qat_epochs, "qat_seconds": q.qat_seconds, "max_acc_drop": q.max_acc_drop,
        # the verdict of what ships: the file's val accuracy (on the same val images, run as its test_acc); the NNCF
        # model's, which QAT judged, beside it. A file 6.67 pt below the pruned model passed on its NNCF model's 0 pt.
        "within_tolerance": file_within_tolerance(judged), "within_tolerance_torch": q.within_tolerance, "note": q.note,
        # the training images NNCF calibrated on: calibration_size, or all of them where that asks for more
        "calibration_images": min(cfg.quantize.calibration_size, len(data.train)),
        **_file_accuracy(headline_logits, data, before=source), "test_acc_source": headline,
        "test_acc_openvino": accuracy(ov_logits, test, balanced=data.balanced),
        "test_acc_onnx": accuracy(ort_logits, test, balanced=data.balanced),
        # what the file computes whatever this CPU's int8 kernels do (they saturate on x86 without VNNI)
        "test_acc_reference": accuracy(ort_reference, test, balanced=data.balanced),
        "test_acc_torch": accuracy(q_logits, test, balanced=data.balanced),
        "acc_drop_vs_source_pt": (source_test - accuracy(headline_logits, test, balanced=data.balanced)) * 100.0,
        "val_acc_file": val_file,
        "file": "model_int8.onnx", "size_bytes": _size(folder, "model_int8.onnx"),
        "file_ir": "model_int8.xml", "size_bytes_ir": _size(folder, "model_int8.xml", "model_int8.bin"),
        # onnx: as onnxruntime deploys the file on this CPU (fused int8 kernels); onnx_reference: operator by operator
        "agreement": {"onnx": agreement(q_logits, ort_logits, flips_of=ort_reference),
                      "onnx_reference": agreement(q_logits, ort_reference),
                      "openvino": agreement(q_logits, ov_logits, flips_of=ort_reference),
                      "tolerance": INT8_AGREEMENT_TOLERANCE,
                      "int8_saturates": saturates},
    }
    quantized = "pruned" if pruned["pruned"] else "fp32"
    if (off := int8_file_tolerance_text(judged, quantized=quantized, float_file=source[0])) is not None:
        log.warning("%s: %s", folder.name, off)
    if warning := int8_agreement_warning(int8["agreement"], saturates=saturates, headline=headline):
        log.warning("%s: %s (int8 test_acc from: %s)", folder.name, warning, headline)

    host: dict[str, Any] = {}
    spreads: dict[str, float] = {}
    busy = None
    if cfg.measure_latency:
        host, spreads = measure_host(folder, model, threads=cfg.latency_threads, shape=shape,
                                     pruned="pruned_onnx" in files)
        if (busy := busy_host_timing(spreads)) is not None:
            log.warning("%s: host latencies timed on a busy machine (%s)", folder.name, busy)
        fp32["host_latency_ms"] = {"torch_eager": host["torch_fp32"], "openvino": host["openvino_fp32"],
                                   "openvino_bound_io": host["openvino_fp32_bound"]}
        if "pruned_onnx" in files:
            pruned["host_latency_ms"] = {"openvino": host["openvino_fp32_pruned"]}
        int8["host_latency_ms"] = {"openvino": host["openvino_int8"], "openvino_bound_io": host["openvino_int8_bound"]}

    metrics = {
        "format": FORMAT,
        "fingerprint": fingerprint(cfg, hw, folder, data.name, largest_split=max(whole.values())),
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),  # with its UTC offset (+00:00)
        "hw": hw.name, "hw_precision": hw.precision, "dataset": data.name, "metric": data.metric.value,
        "config": json.loads(json.dumps(dataclasses.asdict(cfg), default=str)),
        # the images every accuracy and interval here is of (compress.eval_images), of those the splits hold
        # and, where the test split was cut, which of its images (positions in its order, test_predictions.csv's index)
        "eval_images": {"val": len(data.val), "val_of": whole["val"], "test": len(test), "test_of": whole["test"],
                        **({} if test_indices is None else {"test_indices": test_indices.tolist()})},
        "fp32": fp32, "pruned": pruned, "int8": int8, "files": files,
        # of the files this compression wrote (model.onnx is the search's): to check a copy, and a rerun checks them
        "file_sha256": {name: file_sha256(folder / name) for name in sorted(set(files.values()) - {"model.onnx"})},
        # of the model.pt compressed: a search removes these files once the member's model.pt holds other weights (a
        # final training again), which they no longer describe (nas.results._retire_stale_compression)
        "weights_sha256": weights,
        # what the files take and give, beside them: a checkpoint compressed alone has no search's metrics.json
        **contract,
        "host_latency": {**host, "how": (f"batch 1, {counted(cfg.latency_threads, 'thread')}, interleaved rounds, median of "
                                         "block medians; OpenVINO CPU with INFERENCE_PRECISION_HINT=f32 (int8 layers run in int8); "
                                         "*_bound: pre-bound input/output tensors (no Python call overhead)"),
                         "machine": machine_info(),
                         # each timing's (p90 - p10) / median of its single calls, as metrics.json's
                         # measured_latency_spread; far above NOISY_SPREAD the machine was busy, and `busy` says so in
                         # words (None when quiet; files from before 2026-12-07 have neither)
                         "spread": spreads, "busy": busy,
                         # of the model.onnx timed here: the report relates this time to the front table's timing of
                         # the same file (metrics.json's measured_latency_file), a separate session
                         "model_onnx_sha256": file_sha256(fp32_onnx)} if host else None,
        "summary": {
            "test_acc_fp32": fp32["test_acc"], "test_acc_int8": int8["test_acc"],
            "acc_drop_pt": (fp32["test_acc"] - int8["test_acc"]) * 100.0,
            # the whole way, pruning included: what shipping the int8 file instead of model.onnx changes
            "int8_vs_fp32": paired_change(fp32_file_logits.argmax(1), headline_logits.argmax(1), test.y.numpy()),
            "latency_ms_fp32": fp32["latency_ms"], "latency_ms_int8": int8["latency_ms"],
            "size_ratio": fp32["size_bytes"] / max(1, int8["size_bytes"]),
            "speedup_openvino_int8_vs_fp32": host["openvino_fp32"] / host["openvino_int8"] if host else None,
            "speedup_openvino_int8_vs_torch_fp32": host["torch_fp32"] / host["openvino_int8"] if host else None,
        },
        "seconds": time.perf_counter() - started,
    }
    atomic_write_json(folder / METRICS_FILE, metrics)
    return metrics


# What each of `measure_host`'s timings ran, in words (the busy-machine line names the widest one)
HOST_TIMED = {"torch_fp32": "torch eager fp32", "openvino_fp32": "OpenVINO model.onnx",
              "openvino_int8": "OpenVINO model_int8.xml", "openvino_fp32_bound": "OpenVINO model.onnx, pre-bound I/O",
              "openvino_int8_bound": "OpenVINO model_int8.xml, pre-bound I/O",
              "openvino_fp32_pruned": "OpenVINO model_pruned.onnx"}


def busy_host_timing(spreads: dict[str, float]) -> str | None:
    """The busy-machine caveat of a compression's host timings (`measure_host`'s spreads): the widest timing's, in the
    words `nas.latency.measure.busy_timing` gives the front table's 'measured on host', naming which it is; None when
    every timing was quiet (or none was made)."""
    if not spreads:
        return None
    name = max(spreads, key=spreads.__getitem__)
    busy = busy_timing(spreads[name])
    return None if busy is None else f"widest, {HOST_TIMED.get(name, name)}: {busy}"


def measure_host(folder: Path, model: torch.nn.Module, *, threads: int, shape: tuple[int, ...],
                 pruned: bool) -> tuple[dict[str, float], dict[str, float]]:
    """Median batch-1 latency (ms) on this host of torch eager fp32 and the exported files, timed in
    the same interleaved rounds so machine noise hits them alike, and each timing's spread
    (`nas.latency.measure.timing_spread`: (p90 - p10) / median of its single calls), by the same names.

    OpenVINO is timed twice: called with the input on every call (`openvino_fp32`, `openvino_int8`: what a
    Python caller pays) and with pre-bound input/output tensors (`*_bound`: what a C++ deployment pays).
    On sub-millisecond models the Python call overhead is a large, precision-independent share.
    """
    names = ["torch_fp32", "openvino_fp32", "openvino_int8", "openvino_fp32_bound", "openvino_int8_bound"]
    runners = [
        torch_runner(model, threads=threads),
        *(make_runner(folder / name, runtime="openvino", precision=precision, threads=threads, input_shape=shape,
                      bound_io=bound)
          for bound in (False, True) for name, precision in (("model.onnx", "fp32"), ("model_int8.xml", "int8"))),
    ]
    if pruned:
        names.append("openvino_fp32_pruned")
        runners.append(make_runner(folder / "model_pruned.onnx", runtime="openvino", precision="fp32", threads=threads,
                                   input_shape=shape))
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    timings = time_runners(runners, [x] * len(runners))
    return {name: t[0] for name, t in zip(names, timings)}, {name: timing_spread(t) for name, t in zip(names, timings)}


def _io_contract(folder: Path, model: torch.nn.Module, data: Dataset, augment: DataConfig | None) -> dict[str, Any]:
    """compressed_metrics.json's "input" and "output" (`nas.checkpoint.io_contract`): the images made as `augment` makes
    them, else as the search's metrics.json beside the checkpoint says; {} when neither says how."""
    if augment is None:
        return recorded_io_contract(folder)
    arch = model.arch
    return io_contract(arch=arch, classes=data.classes, mean=model.pixel_mean.flatten().tolist(),
                       std=model.pixel_std.flatten().tolist(), background=augment.background,
                       preprocessing=preprocessing(augment, in_chans=arch.in_chans, img_size=arch.img_size),
                       image_counts=data.image_counts)


def recorded_io_contract(folder: Path) -> dict[str, Any]:
    """The "input" and "output" that the search's metrics.json in `folder` records (`nas.checkpoint.io_contract`);
    {} where it records none (a checkpoint from elsewhere) or cannot be read."""
    try:
        said = json.loads((folder / "metrics.json").read_text())
        return {"input": dict(said["input"]), "output": dict(said["output"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def select_members(members: list[dict[str, Any]], cfg: CompressConfig) -> list[dict[str, Any]]:
    """The Pareto members (pareto.json entries) `cfg.members` asks to compress."""
    mode = getattr(cfg.members, "value", cfg.members)
    if mode == "none":
        return []
    if mode == "top_k":
        ranked = sorted(members, key=lambda m: -(m.get("val_acc") or 0.0))
        return ranked[: cfg.top_k]
    return list(members)


def _disk_failure(e: BaseException) -> bool:
    """Whether `e`, or an exception it was raised from or during, is the disk refusing writes (full, over quota,
    read-only, a file over the size limit, failing: `nas.errors.DISK_ERRNOS`): runtimes wrap the OSError of a failed
    save in exceptions of their own."""
    return disk_failure(e) is not None


def with_member_input(folder: Path, kept: dict[str, Any], data: Dataset) -> dict[str, Any]:
    """`kept`, the compressed_metrics.json of a compression of `folder` that a rerun reuses, with its input record
    (`io_contract`) made the member's metrics.json's, and written (atomically), where that record is known to describe
    the same images: it differs only in the image counts (input.images, not_square, transparent, grey), which `kept`
    lacks (written before they were kept) or has the same, and in the wording of input.preprocessing (a version that
    words the same steps more exactly: "round(value / 257)" for "value / 257"), and the counts are those of the data
    loaded now (`data.image_counts`: this run's data, which a search resuming its study checked to be the study's images).
    `kept` unchanged elsewhere. A reused record kept its hedge in compress.predict ("whether ... were square is not
    recorded") until compressed again, and its older wording beside the member's new one, where README says both files
    hold the same input record."""
    said = kept.get("input")
    if not isinstance(said, dict) or data.image_counts is None:
        return kept
    try:
        member_record = json.loads((folder / "metrics.json").read_text())
        member = member_record["input"]
        counts = recorded_image_counts(member, file=folder / "metrics.json")
    except (OSError, ValueError, KeyError, TypeError, CheckpointError):  # no record of the member's to vouch for them
        return kept
    # a member's record from before the grey count (None) is of these images where its other counts are the loaded ones
    loaded = data.image_counts if counts is None or counts.grey is not None else data.image_counts._replace(grey=None)
    if counts != loaded or not isinstance(member, dict) or member == said:
        return kept  # another load's record, or nothing to change
    images = lambda record: {k: v for k, v in record.items() if k not in (*IMAGE_COUNT_KEYS, "preprocessing")}  # noqa: E731
    if (images(member) != images(said) or member_record.get("output") != kept.get("output")
            or any(k in said and said[k] != member.get(k) for k in IMAGE_COUNT_KEYS)):
        return kept  # another contract: not known to be the compression's images
    kept = {**kept, "input": dict(member)}
    atomic_write_json(folder / METRICS_FILE, kept)
    return kept


def compress_front(run_dir: Path, members: list[dict[str, Any]], *, hw: HardwareProfile, data: Dataset,
                   cfg: CompressConfig, augment: DataConfig | None = None, eval_batch_size: int = 512,
                   memory_budget_gb: float | None = None) -> dict[str, dict]:
    """Compress the selected Pareto members of a run folder (skipping those already done with the
    same settings). A member whose compression fails gets a compressed_metrics.json holding the error
    and the others go on, unless the disk failed (full, read-only): that stops it. Members not selected lose stale compressed files. Returns metrics by arch_id.

    A member that another process is compressing (`python -m compress.run` of it) is waited for, each member under its
    `nas.checkpoint.member_lock`, and then judged: that compression, when made with the same settings, is reused rather
    than made again. Skipped instead, the member's int8 columns would be missing or another job's."""
    chosen = {m["arch_id"] for m in select_members(members, cfg)}
    out: dict[str, dict] = {}
    for m in members:
        with member_lock(run_dir / m["checkpoint"], doing="compressing it"):
            _compress_member(run_dir, m, chosen=chosen, out=out, hw=hw, data=data, cfg=cfg, augment=augment,
                             eval_batch_size=eval_batch_size, memory_budget_gb=memory_budget_gb)
    return out


def _compress_member(run_dir: Path, m: dict[str, Any], *, chosen: set[str], out: dict[str, dict], hw: HardwareProfile,
                     data: Dataset, cfg: CompressConfig, augment: DataConfig | None, eval_batch_size: int,
                     memory_budget_gb: float | None) -> None:
    """`compress_front`'s work on one member `m`, its result put into `out`."""
    folder = run_dir / m["checkpoint"]
    if m["arch_id"] not in chosen:
        for name in COMPRESSED_FILES:
            (folder / name).unlink(missing_ok=True)
        return
    fp = fingerprint(cfg, hw, folder, data.name, largest_split=max(len(data.val), len(data.test)))
    recorded = (read_compressed_metrics(folder) or {}).get("fingerprint")
    if recorded != fp and recorded == fingerprint(cfg, hw, folder, data.name):
        fp = recorded  # hashed before a cap no split reaches counted as null: the same compression, still reusable
    if gone := convert_ir_again(folder, fp):
        log.info("%s: %s gone: converted again from model_int8.onnx (the compression is kept, not redone)",
                 m["arch_id"], " and ".join(gone))
    if is_up_to_date(folder, fp):
        out[m["arch_id"]] = with_member_input(folder, read_compressed_metrics(folder) or {}, data)
        return
    if (otherwise := compressed_for_another_job(folder, cfg=cfg, hw=hw)) is not None:
        # the files it replaces may be the user's (python -m compress.run of the member for another chip)
        log.warning("%s was compressed %s; compressing it again for this run (hw=%s) replaces those files (to keep "
                    "both, compress a copy of its folder with python -m compress.run)", m["arch_id"], otherwise,
                    hw.name)
    log.info("compressing %s (%s)", m["arch_id"], m.get("summary", ""))
    try:
        out[m["arch_id"]] = compress_checkpoint(folder, hw=hw, data=data, cfg=cfg, augment=augment,
                                                eval_batch_size=eval_batch_size, memory_budget_gb=memory_budget_gb)
    except Exception as e:  # noqa: BLE001 - runtimes raise their own exception types
        if _disk_failure(e):
            # Not the member's failure: every later member would prune and recover for minutes and then fail
            # the same way, each recorded as a compression error. The run stops instead, naming the disk.
            raise
        # One member's failure (an unreachable prune target, a runtime that refuses a graph) is a
        # result to report, not a reason to lose the others.
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        log.warning("compressing %s failed: %s", m["arch_id"], reason)
        out[m["arch_id"]] = {"format": FORMAT, "fingerprint": fp, "error": reason, "hw": hw.name}
        # the record of the error replaces the earlier compression's, so its files go (compress_checkpoint put them
        # back): none would be described, and compress.predict would run them unchecked
        for name in COMPRESSED_FILES:
            if name != METRICS_FILE:
                (folder / name).unlink(missing_ok=True)
        atomic_write_json(folder / METRICS_FILE, out[m["arch_id"]])
    s = out[m["arch_id"]].get("summary")
    if s:
        moved = changed_images_text(s.get("int8_vs_fp32"))
        # named where it is not OpenVINO's, read as the report reads it (the search, its caller, has nas.report loaded)
        from nas.report import int8_test_acc_source

        source = int8_test_acc_source(out[m["arch_id"]].get("int8"))
        cut = scored_cut_text(out[m["arch_id"]].get("eval_images"))
        log.info("%s: test acc fp32 %.2f%% -> int8 %.2f%%%s%s%s; %s", m["arch_id"], 100.0 * s["test_acc_fp32"],
                 100.0 * s["test_acc_int8"], cut, moved, "" if source == "openvino" else f"; int8 test_acc_source: {source}",
                 predicted_latency_text(out[m["arch_id"]]))


def changed_images_text(change: Any) -> str:
    """' (1,204 test images now wrong, 1,187 now right, p=0.74)': a member's log line's count of the test images whose
    verdict shipping the int8 file instead of model.onnx changes (its summary's `int8_vs_fp32`), with thousands
    separators as the report counts them; '' for files written before 2026-12-05, which lack it."""
    if not isinstance(change, dict):
        return ""
    return (f" ({counted(change['now_wrong'], 'test image')} now wrong, {change['now_right']:,} now right, "
            f"{format_p(change['p_value'])})")


def scored_cut_text(eval_images: Any) -> str:
    """' (on 1,000 of the 10,000 test images: compress.eval_images)': a member's log line's note that its accuracies are
    of part of the test split (compressed_metrics.json's `eval_images`), counted as the report counts them ('1000 of
    the 10000' beside its '1,000 of the 10,000'); '' when every test image was scored or the file predates the field."""
    scored = eval_images if isinstance(eval_images, dict) else {}
    if not scored.get("test", 0) < scored.get("test_of", 0):
        return ""
    return f" (on {scored['test']:,} of the {scored['test_of']:,} test images: compress.eval_images)"


def predicted_latency_text(metrics: dict[str, Any]) -> str:
    """The predicted latencies of a compressed_metrics.json in words: the chip's at its own precision (hw.precision)
    for the unpruned and the pruned architecture. 'predicted 0.252 -> 0.240 ms' beside 'fp32 -> int8' read as the
    float model's time against the int8 file's, which neither is (`predict_latency` knows no number format)."""
    s = metrics["summary"]
    # hw_precision is absent from files of older versions: the chip is named without it
    chip = f"{metrics.get('hw')} at its own precision" + (f" ({metrics['hw_precision']})" if metrics.get("hw_precision") else "")
    if (metrics.get("pruned") or {}).get("pruned"):
        return (f"predicted on {chip}: {s['latency_ms_fp32']:.3f} ms unpruned -> {s['latency_ms_int8']:.3f} ms pruned "
                "(the int8 file's architecture)")
    return f"predicted on {chip}: {s['latency_ms_int8']:.3f} ms (not pruned: the int8 file's architecture is model.onnx's)"
