"""Proxy training of a candidate: short, seeded, deterministic; evaluation on a split."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import platform
import random
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.config import DataConfig, Precision, TrainConfig
from nas.data import Dataset, Split, iterate_batches
from nas.errors import counted, wrong_type
from nas.telemetry import openvino_telemetry_off


class TrainingDiverged(RuntimeError):
    """The loss of a candidate became NaN or infinite; the candidate is recorded as failed."""


@dataclass(frozen=True)
class TrainResult:
    """What proxy training of one candidate produced."""

    val_acc: float
    train_loss: float  # mean over the last epoch
    images_seen: int
    seconds: float
    precision: str = "fp32"  # arithmetic of the training step: fp32 | bf16
    epochs_done: int = 0
    judged_val_acc: float | None = None  # val acc when `judge` was asked (see `train_candidate`)
    stopped: bool = False  # `judge` stopped the training early; val_acc is then judged_val_acc

    @property
    def images_per_s(self) -> float:
        return self.images_seen / max(self.seconds, 1e-9)


def reset_autocast() -> None:
    """Turn CPU autocast off and undo any nesting left behind. A KeyboardInterrupt (Ctrl-C, SIGTERM) that strikes inside
    `torch.autocast`'s own enter/exit leaves it on: every later forward pass of the process would then run in bf16
    (evaluation, ONNX export), and training would reuse stale cached casts of updated weights."""
    while (level := torch.autocast_decrement_nesting()) > 0:
        pass
    if level < 0:  # there was none: put the counter back at 0
        torch.autocast_increment_nesting()
    torch.clear_autocast_cache()
    torch.set_autocast_enabled("cpu", False)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so a candidate trains identically every time."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


KEPT_ENVIRON = ("NNCF_EXTENSION_LOAD_TIMEOUT", "TORCHINDUCTOR_CACHE_DIR")
"""Environment variables a run sets for its own process: `compress.quantize` lifts NNCF's extension-load timeout, and
torch's first optimizer step (its import of torch._dynamo) writes Inductor's cache folder. `caller_settings_kept` puts
them back."""
KEPT_LOGGER_LEVELS = {"nncf": logging.INFO}
"""Loggers whose level a run changes (`compress.quantize` sets NNCF's to ERROR), each with the level the library gives
it on import: the one `caller_settings_kept` leaves where the library was first imported during the block."""


@contextlib.contextmanager
def caller_settings_kept() -> Iterator[None]:
    """torch's intra-op thread count and the random states of Python, NumPy and torch as they were before the block,
    restored after it (even on error or Ctrl-C); so are the environment variables of `KEPT_ENVIRON` and the levels of
    the loggers of `KEPT_LOGGER_LEVELS`. For library entry points (`nas.run_search`): training sets the threads
    to `train.threads` and seeds every generator per candidate, and a notebook's own work after the call ran on 2 threads
    and drew the same "random" numbers each time; NNCF's logger stayed at ERROR for the notebook's own quantization.
    `keep_freed_memory`'s malloc setting stays: glibc cannot be put back to adjusting its thresholds itself.
    OpenVINO's and NNCF's telemetry sends nothing during the block unless the user opted in
    (`nas.telemetry.openvino_telemetry_off`); the threads it started then are closed (`_openvino_telemetry_threads_closed`)."""
    threads = torch.get_num_threads()
    started_before = set(threading.enumerate())
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    environ = {name: os.environ.get(name) for name in KEPT_ENVIRON}
    # a logger not made yet is one whose library the block may import: it gets the library's own level back
    loggers = logging.Logger.manager.loggerDict
    levels = {name: loggers[name].level if isinstance(loggers.get(name), logging.Logger) else None
              for name in KEPT_LOGGER_LEVELS}
    try:
        with openvino_telemetry_off():
            yield
    finally:
        _openvino_telemetry_threads_closed(started_before)
        torch.set_num_threads(threads)
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        for name, value in environ.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for name, level in levels.items():
            if level is not None:
                logging.getLogger(name).setLevel(level)
            elif isinstance(loggers.get(name), logging.Logger):  # made during the block
                logging.getLogger(name).setLevel(KEPT_LOGGER_LEVELS[name])


def _openvino_telemetry_threads_closed(started_before: set[threading.Thread]) -> None:
    """Close the thread pool of OpenVINO's telemetry sender when its threads were all started after `started_before`
    was taken, and give the telemetry a new sender (which starts no thread until it sends), so later telemetry still
    goes out. Importing openvino and each `ov.convert_model` queue messages, where the user opted in (`openvino_telemetry_off`
    drops them otherwise, before any thread starts), to a `ThreadPoolExecutor`
    (`openvino_telemetry.utils.sender.TelemetrySender`, one per process) whose idle threads never end: a notebook
    found them (`ThreadPoolExecutor-2_0`, `_1`, ...), started by the compression's conversion, idle after `run_search`
    returned. Messages still queued are dropped, as the library's own `force_shutdown` (the `ovc` command's exit) drops
    them; one being sent is waited for (the library gives each send 3 s). A pool whose threads were there before the
    block is the caller's and is left as it is."""
    telemetry_module = sys.modules.get("openvino_telemetry")
    if telemetry_module is None:  # never imported: openvino was not, or runs without telemetry
        return
    try:
        telemetry = telemetry_module.Telemetry()  # the instance made on openvino's import; no arguments make none
    except Exception:  # none made yet (RuntimeError), or a version with another API: nothing of ours to close
        return
    sender = getattr(telemetry, "sender", None)
    executor = getattr(sender, "executor", None)
    threads = getattr(executor, "_threads", None)  # concurrent.futures' own record of the pool's threads
    if not threads or any(t in started_before for t in threads):
        return
    executor.shutdown(wait=True, cancel_futures=True)
    try:
        telemetry.sender = type(sender)()
    except Exception:  # a sender that needs arguments: the telemetry then sends nothing more, as after force_shutdown
        pass


def lr_at(step: int, total: int, *, base: float, warmup_frac: float) -> float:
    """Learning rate at `step` of `total`: linear warm-up, then cosine decay to zero."""
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return base * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return base * 0.5 * (1.0 + math.cos(math.pi * progress))


def subset_split(split: Split, size: int | None, *, seed: int) -> Split:
    """A fixed random subset of `size` examples (the whole split if None or larger)."""
    if size is None or size >= len(split):
        return split
    idx = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:size]
    return split.select(idx)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX512-BF16 or AMX); without it bf16 is emulated
    and slower than float32."""
    cpu = getattr(torch, "cpu", None)  # torch.cpu's probes are private API: treat their absence as "no"
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: Precision | str) -> str:
    """`auto` -> `bf16` on a CPU with native bf16, else `fp32`; `fp32`/`bf16` are kept as asked."""
    value = Precision(precision).value
    if value == "auto":
        return "bf16" if native_bf16() else "fp32"
    return value


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_MMAP_THRESHOLD_MAX = 32 * 2**20  # the largest mmap threshold glibc accepts on 64-bit


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse instead of handing it back to the OS.

    A training step allocates and frees the same activation buffers every time. With glibc's defaults,
    buffers above its mmap threshold are mapped and unmapped on each step and a free heap top is trimmed
    back to the OS, so each step page-faults its memory afresh. Raising the mmap threshold to its maximum
    (32 MiB) and turning trimming off keeps those pages mapped (the speed-up: the `+malloc` rows of
    experiments/results/train_speed.md). The price: the process keeps its peak heap size until it exits.
    Process-wide and lasting, like `torch.set_num_threads`. Returns False, changing nothing, where the C
    library is not glibc.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # Both, never one: setting either turns glibc's own adjustment of both off (mallopt(3)), which alone would
    # leave every buffer above the default 128 KiB threshold mapped and unmapped on each step.
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on weight matrices/kernels only."""
    # No weight decay on norms, biases and other 1-d parameters (standard for MetaFormers).
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def score(predicted: np.ndarray, truth: np.ndarray, *, balanced: bool = False) -> float:
    """Share of `predicted` labels equal to `truth` (class indices or names); `balanced`: the mean over the classes
    present in `truth` of each one's share (balanced accuracy, `data.metric`)."""
    right = predicted == truth
    if not balanced:
        return float(right.mean()) if len(right) else 0.0
    # Balanced: each class present in the split counts the same, however many images it has.
    per_class = [right[truth == c].mean() for c in np.unique(truth)]
    return float(np.mean(per_class)) if per_class else 0.0


def accuracy(logits: np.ndarray, split: Split, *, balanced: bool = False) -> float:
    """Top-1 accuracy of precomputed logits (N, classes) on `split`; `balanced`: the mean over the classes present
    in `split` of each one's accuracy (balanced accuracy, `data.metric`)."""
    return score(np.asarray(logits).argmax(1), split.y.numpy(), balanced=balanced)


def class_weights(split: Split, num_classes: int) -> torch.Tensor:
    """Loss weight of each class for balanced training: n / (classes present x n_c), 1 on average per image, as
    scikit-learn's class_weight="balanced" (a class without images gets 0)."""
    counts = torch.bincount(split.y, minlength=num_classes).double()
    present = int((counts > 0).sum())
    weights = torch.where(counts > 0, counts.sum() / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    return weights.float()


def per_class_accuracy(logits: np.ndarray, split: Split, classes: Sequence[str]) -> dict[str, float | None]:
    """Share of each class's images in `split` that `logits` (N, classes) get right (the class's recall), by class
    name; None for a class without images there. One weak class hides in a good overall accuracy."""
    predicted, truth = np.asarray(logits).argmax(1), split.y.numpy()
    out: dict[str, float | None] = {}
    for i, name in enumerate(classes):
        mine = truth == i
        out[name] = float((predicted[mine] == i).mean()) if mine.any() else None
    return out


@torch.no_grad()
def evaluate(model: nn.Module, split: Split, *, batch_size: int = 512, balanced: bool = False) -> float:
    """Top-1 accuracy of `model` on `split` (eval mode, no augmentation); `balanced` as in `accuracy`. A `split` that is
    not a `Split` (the whole `Dataset`, say) is a one-line `TypeError` naming what to pass."""
    if not isinstance(split, Split):  # a Dataset failed deep in iterate_batches: "object of type 'Dataset' has no len()"
        raise wrong_type("split", split, "pass one of its splits, e.g. evaluate(model, data.test, balanced=data.balanced)"
                         if isinstance(split, Dataset) else
                         "pass a nas.data.Split, e.g. data.test of nas.data.load_search_data(cfg)")
    was_training = model.training
    model.eval()
    predicted = [model(x).argmax(1) for x, _ in iterate_batches(split, batch_size=batch_size)]
    model.train(was_training)
    if not predicted:
        return 0.0
    return score(torch.cat(predicted).numpy(), split.y.numpy(), balanced=balanced)


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""`loss_fn(logits, x, y)`: the batch's inputs are passed too, e.g. for a distillation teacher."""


@dataclass(frozen=True)
class FitResult:
    """What a training loop did."""

    train_loss: float  # mean over the last epoch
    images_seen: int
    seconds: float
    epochs_done: int = 0


@dataclass(frozen=True)
class FitState:
    """Where `fit` stands after a finished epoch: all that continuing it needs to train on exactly as if never stopped
    (`fit(resume=...)`). The tensors are the model's and optimizer's own, valid during `on_state` only: save them (or
    copy them) there. Values torch.load(weights_only=True) reads back."""

    epochs_done: int
    step: int  # optimizer steps done: where the learning-rate schedule (`lr_at`) stands
    images_seen: int
    seconds: float
    train_loss: float  # mean over the last finished epoch
    model: dict[str, torch.Tensor]  # state_dict
    optimizer: dict[str, Any]  # state_dict: AdamW's moments and step counts
    # every generator training draws from: torch's global one, `generator` (the data order and the augmentation's
    # draws), and NumPy's and Python's, which seed_everything seeds too
    rng: dict[str, Any]


def _rng_state(gen: torch.Generator) -> dict[str, Any]:
    """The random states `FitState.rng` keeps, in types torch.load(weights_only=True) reads (no NumPy arrays)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "generator": gen.get_state(), "python": random.getstate(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}


def _set_rng_state(rng: dict[str, Any], gen: torch.Generator) -> None:
    """Put back the random states `_rng_state` took, `gen`'s into `gen`."""
    kind, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    gen.set_state(rng["generator"])


def rng_state_problem(rng: Any) -> str | None:
    """Why `rng` (a `FitState.rng` read from a file) cannot be put back by `fit(resume=...)`, in a few words (naming
    the error type), or None when it can. Every generator is left as it was: the states are tried on torch's, NumPy's
    and Python's global ones inside a save and restore, and on a throwaway `torch.Generator`."""
    if not isinstance(rng, dict):
        return f"its random states are a {type(rng).__name__}, not a dict"
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    try:
        _set_rng_state(rng, torch.Generator())
    except Exception as e:  # noqa: BLE001 - a damaged file fails in the libraries' own ways (KeyError, RuntimeError, ...)
        return f"its random states are damaged: {type(e).__name__}"
    finally:
        torch.set_rng_state(saved[0])
        np.random.set_state(saved[1])
        random.setstate(saved[2])
    return None


def resume_problem(resume: FitState, *, epochs: int, train_images: int, batch_size: int) -> str | None:
    """Why `resume`'s counts cannot be where a `fit` of `epochs` epochs over `train_images` images in batches of
    `batch_size` stood after an epoch, in a few words, or None when they can: a count below 0, more epochs done than
    planned, or steps and images other than those epochs take. `fit` refuses such a resume (it would train too few
    or too many steps, on a learning-rate schedule out of step with them); `nas.results.final_train` ignores a
    partial file holding one, as it does a damaged one."""
    done, step, seen = resume.epochs_done, resume.step, resume.images_seen
    # as `fit` and `iterate_batches(drop_last=...)` count: full batches only, or one batch of all the images
    steps_per_epoch, per_step = max(1, train_images // batch_size), min(batch_size, train_images)
    if min(done, step, seen) < 0:
        return f"a count below 0 ({counted(done, 'epoch')}, {counted(step, 'step')}, {counted(seen, 'image')})"
    if done > epochs:
        return f"{counted(done, 'epoch')} done of {epochs}"
    if step != done * steps_per_epoch:
        return f"{counted(step, 'step')} done in {counted(done, 'epoch')} of {counted(steps_per_epoch, 'step')}"
    if seen != step * per_step:
        return f"{counted(seen, 'image')} seen in {counted(step, 'step')} of {counted(per_step, 'image')}"
    return None


def optimizer_state_problem(optimizer: Any, model: nn.Module) -> str | None:
    """Why `optimizer` (a `FitState.optimizer` read from a file) cannot be put back into the AdamW `fit` makes for
    `model` and stepped, in a few words, or None when it can. Tried on a throwaway optimizer: `model` is not changed."""
    opt = torch.optim.AdamW(param_groups(model, 0.0), lr=0.0, fused=True)  # as `fit` groups them
    wanted = set(opt.param_groups[0]) - {"params"}
    try:
        opt.load_state_dict(optimizer)
    except Exception as e:  # noqa: BLE001 - a damaged file fails in torch's own ways (KeyError, ValueError, ...)
        return f"its optimizer state is damaged: {type(e).__name__}"
    if any(not wanted <= set(group) for group in opt.param_groups):
        return "its optimizer state is damaged: a parameter group lacks settings"
    # load_state_dict takes moments of any shape, or none beside a step count; the fused step then fails on them
    for group in opt.param_groups:
        for p in group["params"]:
            if (state := opt.state.get(p)) and ("step" not in state or any(
                    not isinstance(m := state.get(k), torch.Tensor) or m.shape != p.shape for k in ("exp_avg", "exp_avg_sq"))):
                return "its optimizer state is damaged: its moments are not of the weights' shapes"
    return None


@contextlib.contextmanager
def _layout_while_training(model: nn.Module, layout: torch.memory_format) -> Iterator[None]:
    """`model` in memory `layout` for the block, then in the default layout, which exporters and pruners expect: also
    when the block raises (Ctrl-C, SIGTERM, a data error, out of memory, `TrainingDiverged`), for a caller that catches
    it goes on with the model (the search's next trial, a member's export or pruning, a notebook's own evaluation)."""
    model.to(memory_format=layout)
    try:
        yield
    finally:
        model.to(memory_format=torch.contiguous_format)


def fit(
    model: nn.Module,
    train: Split,
    *,
    loss_fn: LossFn,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    warmup_frac: float,
    seed: int,
    max_shift: int = 0,
    hflip: bool = False,
    erase_prob: float = 0.0,
    channels_last: bool = False,
    precision: str = "fp32",
    on_step: Callable[[int, int], None] | None = None,
    on_epoch: Callable[[int], bool] | None = None,
    on_state: Callable[[FitState], None] | None = None,
    resume: FitState | None = None,
) -> FitResult:
    """Train `model` in place on `train` with AdamW + warm-up/cosine: the one loop behind proxy
    training, distillation (`compress.recover`) and quantization-aware training.

    `channels_last` trains in NHWC memory layout (same math, faster on CPU:
    experiments/results/train_speed.md) and hands the model back in the default layout, also when training raises
    partway (an interrupt, a data error, out of memory) for a caller that catches it. `precision="bf16"`
    runs forward and backward under bfloat16 autocast with float32 weights and optimizer state (no loss
    scaling needed: bf16 keeps float32's exponent range); `"fp32"` is plain float32.
    `on_epoch(epochs_done)` is called after every epoch but the last; returning True stops training there
    (the learning-rate schedule is not shortened: the model is where the full schedule had it).
    `on_state(state)` is given a `FitState` after every epoch, the last one too (a final training saves it so that a
    stop loses no finished epoch); `resume` continues from such a state of the same training (same model, data,
    recipe and seed), with the weights, optimizer, schedule and random states it had: the same weights in the end
    as without the stop. The returned seconds and images count those before the stop too.
    Raises `TrainingDiverged` if an epoch's mean loss is not finite.
    """
    steps_per_epoch = max(1, len(train) // batch_size)
    total = steps_per_epoch * epochs
    # torch's fused AdamW kernel: the same update in one pass over each parameter instead of a chain of multi-tensor
    # ops; 1.01-1.03x faster steps on all six models of experiments/results/train_speed_amd_fused.md.
    opt = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr, fused=True)
    gen = torch.Generator().manual_seed(seed)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    if precision not in (Precision.fp32, Precision.bf16):  # the config's names; `auto` is resolved by the caller
        raise ValueError(f"precision={precision!r} is not one of 'fp32', 'bf16' (resolve 'auto' with resolve_precision)")
    bf16 = precision == Precision.bf16
    with _layout_while_training(model, layout):  # the default layout back, also when training raises partway
        model.train()
        step, seen, start = 0, 0, time.perf_counter()
        epoch_loss = 0.0
        done = 0
        if resume is not None:
            if (problem := resume_problem(resume, epochs=epochs, train_images=len(train), batch_size=batch_size)):
                raise ValueError(f"resume is of another training: {problem}")
            model.load_state_dict(resume.model)
            opt.load_state_dict(resume.optimizer)
            _set_rng_state(resume.rng, gen)
            step, seen, epoch_loss, done = resume.step, resume.images_seen, resume.train_loss, resume.epochs_done
            start -= resume.seconds  # the seconds returned are those of the whole training
        for _ in range(epochs - done):
            loss_sum = torch.zeros(())
            batches = iterate_batches(
                train, batch_size=batch_size, shuffle=True, generator=gen,
                max_shift=max_shift, hflip=hflip, drop_last=len(train) >= batch_size, erase_prob=erase_prob,
            )
            for x, y in batches:
                step_lr = lr_at(step, total, base=lr, warmup_frac=warmup_frac)
                for group in opt.param_groups:
                    group["lr"] = step_lr
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    logits = model(x.contiguous(memory_format=layout))
                # The loss (and a distillation teacher inside loss_fn) in float32: softmax/KL of bf16 logits lose digits.
                loss = loss_fn(logits.float(), x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
                step += 1
                seen += len(y)
                if on_step is not None:
                    on_step(step, total)
            # One sync per epoch (not per step) to check for divergence.
            epoch_loss = float(loss_sum) / max(1, steps_per_epoch)
            if not math.isfinite(epoch_loss):
                raise TrainingDiverged(f"training loss became {epoch_loss} (lr={lr}); the candidate is unstable")
            done += 1
            if on_state is not None:
                on_state(FitState(epochs_done=done, step=step, images_seen=seen, seconds=time.perf_counter() - start,
                                  train_loss=epoch_loss, model=model.state_dict(), optimizer=opt.state_dict(),
                                  rng=_rng_state(gen)))
            if on_epoch is not None and done < epochs and on_epoch(done):
                break
    return FitResult(train_loss=epoch_loss, images_seen=seen, seconds=time.perf_counter() - start, epochs_done=done)


def train_candidate(
    model: nn.Module,
    data: Dataset,
    cfg: TrainConfig,
    *,
    augment: DataConfig,
    seed: int,
    subset_seed: int | None = None,
    on_step: Callable[[int, int], None] | None = None,
    judge: Callable[[float], bool] | None = None,
    judge_after_epochs: int = 1,
    loss_fn: LossFn | None = None,
    on_state: Callable[[FitState], None] | None = None,
    resume: FitState | None = None,
) -> TrainResult:
    """Train `model` in place with AdamW + warm-up/cosine + label smoothing; return val accuracy (balanced accuracy,
    with class-weighted cross-entropy, when `data.balanced`).

    Deterministic for a given seed and thread count. With `cfg.subset`, the training images are a
    random subset drawn with `subset_seed` (default: `seed`); a search passes one subset seed for all
    candidates, so they are ranked on the same images. `on_step(step, total)` reports progress.
    `judge(val_acc)`, if given, is asked once after `judge_after_epochs` epochs (when that is before the
    end) with the val accuracy at that point; returning True stops the training there.
    `loss_fn(logits, x, y)` replaces the label-smoothed cross-entropy (e.g. a distillation loss).
    `on_state` and `resume`: as `fit`'s (a final training's resume after a stop; `nas.results.final_train`).
    Raises `TrainingDiverged` if the loss stops being finite.
    """
    torch.set_num_threads(cfg.threads)
    if cfg.keep_freed_memory:
        keep_freed_memory()
    smoothing = cfg.label_smoothing
    precision = resolve_precision(cfg.precision)
    judged: list[float] = []

    def on_epoch(done: int) -> bool:
        if judge is None or done != judge_after_epochs:
            return False
        judged.append(evaluate(model, data.val, batch_size=cfg.eval_batch_size, balanced=data.balanced))
        return judge(judged[0])

    train = subset_split(data.train, cfg.subset, seed=seed if subset_seed is None else subset_seed)
    # Balanced accuracy is scored: a rare class's images then weigh as much in the loss as a common class's.
    weight = class_weights(train, data.num_classes) if data.balanced else None
    result = fit(
        model, train,
        loss_fn=loss_fn or (lambda logits, _x, y: F.cross_entropy(logits, y, weight=weight, label_smoothing=smoothing)),
        epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
        warmup_frac=cfg.warmup_frac, seed=seed, hflip=augment.hflip, erase_prob=cfg.erase_prob,
        max_shift=augment.max_shift if cfg.max_shift is None else cfg.max_shift,
        channels_last=cfg.channels_last, precision=precision, on_step=on_step, on_epoch=on_epoch,
        on_state=on_state, resume=resume,
    )
    stopped = result.epochs_done < cfg.epochs
    val_acc = judged[0] if stopped else evaluate(model, data.val, batch_size=cfg.eval_batch_size, balanced=data.balanced)
    return TrainResult(val_acc=val_acc, train_loss=result.train_loss, images_seen=result.images_seen, seconds=result.seconds,
                       precision=precision, epochs_done=result.epochs_done,
                       judged_val_acc=judged[0] if judged else None, stopped=stopped)
