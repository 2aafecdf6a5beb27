"""int8 quantization with NNCF: post-training quantization, then QAT with distillation if needed.

What was measured on these machines (../shared/notes/compression.md) and shapes this wrapper:
- NNCF JIT-compiles a C++ extension on first use (~40 s) under a 60 s default timeout: the timeout is
  lifted here (`NNCF_EXTENSION_LOAD_TIMEOUT=0`) and `make setup` builds the extension once.
- torch loads that extension under a lock *file* (`lock` in its build folder) that a process killed while loading
  leaves behind, and every later load then waits on it forever (with the timeout lifted, without a word):
  `load_nncf_extension` loads it under a kernel lock of the toolkit's own, which dies with its process, and removes
  such a leftover.
- Where that build fails (no compiler, missing Python headers, a full disk), NNCF falls back on its torch functions,
  which make int8 calibration and QAT slower, with a warning below the log level set here: `load_nncf_extension`
  says so in one line of its own.
- nncf <= 3.4 raises `IndexError` in fast bias correction for graphs where a conv output feeds a
  BatchNorm and another consumer. This project's blocks do not build that pattern (every stem and
  downsample conv feeds only its own norm), but a caught `IndexError` retries without bias
  correction and says so in the result instead of failing.
- `nncf.ModelType.TRANSFORMER` is *not* used, and activations are forced per-tensor: per-channel
  activation scales (TRANSFORMER mode, and NNCF's choice for some depthwise inputs) are rejected by
  standard QDQ consumers (onnxruntime's QLinearConv: "input zero point must be a scalar").
- The top-level module must not be an `nn.Sequential` (MetaFormer is not).
- Calibration runs on one torch thread (`CALIBRATION_THREADS`): NNCF then fed images one at a time through its
  Python hooks, where a second intra-op thread only adds OpenMP hand-offs to ops on a single image. Against the
  search's 2 threads: 2.3-3.9x faster, int8 models the same bit for bit or 1 of 10,000 test images apart
  (../experiments/results/calibration_threads.md). It feeds them in batches now (`CALIBRATION_BATCH_SIZE`), with
  NNCF's batchwise statistics: each image's minimum and maximum are still taken on their own and averaged over the
  images, as one at a time (without that setting NNCF takes them over each batch, and the ranges come out wider;
  ../experiments/results/calibration_batches.md compares the two feedings).
- Conv + BatchNorm pairs (`norm="bn"`: the stem and downsample convs) are quantized as built, not folded first.
  Measured 2026-12-07 (AMD EPYC, 2 cores, avx512_vnni; nncf 3.4.0, onnxruntime 1.31.1, OpenVINO 2026.4.1) on two
  bn/relu models (resnet-S, convformer-S, 1 epoch on 12,000 Fashion-MNIST images, 300 calibration images):
  model_int8.onnx keeps a float BatchNormalization between each such Conv and its QuantizeLinear (3 per 3-stage model,
  besides the 7 block and head norms, which follow no conv). onnxruntime (ORT_ENABLE_ALL)
  runs those 3 convs as float Conv and the others as QLinearConv; OpenVINO runs every conv as u8 either way (it merges
  the BatchNorms into the convs and its quantize ranges). Folding them into their convs (eval-mode
  `fuse_conv_bn_eval`) on the copy NNCF quantizes removed the 3 BatchNormalization nodes, but onnxruntime still ran
  those 3 convs as float Conv (the cause, found later: on x86 it fuses only uint8 activations and converts an int8
  QuantizeLinear to uint8 only where it feeds a single DequantizeLinear; these convs' outputs feed two nodes, so
  their output stayed int8 while their input became uint8; `compress.export` now folds such BatchNorms in the ONNX
  file, keeping bias correction, and writes activations as uint8), and a folded conv's
  output then feeds a block's BatchNorm and its residual add: NNCF's fast bias correction raised the IndexError
  above on both models and they were quantized without it. Test accuracy from the file moved, down on one model and
  up on the other, about as the unfolded models quantized without bias correction moved (a one-off probe, not a
  committed benchmark); onnxruntime's batch-1 latency was slightly lower, OpenVINO's unchanged. Not worth the lost
  bias correction.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from nas.checkpoint import flock_waiting
from nas.config import DataConfig, QuantizeConfig
from nas.data import Dataset, Split
from nas.errors import ConfigError, counted, module_logger
from nas.report import drop_text
from nas.train import evaluate, subset_split
from nas.telemetry import openvino_telemetry_off

from compress.recover import distill

# NNCF_EXTENSION_LOAD_TIMEOUT is lifted in `_nncf`, not as this module is imported: NNCF reads it as it loads its
# extension, and run_compress imports this module before it records the caller's environment to put back, so a notebook
# kept the setting for good.
log = module_logger(__name__)  # lines naming a file that is not UTF-8 written readably (ReadableNames)
# torch intra-op threads while NNCF calibrates (statistics and bias correction), whatever the caller runs on (the
# search's train.threads). One also makes the int8 model independent of that setting: the thread count changes the
# float summation order of a convolution, and so the last bits of NNCF's statistics, scales and corrected biases.
CALIBRATION_THREADS = 1
# Calibration images per item NNCF runs through the model: each item is one pass of NNCF's Python hooks, whose overhead
# per pass outweighed the convolutions of one small image. The ranges are estimated per image all the same
# (`batchwise_statistics`, set in `quantize_ptq`), and every calibration image is used whatever the batch size.
CALIBRATION_BATCH_SIZE = 32


def _nncf():
    # Its extension build may take longer than NNCF's 60 s default. Set at each use: a run from Python puts the variable
    # back as its caller had it (`nas.train.caller_settings_kept`), and NNCF reads it as it first loads its extension,
    # which a later run in the same process may be the first to do.
    os.environ.setdefault("NNCF_EXTENSION_LOAD_TIMEOUT", "0")
    with openvino_telemetry_off():  # NNCF imports openvino, whose import (the first in a process) sends a message
        import nncf

    # The logger's level only: nncf.set_log_level also sets every handler on NNCF's logger to it, and so silences below
    # ERROR any handler a caller attached there (pytest's capture, a tool's own) for every other logger it serves.
    logging.getLogger("nncf").setLevel(logging.ERROR)
    load_nncf_extension()
    return nncf


# Whether this process has loaded NNCF's extension through `load_nncf_extension`: NNCF keeps the loaded module for the
# process, so the lock is taken once, not on every quantization.
_extension_loaded = False


def load_nncf_extension() -> None:
    """Load NNCF's CPU quantization extension (building it the first time), so that a `lock` file left in its build
    folder by a process killed while loading it does not hang this one.

    torch's `cpp_extension.load` takes that folder's `lock` file on every load and waits, with no end and no message
    under `NNCF_EXTENSION_LOAD_TIMEOUT=0`, for it to go. Here the load runs holding an `flock` on a file beside that
    folder (`<torch version>.metaformer-nas.lock`), which the kernel releases when its process dies however it dies:
    every toolkit process holds it while it loads, so a `lock` found by its holder was left by a dead process, and is
    removed with a warning naming it; one that cannot be removed (another user's, in a folder this user cannot write)
    is a `ConfigError` naming it and what to do. A second process meanwhile waits for the first to finish (a first
    build), saying which (pid, and since when it loads; `_locked_guard`). A process outside the toolkit loading the
    extension at that moment (your own script calling NNCF) holds no such lock: its `lock` would be taken for a
    leftover. Where the folder cannot be made or written (a
    read-only home or TORCH_EXTENSIONS_DIR) or its file system has no `flock`, the load is NNCF's alone, which falls
    back on its slower torch functions where it cannot build. A load that NNCF stops waiting for
    (`NNCF_EXTENSION_LOAD_TIMEOUT` set to seconds, or Ctrl-C) goes on in NNCF's thread: the lock is held until its
    `lock` goes. A build that fails (NNCF then runs its slower torch functions in this process) is a warning line
    naming the build folder, the compiler's error and what to do; the next process tries the build again. Later
    calls in the process return at once.
    """
    global _extension_loaded
    if _extension_loaded:
        return
    with openvino_telemetry_off():  # NNCF imports openvino, whose import (the first in a process) sends a message
        from nncf.torch.quantization.extensions import QuantizedFunctionsCPU, QuantizedFunctionsCPULoader
        from nncf.torch.quantization.reference import ReferenceQuantizedFunctions

    try:
        build_dir: Path | None = Path(QuantizedFunctionsCPULoader.get_build_dir())  # made here where it is not there
    except OSError:
        build_dir = None
    # No guard (a read-only home or TORCH_EXTENSIONS_DIR, where the build folder cannot be made or written; a file
    # system without flock): the load is NNCF's as without this function, which falls back on its torch functions where
    # it cannot build. Raising there instead stopped every compression.
    fd = None if build_dir is None else _locked_guard(build_dir)
    try:
        if fd is not None and build_dir is not None:
            leftover = build_dir / "lock"
            try:
                leftover.unlink()
            except FileNotFoundError:
                pass
            except OSError as e:  # another user's, in a folder this user cannot write: torch would wait on it forever
                raise ConfigError(f"{leftover}: left by a process that was stopped while loading NNCF's extension, and "
                                  f"it cannot be removed ({e.strerror or e}); delete it by hand (as its owner), or set "
                                  "TORCH_EXTENSIONS_DIR to a folder of your own, where torch builds the extension once") from None
            else:
                log.warning("%s: left by a process that was stopped while loading NNCF's extension; removed", leftover)
        # Any function: the first request loads the whole extension, which NNCF then keeps for the process.
        with _nncf_fallback_reasons() as reasons:
            forward = QuantizedFunctionsCPU.get("Quantize_forward")
        _extension_loaded = True
        if forward is ReferenceQuantizedFunctions.Quantize_forward:  # NNCF's torch functions: the build failed
            log.warning(_fallback_message(build_dir, reasons))
    except BaseException as e:
        # Not for the leftover that cannot be removed (ConfigError above): no load runs, and a held flock would make
        # this process's next load (the next member's) wait on itself.
        if (fd is not None and build_dir is not None and not isinstance(e, ConfigError)
                and (build_dir / "lock").exists()):
            # NNCF's timeout (NNCF_EXTENSION_LOAD_TIMEOUT set to seconds) or a Ctrl-C: NNCF's thread goes on loading,
            # under torch's `lock`. The flock is held until that goes: released now, the next load (another worker's,
            # or this process's own for the next member) took that live `lock` for a leftover and built alongside it.
            threading.Thread(target=_close_when_gone, args=(fd, build_dir / "lock"), daemon=True,
                             name="nncf-extension-lock").start()
            fd = None
        raise
    finally:
        if fd is not None:
            _release(fd)


# How NNCF's loader begins the warning it logs when the build fails, before falling back on its torch functions
# (nncf.torch.quantization.extensions.QuantizedFunctionsCPULoader.load); the exception follows "Reason: ".
_NNCF_FALLBACK = "Could not compile CPU quantization extensions"
# The command that shows NNCF's own warning, with the whole build output, outside the toolkit (which hides it).
_BUILD_LOG_COMMAND = ("python -c \"from nncf.torch.quantization.extensions import QuantizedFunctionsCPU as f; "
                      "f.get('Quantize_forward')\"")


@contextlib.contextmanager
def _nncf_fallback_reasons() -> Iterator[list[str]]:
    """The reasons NNCF gives for falling back on its torch functions while the block runs (its warning's "Reason: "
    part), caught whatever NNCF's log level; what NNCF's logger shows is left as it was."""
    nncf_log = logging.getLogger("nncf")
    shown = nncf_log.getEffectiveLevel()
    reasons: list[str] = []

    def catch(record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_NNCF_FALLBACK):
            reasons.append(message.partition("Reason: ")[2])
        return record.levelno >= shown  # what the level set before let through, and nothing more

    before = nncf_log.level
    nncf_log.addFilter(catch)
    # NNCF's warning is made only where its logger's level lets it (`_nncf` sets ERROR): lowered meanwhile, the filter
    # above still drops what the level would have.
    nncf_log.setLevel(min(shown, logging.WARNING))
    try:
        yield reasons
    finally:
        nncf_log.setLevel(before)
        nncf_log.removeFilter(catch)


def _short_reason(reason: str) -> str:
    """The line of a failed build's reason that says what went wrong, cut to 200 characters: the compiler's first
    `error:` line, else the first line a failed ninja step printed (`FAILED: <target>`, its command, then its output:
    "/bin/sh: 1: c++: not found"), else the reason's first line (a ninja build's starts with a whole compile command)."""
    lines = [line.strip() for line in reason.splitlines() if line.strip()]
    if not lines:
        return "NNCF gave no reason"
    line = next((line for line in lines if re.search(r"\berror:", line)), None)
    if line is None:
        failed = next((i for i, line in enumerate(lines) if line.startswith("FAILED:")), None)
        line = lines[failed + 2] if failed is not None and failed + 2 < len(lines) else lines[0]
    return line if len(line) <= 200 else line[:197] + "..."


def _fallback_message(build_dir: Path | None, reasons: list[str]) -> str:
    """The one warning line for NNCF's extension that could not be built in `build_dir`."""
    where = str(build_dir) if build_dir is not None else "NNCF's extension build folder"
    why = f" ({_short_reason(reasons[0])})" if reasons else ""
    return (f"{where}: NNCF's C++ extension could not be built{why}: int8 calibration and QAT run on NNCF's slower "
            "torch functions in this process. Install a C++ compiler (g++) and Python's development headers (or free "
            f"disk space); the next process builds it again. NNCF's whole build output: {_BUILD_LOG_COMMAND}")


def _close_when_gone(fd: int, lock: Path) -> None:
    """Close `fd` (releasing its flock) once `lock` is gone: the load that holds it has ended."""
    try:
        while lock.exists():
            time.sleep(0.2)
    finally:
        _release(fd)


LOAD_NAMED_SECONDS = 5.0
"""A calibration whose load of NNCF (`_nncf`: its import, its extension's build, a wait for another process's load)
took this long or longer says how much of its seconds that was."""

# How often a load waiting for another process's tries the toolkit's flock again (and reads again who holds it).
_GUARD_POLL_SECONDS = 0.2


def _guard_holder(fd: int) -> tuple[int, float] | None:
    """(pid, time it took the lock) of the process holding the flock on `fd`'s file, as it wrote them there
    (`_note_holder`); None where the file says nothing readable (not written yet, or by an older toolkit)."""
    try:
        pid, since = os.pread(fd, 64, 0).decode("ascii").split("\n", 1)[0].split()
        holder = int(pid), float(since)
        # a process killed while holding the flock left its record: named only while that process is there
        os.kill(holder[0], 0)
    except PermissionError:  # another user's process, alive
        pass
    except (OSError, ValueError):
        return None
    return holder


def _note_holder(fd: int) -> None:
    """Write this process's pid and the time into the flocked file of `fd`, for a waiting process to name."""
    record = f"{os.getpid()} {time.time():.0f}\n".encode("ascii")
    try:
        # written over the last holder's, then cut to length: a reader meanwhile sees a whole first line
        os.pwrite(fd, record, 0)
        os.ftruncate(fd, len(record))
    except OSError:  # a full disk: the load goes on, a waiter only names no process
        pass


def _release(fd: int) -> None:
    """Close `fd`, releasing its flock, its record (`_note_holder`) cleared first: a later holder that writes none (a
    toolkit before it) is not named by it."""
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    os.close(fd)


def _waiting_message(guard: Path, holder: tuple[int, float] | None) -> str:
    if holder is None:
        return f"waiting for another process to finish loading NNCF's extension ({guard})..."
    pid, since = holder
    return (f"waiting for another process (pid {pid}, loading since {time.strftime('%H:%M:%S', time.localtime(since))})"
            f" to finish loading NNCF's extension ({guard})...")


def _locked_guard(build_dir: Path) -> int | None:
    """A descriptor holding the `flock` beside `build_dir` that `load_nncf_extension` loads under, waited for while
    another process holds it; None where the file cannot be opened or locked. The holder writes its pid and the time
    into the file: a waiting load names it, and names the next one where another process takes its turn first (each
    may build the extension anew: a checkout reached by another path gives torch other include folders, which ninja
    rebuilds for), so that a wait of several builds does not read as one process stuck since the first line."""
    guard = build_dir.with_name(f"{build_dir.name}.metaformer-nas.lock")
    try:
        fd = os.open(guard, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return None
    try:
        flock_waiting(fd, holder=_guard_holder, waiting=lambda who: _waiting_message(guard, who),
                      poll_seconds=_GUARD_POLL_SECONDS, logger=log)
    except BaseException as e:  # no lock (or Ctrl-C while waiting): the descriptor closed all the same
        os.close(fd)
        if isinstance(e, OSError):
            return None
        raise
    _note_holder(fd)
    return fd


@contextlib.contextmanager
def nncf_progress_hidden() -> Iterator[None]:
    """NNCF's progress bars hidden while the block runs, as it was after. `_nncf`'s log level does not reach them: NNCF
    draws them with rich on rich's shared console ("Statistics collection", "Applying Fast Bias correction": two per
    quantized model, which on a log or a pipe stay as two lines each), so that console is made quiet meanwhile.
    `quantize_ptq` runs NNCF inside it: its callers (the compression of each member, `nas.latency.profile`'s int8
    exports) say their own lines per step or per model."""
    import rich

    console = rich.get_console()
    before = console.quiet
    console.quiet = True
    try:
        yield
    finally:
        console.quiet = before


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set to `n` inside the block, the caller's restored after it (even on error)."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def quantize_ptq(model: nn.Module, calibration: Split, *, size: int, seed: int = 0,
                 announce: str | None = None) -> tuple[nn.Module, str]:
    """NNCF int8 PTQ of a copy of `model` from `size` calibration images; returns (model, note).

    Images are fed in batches of at most `CALIBRATION_BATCH_SIZE`, as nearly equal in size as they can be, with NNCF's
    batchwise statistics: each image's range is taken on its own, as fed one at a time. NNCF runs on
    `CALIBRATION_THREADS` torch thread(s), with its progress bars hidden (`nncf_progress_hidden`) and its telemetry
    sending nothing unless the user opted in (`nas.telemetry.openvino_telemetry_off`). `announce`: log a
    line as the calibration starts (how many images, on what) and one with its seconds as it ends, each led by
    `announce` ('' for no lead); None logs nothing, for a caller that says its own line per model
    (`nas.latency.profile`'s int8 exports).
    """
    subset = subset_split(calibration, size, seed=seed)
    # Nearly equal batches, not full ones and a remainder: fast bias correction averages each batch's mean
    # activation, which weighs the images of a small last batch more than the others. Pixels scaled as iterate_batches.
    batches = -(-len(subset) // CALIBRATION_BATCH_SIZE)
    images = [part.float().div_(255.0) for part in (torch.tensor_split(subset.x, batches) if batches else ())]
    # With NNCF's progress bars hidden, a calibration of a minute on 2 cores would otherwise be a silent pause.
    lead = f"{announce}: " if announce else ""
    if announce is not None:
        log.info("%sint8 calibration on %s (NNCF, %s)...", lead, counted(len(subset), "training image"),
                 counted(CALIBRATION_THREADS, "torch thread"))
    started = time.perf_counter()
    # After the line above: a first build of NNCF's extension (`load_nncf_extension`) is part of the wait it announces.
    nncf = _nncf()
    loading = time.perf_counter() - started
    dataset = nncf.Dataset(images)
    note = ""
    adv = nncf.quantization.advanced_parameters
    # Per-tensor activation scales: NNCF picks per-channel ones for some depthwise inputs, which
    # onnxruntime's QLinearConv (and most NPU compilers) reject.
    activations = adv.QuantizationParameters(per_channel=False)
    try:
        # batchwise: NNCF sets it only for a torch DataLoader, and otherwise reduces each range over the whole batch
        params = adv.AdvancedQuantizationParameters(activations_quantization_params=activations,
                                                    batchwise_statistics=True)
        with _torch_threads(CALIBRATION_THREADS), nncf_progress_hidden(), openvino_telemetry_off():
            quantized = nncf.quantize(copy.deepcopy(model).eval(), dataset, subset_size=len(images), advanced_parameters=params)
    except IndexError:
        note = "fast bias correction failed (nncf IndexError); quantized without bias correction"
        log.warning(note)
        params = adv.AdvancedQuantizationParameters(activations_quantization_params=activations,
                                                    batchwise_statistics=True, disable_bias_correction=True)
        with _torch_threads(CALIBRATION_THREADS), nncf_progress_hidden(), openvino_telemetry_off():
            quantized = nncf.quantize(copy.deepcopy(model).eval(), dataset, subset_size=len(images), advanced_parameters=params)
    if announce is not None:
        # A load of NNCF that built its extension or waited for other processes' builds (minutes on a shared machine)
        # read as minutes of calibration: its share is named
        load_part = (f" ({loading:.1f} s of it loading NNCF: importing it, building its extension or waiting for "
                     "another process's load)" if loading >= LOAD_NAMED_SECONDS else "")
        log.info("%sint8 calibration done in %.1f s%s", lead, time.perf_counter() - started, load_part)
    return quantized.eval(), note


@dataclass(frozen=True)
class QuantizeResult:
    """An int8 (NNCF fake-quantized) torch model and how close it is to its fp32 source."""

    model: nn.Module
    fp32_val_acc: float
    ptq_val_acc: float
    val_acc: float  # after QAT when it ran, else = ptq_val_acc
    qat_epochs: int  # QAT epochs run (0: PTQ was within tolerance)
    qat_seconds: float
    max_acc_drop: float  # tolerance, accuracy points
    within_tolerance: bool
    note: str

    @property
    def acc_drop(self) -> float:
        """Validation accuracy points lost to int8, rounded as `quantize` judges them against `max_acc_drop` (`_drop_pt`):
        a drop `within_tolerance` is never above it."""
        return _drop_pt(self.fp32_val_acc, self.val_acc)


def _drop_pt(fp32: float, acc: float) -> float:
    """Val accuracy points lost from `fp32` to `acc`, rounded past float error: 0.179 - 0.176 is 0.30000000000000027
    points in floats, which ran QAT for a drop of exactly `max_acc_drop` (0.3: 3 of 1,000 val images), documented as
    allowed ("drops by more than")."""
    return round((fp32 - acc) * 100.0, 9)


def quantize(
    model: nn.Module,
    data: Dataset,
    cfg: QuantizeConfig,
    *,
    augment: DataConfig | None = None,
    seed: int = 0,
    fp32_val_acc: float | None = None,
    eval_batch_size: int = 512,
    label: str | None = None,
    source: str = "fp32",
) -> QuantizeResult:
    """PTQ; if the validation drop exceeds `cfg.max_acc_drop` points, QAT (distilled from `model`)
    one epoch at a time until within tolerance or `cfg.qat.epochs` are spent. The best epoch is kept.
    Validation runs in batches of `eval_batch_size` (`nas.memory.eval_batch_size` gives one that fits).
    The calibration is logged as it starts and ends, and the QAT's reason and each of its epochs, each line led by
    `label` where given (a compression's member).
    `source`: which model `model` is ("fp32", or "pruned" after pruning), named in the QAT log line beside its val
    accuracy.
    """
    fp32 = evaluate(model, data.val, batch_size=eval_batch_size, balanced=data.balanced) if fp32_val_acc is None else fp32_val_acc
    quantized, note = quantize_ptq(model, data.train, size=cfg.calibration_size, seed=seed, announce=label or "")
    ptq = evaluate(quantized, data.val, batch_size=eval_batch_size, balanced=data.balanced)
    best_acc, best_state = ptq, None
    epochs, seconds = 0, 0.0
    teacher = copy.deepcopy(model).eval()
    if (ptq_drop := _drop_pt(fp32, ptq)) > cfg.max_acc_drop and cfg.qat.epochs > 0:
        # why it runs, before minutes of it: `python -m compress.run`'s table showed QAT epochs without the reason
        # (the report gives it beside them, from compressed_metrics.json)
        log.info("%sQAT: PTQ lost %s pt of val accuracy (%s model before int8 %.2f%%, PTQ %.2f%%), more than "
                 "compress.quantize.max_acc_drop=%g: up to %s of QAT, until within it",
                 f"{label}: " if label else "", drop_text(ptq_drop, limit=cfg.max_acc_drop), source, 100.0 * fp32,
                 100.0 * ptq, cfg.max_acc_drop, counted(cfg.qat.epochs, "epoch"))
    while _drop_pt(fp32, best_acc) > cfg.max_acc_drop and epochs < cfg.qat.epochs:
        result = distill(quantized, teacher, data, replace(cfg.qat, epochs=1), augment=augment, seed=seed + 1 + epochs,
                         eval_batch_size=eval_batch_size)
        epochs += 1
        seconds += result.seconds
        # "fp32 18.60%" for a pruned model read as the table's fp32 row (the unpruned model's): the model is named
        # led by the member, as the QAT reason and the calibration lines are: the log of a run compressing several
        # members said whose they were but not whose epochs these were
        log.info("%sQAT epoch %d: val acc %.2f%% (%s model before int8 %.2f%%, PTQ %.2f%%)", f"{label}: " if label else "",
                 epochs, 100.0 * result.val_acc, source, 100.0 * fp32, 100.0 * ptq)
        if result.val_acc > best_acc:
            best_acc, best_state = result.val_acc, copy.deepcopy(quantized.state_dict())
    if best_state is not None:
        quantized.load_state_dict(best_state)
    quantized.eval()
    drop = _drop_pt(fp32, best_acc)
    within = drop <= cfg.max_acc_drop
    if not within:  # the drop printed to as many decimals as it takes to read as more than the allowance (0.304, not 0.30)
        # "... and QAT is disabled, more than max_acc_drop=0.0" hung the comparison on the wrong clause
        lost = f"int8 loses {drop_text(drop, limit=cfg.max_acc_drop)} pt of val accuracy"
        limit = f"more than compress.quantize.max_acc_drop={cfg.max_acc_drop:g}"
        said = (f"{lost} after {counted(epochs, 'QAT epoch')}, {limit}" if epochs
                else f"{lost}, {limit}; QAT is disabled (compress.quantize.qat.epochs=0)")
        note = "; ".join(filter(None, [note, said]))
    return QuantizeResult(quantized, fp32, ptq, best_acc, epochs, seconds, cfg.max_acc_drop, within, note)
