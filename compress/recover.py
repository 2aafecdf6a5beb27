"""Accuracy recovery by knowledge distillation: the pruned (or quantized) student learns from a teacher.

`loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)) + (1 - alpha) * CE(student, labels)`
(Hinton et al.; the T^2 keeps the gradient scale of the soft term independent of T). The same loop
serves pruning recovery (teacher: the unpruned model) and quantization-aware training (teacher: the
fp32 model the int8 one was made from).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from nas.config import DataConfig, FinetuneConfig
from nas.data import Dataset
from nas.train import LossFn, class_weights, evaluate, fit, resolve_precision, subset_split


@dataclass(frozen=True)
class DistillResult:
    """Validation accuracy after distillation and what it cost."""

    val_acc: float
    train_loss: float
    images_seen: int
    seconds: float
    precision: str = "fp32"  # of the training step: fp32 | bf16


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                      alpha: float, temperature: float, class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """KD loss: `alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE(student, labels)`; `class_weight`
    weights the CE term's classes (balanced accuracy, `nas.train.class_weights`)."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits, labels, weight=class_weight)


def teacher_loss(teachers: list[nn.Module], *, alpha: float, temperature: float, fast: bool = False,
                 class_weight: torch.Tensor | None = None) -> LossFn:
    """A `loss_fn(logits, x, y)` for `nas.train.fit`: `distillation_loss` against the mean logits of frozen `teachers`.

    The teachers are put in eval mode without gradients. `fast`: they run in bf16 and channels-last, which makes
    their forward cheap next to the student's step (from-scratch training from big teachers); off, they run as
    they are (recovery, where a teacher is the student's own fp32 original).

    The function carries its `alpha`, `temperature` and `fast` as its `distillation` attribute (a dict):
    `nas.results.final_train` records them in its partial file's key, so that a training stopped under other
    distillation settings is not gone on from.
    """
    for t in teachers:
        t.eval().requires_grad_(False)
        if fast:
            t.to(memory_format=torch.channels_last)
    ensemble = nn.ModuleList(teachers)

    def loss_fn(logits: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=fast):
            xt = x.contiguous(memory_format=torch.channels_last) if fast else x
            target = torch.stack([t(xt).float() for t in ensemble]).mean(0)
        return distillation_loss(logits, target, y, alpha=alpha, temperature=temperature, class_weight=class_weight)

    # what sets the weights besides the teachers (`nas.results.final_train`'s partial file key): bf16 teachers give
    # other targets; the class weights follow from data.metric, which that key holds already
    loss_fn.distillation = {"alpha": float(alpha), "temperature": float(temperature),  # type: ignore[attr-defined]
                            "fast": bool(fast)}
    return loss_fn


def distill(
    student: nn.Module,
    teacher: nn.Module,
    data: Dataset,
    cfg: FinetuneConfig,
    *,
    augment: DataConfig | None = None,
    seed: int = 0,
    eval_batch_size: int = 512,
) -> DistillResult:
    """Fine-tune `student` in place against `teacher` (frozen, eval mode) on the training split.

    `cfg.channels_last` and `cfg.precision` set the training step as in the search (`nas.train.fit`); in bf16 the
    teacher runs in bf16 and channels-last too, and is handed back in the default layout.
    """
    precision = resolve_precision(cfg.precision)
    bf16 = precision == "bf16"
    train = subset_split(data.train, cfg.subset, seed=seed)
    weight = class_weights(train, data.num_classes) if data.balanced else None  # as the search trained it
    loss_fn = teacher_loss([teacher], alpha=cfg.alpha, temperature=cfg.temperature, fast=bf16, class_weight=weight)
    try:
        result = fit(
            student, train, loss_fn=loss_fn,
            epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, weight_decay=cfg.weight_decay,
            warmup_frac=cfg.warmup_frac, seed=seed,
            max_shift=augment.max_shift if augment else 0, hflip=augment.hflip if augment else False,
            channels_last=cfg.channels_last, precision=precision,
        )
    finally:
        if bf16:  # exporters and pruners expect the default layout
            teacher.to(memory_format=torch.contiguous_format)
    val_acc = evaluate(student, data.val, batch_size=eval_batch_size, balanced=data.balanced)
    return DistillResult(val_acc=val_acc, train_loss=result.train_loss, images_seen=result.images_seen, seconds=result.seconds,
                         precision=precision)
